"""A duration past its limit is refused in the words the definition used: the key as written
(``timeout``, ``retry.delay``, ``jitter``), the limit and the value as durations (``366d``,
``367d``), at the key's own line.

The messages named the spec's fields in seconds (``timeout_s must be a number of seconds > 0
and <= 3.16224e+07, got 31708800.0``), and a workflow's ``defaults.timeout`` was located at
``defaults``."""

from __future__ import annotations

import textwrap

import pytest

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError

FLOW = """\
name: w
timeout: 400d
defaults:
  timeout: 367d
steps:
  - id: b
    shell: "true"
    retry: {max_attempts: 2, delay: 367d, max_delay: 500d}
  - id: w
    wait: {signal: x}
    timeout: 0s
triggers:
  - cron: "0 * * * *"
    jitter: 400d
  - data: "/tmp/x/{date}"
    poll: 1h30m
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_yaml_text(textwrap.dedent(text), "flow.yaml")
    return [f"{p.location.line}: {p.location.field}: {p.message}" for p in info.value.problems]


def test_each_duration_past_its_limit_is_named_as_written() -> None:
    found = _problems(FLOW.replace("1h30m", "367d"))
    assert found == [
        "2: timeout: workflow: timeout must be more than 0 and at most 366d, got 400d",
        "4: defaults.timeout: workflow defaults: timeout must be more than 0 and at most 366d, "
        "got 367d",
        "8: steps[0].retry.delay: step 'b': retry delay must be from 0 to 366d, got 367d",
        "8: steps[0].retry.max_delay: step 'b': retry max_delay must be from 0 to 366d, got 500d",
        "11: steps[1].timeout: step 'w': timeout must be more than 0 and at most 366d, got 0s",
        "14: triggers[0].jitter: jitter must be from 0 to 366d, got 400d",
        "16: triggers[1].poll: poll must be more than 0 and at most 366d, got 367d",
    ]


def test_a_value_that_is_not_whole_seconds_is_shown_as_is() -> None:
    found = _problems(FLOW.replace("400d\ndefaults", "366d 0.5s\ndefaults"))
    assert found[0].startswith("2: timeout: workflow: timeout must be more than 0 and at most")
    assert found[0].endswith("got 31622400.5s")

"""Every decorator's bad option is listed by one load of a Python workflow file, not only the
first one's, and a file with such problems is never kept loaded with its steps cut down."""

from __future__ import annotations

from pathlib import Path

import pytest

import kaon
from kaon.dsl.loader import load_workflows
from kaon.errors import DefinitionError

FLOW = """\
import kaon


@kaon.step(retry="often")
def first() -> int:
    return 1


@kaon.step(timeout="forever", cache=True)
def second(x: int) -> int:
    return x


@kaon.step(colour="red")
def third(x: int) -> int:
    return x


@kaon.workflow
def flow() -> None:
    third(second(first()))
    undefined_step()  # noqa: F821
"""


def test_every_decorators_problem_is_listed_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(FLOW)
    with pytest.raises(DefinitionError) as caught:
        load_workflows(str(path))
    found = [(p.location.line, p.message) for p in caught.value.problems]
    lines = [line for line, _ in found]
    assert lines[:3] == [4, 9, 14], found
    assert "retry must be" in found[0][1]
    assert "invalid duration 'forever'" in found[1][1]
    assert "unknown step option 'colour'" in found[2][1]
    # The workflow's own problem (a name its body cannot find) is listed after them.
    assert any("undefined_step" in message for _, message in found[3:]), found
    assert len(found) == 4, found


def test_a_file_whose_decorators_failed_is_loaded_again_next_time(tmp_path: Path) -> None:
    path = tmp_path / "again.py"
    path.write_text(FLOW.replace("undefined_step()  # noqa: F821\n", ""))
    for _ in range(2):  # not a module cached with the bad options left out
        with pytest.raises(DefinitionError) as caught:
            load_workflows(str(path))
        assert len(caught.value.problems) == 3
    path.write_text(
        FLOW.replace('(retry="often")', "")
        .replace('"forever"', '"1m"')
        .replace('(colour="red")', "")
        .replace("    undefined_step()  # noqa: F821\n", "")
    )
    specs = load_workflows(str(path))
    assert [step.id for step in specs["flow"].graph.steps] == ["first", "second", "third"]


def test_outside_a_load_a_bad_option_still_raises_at_once() -> None:
    with pytest.raises(DefinitionError, match="retry must be"):
        kaon.step(retry="often")

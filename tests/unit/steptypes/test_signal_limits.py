"""An attempt sends at most MAX_SIGNALS_PER_ATTEMPT signals: each is a row and may start a run
of every workflow a signal trigger of its name serves, so a step looping over
``emit_signal`` stored (and could have started) 20,000. Past the limit the step is told."""

from __future__ import annotations

from pathlib import Path

import pytest

import kaon
from kaon.model.events import MAX_SIGNALS_PER_ATTEMPT
from kaon.service import LocalService, Settings
from kaon.steptypes.context import RecordingContext


def test_a_step_is_told_when_it_sends_more_signals_than_an_attempt_may() -> None:
    ctx = RecordingContext()
    for n in range(MAX_SIGNALS_PER_ATTEMPT):
        ctx.emit_signal("spam", n=n)
    with pytest.raises(ValueError, match=r"not sent: an attempt sends at most 1,000 signals"):
        ctx.emit_signal("spam", n=-1)
    assert len(ctx.signals) == MAX_SIGNALS_PER_ATTEMPT


def test_a_shell_step_s_signal_lines_past_the_limit_are_logged_not_sent(tmp_path: Path) -> None:
    flow = tmp_path / "spam.yaml"
    flow.write_text(
        "name: spam\nsteps:\n  - id: loud\n    shell: >-\n"
        '      for i in $(seq 1005); do echo "::kaon::signal spam {\\"i\\": $i}"; done\n'
    )
    detail = kaon.run(str(flow), home=str(tmp_path / "home"))
    assert detail.status == "succeeded"
    with LocalService(Settings.from_env(home=str(tmp_path / "home"))) as service:
        sent = service.store.signals(name="spam", limit=5000)
        assert len(sent) == MAX_SIGNALS_PER_ATTEMPT
        lines = [view.text for view in service.logs(detail.id, "loud")]
    refused = [line for line in lines if "not sent: an attempt sends at most" in line]
    assert len(refused) == 5, lines[-3:]

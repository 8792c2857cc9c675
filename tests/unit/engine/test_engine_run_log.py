"""The engine's log says how each run ended, once its end is committed: a server's log had
no line for a run that failed (an SRE looking for why found nothing)."""

from __future__ import annotations

import logging
import time

import pytest
from conftest import Harness, flow, task

from kaon.model.status import RunStatus


def test_each_run_that_ends_is_one_line_with_its_error(
    inline: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kaon.engine")
    ok_status, ok = inline.run(flow(task("a", "const"), name="fine"))
    bad_status, bad = inline.run(flow(task("b", "fail_keeping", inputs={"n": 1}), name="broken"))
    assert (ok_status, bad_status) == (RunStatus.SUCCEEDED, RunStatus.FAILED)

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "kaon.engine"]

    def ended(run_id: str) -> list[str]:
        return [line for line in logged() if line.startswith(f"run {run_id} ")]

    deadline = time.monotonic() + 10  # logged after the commit, which a reader may see first
    while not (ended(ok) and ended(bad)):
        assert time.monotonic() < deadline, logged()
        time.sleep(0.01)
    assert ended(ok) == [f"run {ok} of fine succeeded"]
    (failed,) = ended(bad)
    assert failed.startswith(f"run {bad} of broken failed: ") and "b" in failed, failed

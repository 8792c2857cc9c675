"""AttemptWatch: a timeout or cancel interrupts the tool's work, including work the tool had
not yet started when it fired, and a call that returns after it fired is still the step's
``Timeout`` (or ``Cancelled``), never a success past the limit."""

from __future__ import annotations

import threading
import time

import pytest

from kaon.errors import StepError
from kaon.steptypes._protocol import AttemptWatch
from kaon.steptypes.context import StepContext


def _ctx(**extra: object) -> StepContext:
    return StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra=extra)


class Tool:
    """A tool whose work may start late, as a Spark job behind a slow first session start."""

    def __init__(self) -> None:
        self.stops = 0
        self.interrupted = threading.Event()

    def stop(self) -> None:
        self.stops += 1
        if self.started:
            self.interrupted.set()

    started = False

    def work(self, starts_after: float) -> str:
        time.sleep(starts_after)
        self.started = True
        if self.interrupted.wait(2.0):
            raise RuntimeError("interrupted")
        return "done"


def test_work_started_after_the_timeout_fired_is_interrupted_too() -> None:
    tool = Tool()
    watch = AttemptWatch(_ctx(timeout_s=0.05), tool.stop, name="t", what="job", interval_s=0.01)
    started = time.monotonic()
    with pytest.raises(StepError) as info, watch:
        tool.work(starts_after=0.3)  # the deadline passes before the work starts
    assert info.value.error_type == "Timeout"
    assert "job timed out after 0.05 s" in str(info.value)
    assert time.monotonic() - started < 1.5  # interrupted, not run to its end
    assert tool.stops > 1


def test_a_call_that_returns_after_the_timeout_is_a_timeout() -> None:
    watch = AttemptWatch(_ctx(timeout_s=0.05), lambda: None, name="t", what="query")
    with pytest.raises(StepError) as info, watch:
        time.sleep(0.3)  # the tool ignores the interruption and returns late
    assert info.value.error_type == "Timeout"


def test_a_cancel_is_reported_as_cancelled() -> None:
    cancel = threading.Event()
    cancel.set()
    watch = AttemptWatch(_ctx(cancel_event=cancel), lambda: None, name="t", what="query")
    with pytest.raises(StepError) as info, watch:
        time.sleep(0.2)
    assert info.value.error_type == "Cancelled"


def test_a_call_within_its_limit_is_left_alone() -> None:
    tool = Tool()
    with AttemptWatch(_ctx(timeout_s=5.0), tool.stop, name="t", what="job"):
        tool.started = True
    assert tool.stops == 0

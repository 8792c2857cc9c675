"""A timed attempt's start reaches the engine before the step's code runs.

The timeout counts from ``StepStarted``. A worker sends its events from a housekeeping
thread, which needs the interpreter's lock; a step that holds it from its first instruction
(C code that keeps the GIL: a catastrophic regular expression, a C extension's loop) kept
its ``StepStarted`` in the worker until the code let go, so its timeout never began (a 3 s
timeout ended a 25 s regex only when the regex did, and an endless one ran forever)."""

from __future__ import annotations

import time
from pathlib import Path

from executor_sink import Sink

from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import StepFailed, StepStarted, StepSucceeded
from kaon.model.values import Literal

STEPS = """
import ctypes

def hold(seconds):
    ctypes.PyDLL(None).sleep(seconds)  # libc's sleep with the GIL held all along
    return seconds
"""


def test_a_timed_attempt_that_holds_the_gil_reports_its_start_at_once(tmp_path: Path) -> None:
    module = tmp_path / "gil_steps.py"
    module.write_text(STEPS)
    sink = Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        sent = time.monotonic()
        executor.submit(
            TaskRequest(
                ("r", 1, 1),
                "hold",
                "python",
                {"file": str(module), "function": "hold"},
                {"seconds": Literal(3)},
                {},
                "memory://kaon-gil",
                timeout_s=1.0,
            )
        )
        sink.wait(lambda e: isinstance(e, StepStarted))
        started_after = time.monotonic() - sent
        end = sink.wait(lambda e: isinstance(e, StepSucceeded | StepFailed))
    finally:
        executor.shutdown()
    assert isinstance(end, StepSucceeded), end
    assert started_after < 2.0, f"StepStarted came {started_after:.1f} s after the submit"

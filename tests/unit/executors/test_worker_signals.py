"""Processes a step starts on a process worker must not inherit the worker's own signal
setup: the worker ignores SIGINT (SIG_IGN survives exec, so every child ignores SIGINT and a
Python child gets no KeyboardInterrupt) and catches SIGTERM with its exit routine (a forked
child, os.fork or multiprocessing's fork Pool, runs the worker's cleanup on SIGTERM:
killing the worker's shell process groups, removing its scratch folders, exit 143 instead
of dying by the signal; multiprocessing.Pool.terminate() was seen to hang on it)."""

from __future__ import annotations

from pathlib import Path

from executor_sink import Sink

from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import StepFailed, StepSucceeded

STEPS = """
import os, signal, subprocess, sys, time

def probe():
    child = subprocess.run(
        [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"],
        capture_output=True, text=True,
    ).stdout.strip()
    pid = os.fork()
    if pid == 0:
        time.sleep(10)
        os._exit(0)
    time.sleep(0.2)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    return {"child_sigint": child, "forked_child": os.waitstatus_to_exitcode(status)}
"""


def test_children_of_a_step_get_default_signal_handling(tmp_path: Path) -> None:
    module = tmp_path / "sig_steps.py"
    module.write_text(STEPS)
    sink = Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        executor.submit(
            TaskRequest(
                ("r", 1, 1),
                "s",
                "python",
                {"file": str(module), "function": "probe"},
                {},
                {},
                "memory://kaon-probe-signals",
            )
        )
        end = sink.wait(lambda e: isinstance(e, StepSucceeded | StepFailed))
    finally:
        executor.shutdown()
    assert isinstance(end, StepSucceeded), end
    values = {name: ref.value for name, ref in end.outputs.items()}  # Literals
    assert values["child_sigint"] == "<built-in function default_int_handler>", values
    assert values["forked_child"] == -15, values  # killed by SIGTERM, not the worker's exit

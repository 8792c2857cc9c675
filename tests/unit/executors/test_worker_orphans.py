"""A process a step detaches (a new session, its parent gone: ``(setsid daemon &)``) dies with
the worker too. It was re-parented to PID 1, out of reach of the worker's search for its
descendants by parent links, and outlived the worker, the run and ``kaon run``: a resumed
run could find a second copy of it running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
from executor_sink import Sink

from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import StepFailed, StepSucceeded


def _gone(pid: int, timeout: float = 3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)  # do not leave it behind
    return False


def test_a_daemon_a_step_leaves_dies_with_its_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    command = f"(setsid sh -c 'echo $$ > {pid_file}; exec sleep 30' > /dev/null 2>&1 &)"
    sink = Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        executor.submit(
            TaskRequest(("r", 1, 1), "sh", "shell", {"command": command}, {}, {}, "memory://o")
        )
        end = sink.wait(lambda e: isinstance(e, StepSucceeded | StepFailed))
        assert isinstance(end, StepSucceeded), end
        deadline = time.monotonic() + 5
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        daemon = int(pid_file.read_text())
    finally:
        executor.shutdown()
    assert _gone(daemon), f"daemon {daemon} outlived its worker"

"""A worker whose step holds the GIL in C code dies with its engine too.

A worker notices its engine's death from a housekeeping thread, which needs the interpreter's
lock: a step whose C code keeps it (a catastrophic regex, an extension's loop) kept its worker
running after ``kill -9`` of ``kaon run``, burning a core with PID 1 as parent, and a
``kaon resume`` ran the step a second time beside it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

DRIVER = """
import sys, time
from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import StepStarted
from kaon.model.values import Literal

seen = []
executor = ProcessExecutor(workers=1)
executor.start(seen.append)
executor.submit(TaskRequest(("r", 1, 1), "hold", "python",
    {"file": sys.argv[1], "function": "hold"}, {"seconds": Literal(30)}, {}, "memory://g",
    timeout_s=60.0))
while not any(isinstance(e, StepStarted) for e in seen):
    time.sleep(0.01)
time.sleep(0.3)  # inside the C call now
print(executor.worker_pids()[0], flush=True)
time.sleep(60)
"""

STEPS = """
import ctypes

def hold(seconds):
    ctypes.PyDLL(None).sleep(seconds)  # libc's sleep with the GIL held all along
"""


def test_a_worker_stuck_in_c_code_dies_after_its_engine_is_killed(tmp_path: Path) -> None:
    (tmp_path / "gil_hold.py").write_text(STEPS)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path / "gil_hold.py")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert driver.stdout is not None
    worker = int(driver.stdout.readline())
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 6
    try:
        while time.monotonic() < deadline:
            try:
                if psutil.Process(worker).status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)
        raise AssertionError(f"worker {worker} outlived its killed engine")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)

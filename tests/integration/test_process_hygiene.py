"""Every process a step starts dies with its attempt: kill -9 of ``kaon run``, a timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FLOW = str(Path(__file__).with_name("hygiene_flow.py"))
KAON = [sys.executable, "-m", "kaon.cli.main"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the step did not start its children"
        time.sleep(0.05)
    return [int(pid) for pid in path.read_text().split()]


def _gone_within(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


def _start(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    environ = {
        **os.environ,
        "KAON_HOME": str(tmp_path / "home"),
        "KAON_HYGIENE_DIR": str(tmp_path),
        "KAON_WORKERS": "1",
        **env,
    }
    return subprocess.Popen(
        [*KAON, "run", FLOW],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so that the test can clean up whatever is left
    )


def _cleanup(proc: subprocess.Popen[str], pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_kill_minus_nine_of_kaon_run_kills_the_steps_children(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    pids: list[int] = []
    try:
        pids = _wait_for(tmp_path / "pids", proc)
        assert all(_alive(pid) for pid in pids)
        os.kill(proc.pid, signal.SIGKILL)  # the engine only, not its process group
        proc.wait(timeout=10)
        assert _gone_within(pids, 5) == []
    finally:
        _cleanup(proc, pids)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_timed_out_attempt_takes_its_children_along(tmp_path: Path) -> None:
    proc = _start(tmp_path, KAON_HYGIENE_TIMEOUT="2")
    pids: list[int] = []
    try:
        pids = _wait_for(tmp_path / "pids", proc)
        proc.wait(timeout=30)  # the run fails on the timeout
        assert proc.returncode != 0
        assert _gone_within(pids, 5) == []
    finally:
        _cleanup(proc, pids)

"""kill -9 the engine of a run paused at a breakpoint: the pause is durable. `kaon continue`
goes on from another process, and no step runs twice."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store

FLOW = str(Path(__file__).with_name("crash_flow.py"))
KAON = [sys.executable, "-m", "kaon.cli.main"]
N = 4


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*KAON, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _paused_at(home: Path, run_id: str, path: str, done: int) -> bool:
    """The run is paused, holding ``path``, with ``done`` tasks succeeded."""
    store = open_store(f"sqlite:///{home / 'kaon.db'}")
    try:
        if store.get_run(run_id).status is not RunStatus.PAUSED:
            return False
        rows = store.step_runs(run_id, all_levels=True)
        held = {r.path for r in rows if r.status is StepStatus.PAUSED}
        succeeded = [r for r in rows if r.kind == "task" and r.status is StepStatus.SUCCEEDED]
        return held == {path} and len(succeeded) == done
    finally:
        store.close()


def _kill_when_paused(
    proc: subprocess.Popen[str], home: Path, run_id: str, path: str, done: int
) -> None:
    deadline = time.monotonic() + 60
    while not _paused_at(home, run_id, path, done):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, f"never paused at {path}"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_minus_nine_while_paused_then_continue(tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "exec.log"
    env = dict(os.environ, KAON_HOME=str(home), KAON_CRASH_LOG=str(log), KAON_WORKERS="2")
    breaks = ["--break", "each[2].square", "--break", "total"]
    proc = _start(["run", FLOW, "-e", "process", "-p", f"n={N}", *breaks], env)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read() if proc.stderr else ""
    # Held before each[2].square; start and the other items' two steps are done.
    _kill_when_paused(proc, home, run_id, "each[2].square", 1 + 2 * (N - 1))
    assert proc.stderr is not None and "paused at each[2].square" in proc.stderr.read()
    # `kaon continue` finds no engine: it records the continue and drives the run, which
    # stops again before `total`; kill that engine too.
    again = _start(["continue", run_id, "-e", "process"], env)
    _kill_when_paused(again, home, run_id, "total", 1 + 2 * N)
    result = subprocess.run(
        [*KAON, "continue", run_id, "-e", "process", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    store = open_store(f"sqlite:///{home / 'kaon.db'}")
    try:
        assert store.get_run(run_id).status is RunStatus.SUCCEEDED
        total = store.get_step_run(run_id, "total")
        assert total.outputs == {"return": {"t": "lit", "v": sum(i * i + 1 for i in range(N))}}
    finally:
        store.close()
    executions = collections.Counter(log.read_text().split())
    assert executions and set(executions.values()) == {1}, executions  # none ran twice

"""kill -9 the process running a workflow at many instants; `kaon resume` must finish the run
without re-running any step whose success was recorded before the kill."""

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
N = 24
EXPECTED_TOTAL = sum(i * i + 1 for i in range(N))


def _env(home: Path, log: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KAON_HOME=str(home), KAON_CRASH_LOG=str(log), KAON_WORKERS="3")
    return env


def _executions(log: Path) -> collections.Counter[str]:
    return collections.Counter(log.read_text().split()) if log.exists() else collections.Counter()


def _succeeded(home: Path, run_id: str) -> set[str]:
    store = open_store(f"sqlite:///{home / 'kaon.db'}")
    try:
        rows = store.step_runs(run_id, all_levels=True, statuses=[StepStatus.SUCCEEDED])
        return {r.path for r in rows if r.kind == "task"}
    finally:
        store.close()


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*KAON, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill_after(proc: subprocess.Popen[str], delay: float) -> None:
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("executor", ["process", "inline"])
def test_kill_minus_nine_anywhere_then_resume(tmp_path: Path, executor: str) -> None:
    delays = [0.9, 1.15, 1.4, 1.7, 2.0, 2.4, 2.9] if executor == "process" else [0.7, 1.0, 1.4]
    for attempt, delay in enumerate(delays):
        home, log = tmp_path / f"home{attempt}", tmp_path / f"exec{attempt}.log"
        env = _env(home, log)
        proc = _start(["run", FLOW, "-e", executor, "-p", f"n={N}"], env)
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read() if proc.stderr else ""
        _kill_after(proc, delay)
        # Kill the resumer too, once, at a shorter delay: recovery must survive its own crash.
        for round_delay in (min(delay / 3, 0.5), None):
            done_before = _succeeded(home, run_id)
            counts_before = _executions(log)
            if round_delay is None:
                result = subprocess.run(
                    [*KAON, "resume", run_id, "-e", executor, "--json"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert result.returncode == 0, result.stderr + result.stdout
            else:
                _kill_after(_start(["resume", run_id, "-e", executor], env), round_delay)
            counts_after = _executions(log)
            rerun = {p for p in done_before if counts_after[p] != counts_before[p]}
            assert not rerun, f"delay {delay}: succeeded steps ran again: {sorted(rerun)}"
        store = open_store(f"sqlite:///{home / 'kaon.db'}")
        try:
            assert store.get_run(run_id).status is RunStatus.SUCCEEDED
            total = store.get_step_run(run_id, "total")
            assert total.outputs == {"return": {"t": "lit", "v": EXPECTED_TOTAL}}
            tasks = [r for r in store.step_runs(run_id, all_levels=True) if r.kind == "task"]
            assert len(tasks) == 2 * N + 4
            assert all(r.status is StepStatus.SUCCEEDED for r in tasks)
        finally:
            store.close()
        # Every step ran at least once; none was lost.
        assert set(_executions(log)) == {r.path for r in tasks}

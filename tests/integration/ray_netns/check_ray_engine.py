"""The engine on Ray: kill -9 of the engine mid-run, then resume, re-attaches to the attempt
still running on the cluster (or takes the result of one that ended meanwhile) instead of
running it again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kaon.model.status import RunStatus
from kaon.store import open_store

FLOW = str(Path(__file__).with_name("reattach_flow.py"))
KAON = [sys.executable, "-m", "kaon.cli.main"]


def _wait_for_lines(path: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().split()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} has not {count} line(s) after {timeout} s")


@contextlib.contextmanager
def _running(tmp_path: Path, seconds: float) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """``kaon run`` of the flow on Ray in a session of its own, once its long attempt has
    started on the cluster: the process, the run id and the marker file (one line per
    execution). The process group is killed at the end if it still runs."""
    marker = tmp_path / "executions"
    run = subprocess.Popen(
        [*KAON, "run", FLOW, "-e", "ray", "-p", f"marker={marker}", "-p", f"seconds={seconds}"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert run.stdout is not None
        run_id = run.stdout.readline().strip()
        assert run_id, run.stderr.read() if run.stderr else ""
        _wait_for_lines(marker, 1, 60)
        yield run, run_id, marker
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=10)


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "KAON_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize(
    ("seconds", "pause"),
    [(8.0, 0.0), (1.0, 4.0)],
    ids=["still-running", "ended-while-no-engine-listened"],
)
def test_kill_9_engine_then_resume_reattaches(
    tmp_path: Path, ray_address: str, seconds: float, pause: float
) -> None:
    with _running(tmp_path, seconds) as (run, run_id, marker):  # the long attempt runs
        os.killpg(run.pid, signal.SIGKILL)  # kill -9 of the engine
        run.wait(timeout=10)
    time.sleep(pause)
    resumed = subprocess.run(
        [*KAON, "resume", run_id, "-e", "ray", "--ray-address", ray_address],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(marker.read_text().split()) == 1  # not run again
    store = open_store(f"sqlite:///{tmp_path / 'home' / 'kaon.db'}")
    try:
        assert store.get_run(run_id).status is RunStatus.SUCCEEDED
        rows = {r.path: r for r in store.step_runs(run_id, all_levels=True)}
        attempts = store.attempts(run_id, rows["long_step"].id)
        assert [(a.number, a.status) for a in attempts] == [(1, "succeeded")]
    finally:
        store.close()


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie (dead, waiting for this container's init to reap
    it, which may take seconds) is not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_stops_the_attempts_running_on_the_cluster(tmp_path: Path, ray_address: str) -> None:
    """``kaon kill`` of a run on Ray: the engine cancels its attempts and shuts down at once;
    the cancels still queued reach the cluster (which outlives the engine) before it exits."""
    with _running(tmp_path, 120) as (run, run_id, marker):
        (pid,) = (int(line) for line in marker.read_text().split())
        assert _alive(pid)
        killed = subprocess.run(
            [*KAON, "kill", run_id], env=_env(tmp_path), capture_output=True, text=True, timeout=60
        )
        assert killed.returncode == 0, killed.stdout + killed.stderr
        run.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), "the attempt still runs on the cluster after kaon kill"


def test_sigterm_stops_kaon_run_cleanly_on_ray(tmp_path: Path, ray_address: str) -> None:
    """``ray.init`` puts its own SIGTERM handler in place (a stack dump, exit 15); Kaon's is
    restored: the runner stops, says how to resume, and the run resumes to its end."""
    with _running(tmp_path, 3) as (run, run_id, marker):
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr[-2000:]
    assert f"kaon resume {run_id}" in stderr
    resumed = subprocess.run(
        [*KAON, "resume", run_id], env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(marker.read_text().split()) == 1  # re-attached, not run again


_KILL_SUPERVISOR = """
import sys, ray
from kaon.executors.ray_executor import _token, _use_token
_use_token(_token(None))
ray.init(address=sys.argv[1], namespace="kaon", log_to_driver=False)
ray.kill(ray.get_actor("kaon-supervisor-kaon", namespace="kaon"), no_restart=True)
"""


def test_a_lost_supervisor_is_replaced_and_its_attempts_retried(
    tmp_path: Path, ray_address: str
) -> None:
    """The supervisor actor dies mid-run: its attempts are lost (platform failures), a new
    supervisor is started, and the retries run on it (they hung on the dead one)."""
    with _running(tmp_path, 4) as (run, run_id, _):
        subprocess.run(
            [sys.executable, "-c", _KILL_SUPERVISOR, ray_address], check=True, timeout=60
        )
        run.communicate(timeout=120)
    store = open_store(f"sqlite:///{tmp_path / 'home' / 'kaon.db'}")
    try:
        rows = {r.path: r for r in store.step_runs(run_id, all_levels=True)}
        attempts = store.attempts(run_id, rows["long_step"].id)
        seen = [(a.status, a.error) for a in attempts]
        assert run.returncode == 0, (seen, {p: r.error for p, r in rows.items()})
        assert [a.status for a in attempts][-1] == "succeeded" and len(attempts) >= 2
    finally:
        store.close()

"""`kaon watch` of a run no engine holds (its runner died, no server serves the store): the
follower says so once, naming how to go on, and keeps following (it waited in silence)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kaon.engine import operations
from kaon.model.specs import GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.service import LocalService, Settings, local
from kaon.store.base import WriteBatch

TASK = TaskSpec(id="a", step_type="shell", config={"command": "true"})
SPEC = WorkflowSpec(name="w", graph=GraphSpec(steps=(TASK,)))


def _follow(
    service: LocalService, run_id: str, notes: list[str]
) -> tuple[threading.Thread, list[RunStatus]]:
    ended: list[RunStatus] = []

    def follow() -> None:
        ended.append(service.follow(run_id, on_unheld=notes.append, poll_s=0.02))

    thread = threading.Thread(target=follow)
    thread.start()
    return thread, ended


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalService:
    monkeypatch.setattr(local, "UNHELD_S", 0.2)
    return LocalService(Settings.from_env(home=str(tmp_path)))


@pytest.mark.parametrize(
    ("status", "verb"), [(RunStatus.RUNNING, "resume"), (RunStatus.PAUSED, "continue")]
)
def test_a_run_no_engine_holds_is_named_once_and_still_followed(
    service: LocalService, status: RunStatus, verb: str
) -> None:
    run = operations.create_run(service.store, SPEC, {})
    batch = WriteBatch()
    batch.update_run(run.id, status=status)
    service.store.write(batch)
    notes: list[str] = []
    thread, ended = _follow(service, run.id, notes)
    deadline = time.monotonic() + 10
    while not notes and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # said once, not at every poll
    operations.cancel_run(service.store, run.id, by="test", reason="done")
    thread.join(10)
    assert ended == [RunStatus.CANCELLED]
    (note,) = notes
    assert f"run {run.id} is {status.value} but no engine has held it" in note
    assert f"go on with kaon {verb} {run.id}; still watching" in note
    service.close()


def test_a_held_run_is_not_named(service: LocalService) -> None:
    run = operations.create_run(service.store, SPEC, {})
    assert service.store.acquire_lease(run.id, "elsewhere", 60.0) is not None
    notes: list[str] = []
    thread, ended = _follow(service, run.id, notes)
    time.sleep(0.6)
    service.store.release_lease(run.id, "elsewhere")
    operations.cancel_run(service.store, run.id, by="test", reason="done")
    thread.join(10)
    assert ended == [RunStatus.CANCELLED] and notes == []
    service.close()


def test_a_runner_killed_before_its_lease_lapses_is_named_and_its_lock_kept(
    service: LocalService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner killed with -9 leaves its lease live for 30 s but its lock file free: the
    follower sees it dead at once, and leaves the file for the engine that takes over (its
    proof that the lease can be voided without waiting)."""
    from kaon.engine.liveness import EngineLock, new_owner, owner_is_dead

    monkeypatch.setenv("KAON_ENGINE_LOCK_DIR", str(tmp_path / "locks"))
    owner = new_owner()
    lock = EngineLock(owner)
    run = operations.create_run(service.store, SPEC, {})
    assert service.store.acquire_lease(run.id, owner, 60.0) is not None
    lock.release(remove=False)  # as a process killed with -9 leaves it
    notes: list[str] = []
    thread, ended = _follow(service, run.id, notes)
    deadline = time.monotonic() + 10
    while not notes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lock.path.exists()
    service.store.release_lease(run.id, owner)
    operations.cancel_run(service.store, run.id, by="test", reason="done")
    thread.join(10)
    assert ended == [RunStatus.CANCELLED] and len(notes) == 1
    assert owner_is_dead(owner)  # the proof was still there for an engine
    service.close()

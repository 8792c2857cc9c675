"""Fenced leases and fair claiming: the same contract on SQLite and PostgreSQL.

Every write of an engine is fenced by the lease epochs it holds (``runs.lease_epoch``,
incremented on every takeover); runs are claimed oldest first.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_store_contract import step_record, write_run

from kaon.artifacts import open_artifact_store
from kaon.engine import operations
from kaon.engine.engine import Engine
from kaon.errors import FencingError
from kaon.executors import create_executor
from kaon.model.params import bind_params
from kaon.model.specs import Const, GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store
from kaon.store.base import (
    AttemptRecord,
    EventRecord,
    Fence,
    RunRecord,
    StateStore,
    WriteBatch,
    claim_key,
)

STEPS = str(Path(__file__).parents[1] / "unit" / "engine" / "engine_steps.py")


def _fenced(owner: str, epochs: dict[str, int]) -> WriteBatch:
    return WriteBatch(fence=Fence(owner, epochs))


def test_a_fenced_write_commits_while_the_lease_is_held_and_leaves_renewal_to_its_holder(
    store: StateStore,
) -> None:
    write_run(store)
    epoch = store.acquire_lease("r1", "a", 30.0)
    assert epoch == 1
    until = store.get_run("r1").lease_until
    batch = _fenced("a", {"r1": epoch})
    batch.insert_step_run(step_record("r1", 1))
    store.write(batch)
    assert [s.id for s in store.step_runs("r1")] == [1]
    assert store.get_run("r1").lease_until == until  # checked, not renewed: renew_leases does
    assert store.renew_leases("a", {"r1": epoch}, 60.0) == set()
    renewed = store.get_run("r1").lease_until
    assert until is not None and renewed is not None and renewed > until


@pytest.mark.integration
def test_a_fence_waits_for_a_takeover_in_progress_and_then_refuses(pg_url: str) -> None:
    """PostgreSQL: the fence locks the run's row (``FOR SHARE``). A write that meets a
    takeover holding the row waits for it and reads the row as the takeover left it; a read
    that did not lock would pass on the old epoch and commit after the takeover."""
    import psycopg

    store = open_store(pg_url)
    try:
        write_run(store)
        epoch = store.acquire_lease("r1", "a", 60.0)
        assert epoch is not None
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as takeover:  # a transaction, as a claim is
            takeover.execute("SELECT id FROM runs WHERE id = 'r1' FOR UPDATE")
            late = _fenced("a", {"r1": epoch})
            late.insert_step_run(step_record("r1", 1))
            outcome: list[BaseException | None] = []

            def write() -> None:
                try:
                    store.write(late)
                    outcome.append(None)
                except BaseException as error:  # the test reads it
                    outcome.append(error)

            writer = threading.Thread(target=write)
            writer.start()
            writer.join(0.5)
            waited = writer.is_alive()  # before the takeover commits: still waiting
            takeover.execute(
                "UPDATE runs SET owner = 'b', lease_epoch = lease_epoch + 1 WHERE id = 'r1'"
            )
            takeover.commit()
            writer.join(10)
        assert waited, outcome
        assert len(outcome) == 1 and isinstance(outcome[0], FencingError), outcome
        assert store.step_runs("r1") == []
        assert (store.get_run("r1").owner, store.get_run("r1").lease_epoch) == ("b", epoch + 1)
    finally:
        store.close()


def test_a_late_write_after_a_takeover_is_refused_and_writes_nothing(store: StateStore) -> None:
    write_run(store)
    write_run(store, "r2")
    old = store.acquire_lease("r1", "a", 0.2)
    held = store.acquire_lease("r2", "a", 60.0)
    assert old is not None and held is not None
    start = WriteBatch()
    start.insert_step_run(step_record("r1", 1))
    start.insert_attempt(AttemptRecord("r1", 1, 1, "running"))
    store.write(start)
    time.sleep(0.3)
    new = store.acquire_lease("r1", "b", 60.0)
    assert new == old + 1
    lost = WriteBatch()
    lost.update_attempt(("r1", 1, 1), status="lost")
    lost.fence = Fence("b", {"r1": new})
    store.write(lost)

    late = _fenced("a", {"r1": old, "r2": held})
    late.update_attempt(("r1", 1, 1), status="succeeded")
    late.insert_step_run(step_record("r2", 1))
    with pytest.raises(FencingError) as caught:
        store.write(late)
    assert caught.value.run_ids == frozenset({"r1"})
    assert [a.status for a in store.attempts("r1")] == ["lost"]  # never flips back
    assert store.step_runs("r2") == []  # nothing of the refused batch
    assert (store.get_run("r1").owner, store.get_run("r1").lease_epoch) == ("b", new)
    assert store.renew_leases("a", {"r1": old, "r2": held}, 60.0) == {"r1"}


def test_a_fenced_out_turn_names_the_lost_run_and_writes_nothing(store: StateStore) -> None:
    runs = ("r1", "r2", "r3")
    for run in runs:
        write_run(store, run)
    epochs = {run: store.acquire_lease(run, "a", 60.0) or 0 for run in runs}
    start = _fenced("a", epochs)
    for run in runs:
        _chain_turn(start, run, 1)
    store.write(start)
    leases = {run: store.get_run(run).lease_until for run in runs}
    store.release_lease("r2", "a", epochs["r2"])
    assert store.acquire_lease("r2", "b", 60.0) == epochs["r2"] + 1

    late = _fenced("a", epochs)
    for run in runs:
        _chain_turn(late, run, 2)
    with pytest.raises(
        FencingError, match=r"run\(s\) r2 .*nothing in the batch was written"
    ) as caught:
        store.write(late)
    assert caught.value.run_ids == frozenset({"r2"})
    for run in runs:
        assert [(s.id, s.status) for s in store.step_runs(run)] == [(1, StepStatus.RUNNING)]
        assert [(a.step_run_id, a.status) for a in store.attempts(run)] == [(1, "running")]
    assert [store.get_run(run).lease_until for run in ("r1", "r3")] == [leases["r1"], leases["r3"]]
    assert [e.kind for e in store.events()] == ["started"] * 3  # of the first turn only
    assert (store.get_run("r2").owner, store.get_run("r2").lease_epoch) == ("b", epochs["r2"] + 1)
    # The writer's connection is as good as before: a turn of the runs it still holds lands.
    held = _fenced("a", {run: epochs[run] for run in ("r1", "r3")})
    for run in ("r1", "r3"):
        _chain_turn(held, run, 2)
    store.write(held)
    assert [s.status for s in store.step_runs("r3")] == [StepStatus.SUCCEEDED, StepStatus.RUNNING]
    assert len(store.events()) == 3 + 4


def _chain_turn(batch: WriteBatch, run: str, step: int) -> None:
    """Add a chain's turn to ``batch``: step ``step - 1`` (if any) succeeded and step ``step``
    starts, with their events."""
    if step > 1:
        batch.update_step_run(run, step - 1, status=StepStatus.SUCCEEDED)
        batch.update_attempt((run, step - 1, 1), status="succeeded")
        batch.events.append(EventRecord(run, "succeeded", 1.0, step_run_id=step - 1))
    batch.insert_step_run(step_record(run, step, status=StepStatus.RUNNING))
    batch.insert_attempt(AttemptRecord(run, step, 1, "running"))
    batch.events.append(EventRecord(run, "started", 1.0, step_run_id=step))


def test_the_previous_holder_is_fenced_even_before_the_new_one_writes(store: StateStore) -> None:
    write_run(store)
    first = store.acquire_lease("r1", "a", 10.0)
    assert first is not None
    store.release_lease("r1", "a", first)
    assert store.acquire_lease("r1", "a", 10.0) == first + 1  # a takeover, even by "a"
    stale = _fenced("a", {"r1": first})
    stale.insert_step_run(step_record("r1", 1))
    with pytest.raises(FencingError):
        store.write(stale)


def _runs(store: StateStore, specs: list[tuple[str, str, float]]) -> None:
    store.write(
        WriteBatch(
            runs=[
                RunRecord(run_id, workflow, "h", RunStatus.PENDING, created_at=at)
                for run_id, workflow, at in specs
            ]
        )
    )


def test_claimable_runs_are_unheld_and_oldest_first(store: StateStore) -> None:
    _runs(store, [(f"r{i}", "wf" if i % 2 else "other", 100.0 + (i // 2)) for i in range(8)])
    _runs(store, [("done", "wf", 1.0)])
    finished = WriteBatch()
    finished.update_run("done", status=RunStatus.SUCCEEDED)
    store.write(finished)
    store.acquire_lease("r2", "someone", 60.0)
    found = [r.id for r in store.claimable_runs(limit=100)]
    assert found == ["r0", "r1", "r3", "r4", "r5", "r6", "r7"]
    first = store.claimable_runs(limit=3)
    assert [r.id for r in first] == ["r0", "r1", "r3"]
    after = claim_key(first[-1])
    assert [r.id for r in store.claimable_runs(limit=3, after=after)] == ["r4", "r5", "r6"]
    rest = store.claimable_runs(limit=100, skip_workflows=["wf"])
    assert [r.id for r in rest] == ["r0", "r4", "r6"]


def test_claimable_runs_come_higher_priority_first_and_page_across_priorities(
    store: StateStore,
) -> None:
    """Claiming order is run priority (higher first), then the oldest; a page's last key
    continues across priorities (a high-priority run created last was claimed after the
    whole backlog)."""
    store.write(
        WriteBatch(
            runs=[
                RunRecord(f"r{i}", "wf", "h", RunStatus.PENDING, created_at=100.0 + i, priority=p)
                for i, p in enumerate([0, 0, -5, 3, 0, 3, 10])
            ]
        )
    )
    order = ["r6", "r3", "r5", "r0", "r1", "r4", "r2"]
    assert [r.id for r in store.claimable_runs(limit=100)] == order
    seen: list[str] = []
    after = None
    while page := store.claimable_runs(limit=2, after=after):
        seen += [r.id for r in page]
        after = claim_key(page[-1])
    assert seen == order


@pytest.mark.integration
def test_a_claim_read_elsewhere_hides_no_older_run(pg_url: str) -> None:
    """PostgreSQL: replicas claim at the same instants. While another replica reads the
    oldest page to claim from it (a transaction that locks those rows, as a claim's read
    did with ``FOR UPDATE``), this one still sees the oldest free runs: it does not skip
    them for younger ones. Only the lease update decides who takes a run, and the other
    replica takes a few of its page at most, so skipping the page put runs created later
    ahead of the ones it left (a page is twice the room of the claimer: up to 2,000 runs)."""
    import psycopg

    store = open_store(pg_url)
    try:
        _runs(store, [(f"r{i}", "wf", float(i)) for i in range(6)])
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as other:  # its claim read, in flight
            other.execute(
                "SELECT id FROM runs WHERE owner IS NULL ORDER BY created_at, id LIMIT 3 "
                "FOR UPDATE SKIP LOCKED"
            )
            found = [r.id for r in store.claimable_runs(limit=2)]
            other.rollback()
        assert found == ["r0", "r1"]
    finally:
        store.close()


def test_a_run_with_an_expired_lease_is_claimable_again(store: StateStore) -> None:
    _runs(store, [("r1", "wf", 1.0)])
    store.acquire_lease("r1", "a", 0.2)
    assert store.claimable_runs(limit=10) == []
    time.sleep(0.3)
    assert [r.id for r in store.claimable_runs(limit=10)] == ["r1"]


def test_a_dead_engines_leases_are_released_and_its_runs_claimable(store: StateStore) -> None:
    _runs(store, [("r1", "wf", 1.0), ("r2", "wf", 2.0), ("r3", "wf", 3.0), ("done", "wf", 4.0)])
    for run_id in ("r1", "r2", "done"):
        store.acquire_lease(run_id, "dead", 60.0)
    store.acquire_lease("r3", "alive", 60.0)
    finished = WriteBatch()
    finished.update_run("done", status=RunStatus.SUCCEEDED)
    store.write(finished)
    assert store.lease_owners() == ["alive", "dead"]
    assert store.claimable_runs(limit=10) == []
    assert store.release_leases_of("dead") == 2
    assert store.lease_owners() == ["alive"]
    assert [r.id for r in store.claimable_runs(limit=10)] == ["r1", "r2"]
    taken = store.acquire_leases(["r1", "r2", "r3"], "new", 60.0)
    assert [(record.id, epoch) for record, epoch in taken] == [("r1", 2), ("r2", 2)]


def test_a_paused_run_is_claimable_and_gets_its_commands(store: StateStore) -> None:
    from kaon.store.base import CommandRecord

    _runs(store, [("r1", "wf", 1.0), ("r2", "wf", 2.0)])
    paused = WriteBatch()
    paused.update_run("r1", status=RunStatus.PAUSED)
    paused.commands.append(CommandRecord("r1", "continue", {}, time.time(), "me"))
    store.write(paused)
    assert [r.id for r in store.claimable_runs(limit=10)] == ["r1", "r2"]
    pending = store.pending_commands_of(["r1", "r2"])
    assert [c.kind for c in pending["r1"]] == ["continue"] and "r2" not in pending


# -- the engine through a store outage ---------------------------------------------------------


def _chain(n: int) -> WorkflowSpec:
    steps = tuple(
        TaskSpec(
            id=f"s{i}",
            config={"file": STEPS, "function": "sleeper"},
            inputs={"seconds": Const(0.02)},
            needs=(f"s{i - 1}",) if i else (),
        )
        for i in range(n)
    )
    return WorkflowSpec(name="chain", graph=GraphSpec(steps=steps))


@pytest.mark.integration
def test_the_engine_rides_out_dropped_connections(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL connections are not pinged before a write: every few moments all of the
    engine's connections are killed, and the run still finishes with every step once."""
    import psycopg

    store = open_store(pg_url)
    spec = _chain(30)
    run_id = operations.create_run(store, spec, bind_params(spec, {})).id
    engine = Engine(store, create_executor("inline", workers=2), open_artifact_store(str(tmp_path)))
    stop = threading.Event()
    kills = [0]

    def killer() -> None:
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.wait(0.1):
                found = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                kills[0] += len(found)

    thread = threading.Thread(target=killer)
    thread.start()
    guard = threading.Timer(60, engine.stop)
    guard.start()
    try:
        engine.add_run(run_id)
        status = engine.run_until_done(run_id)
    finally:
        guard.cancel()
        stop.set()
        thread.join(10)
        engine.close()
    assert status is RunStatus.SUCCEEDED, (store.get_run(run_id).error, store.step_runs(run_id))
    assert kills[0] > 0
    rows = store.step_runs(run_id)
    assert [r.status for r in rows] == [StepStatus.SUCCEEDED] * 30
    assert all(len(store.attempts(run_id, r.id)) == 1 for r in rows)
    store.close()

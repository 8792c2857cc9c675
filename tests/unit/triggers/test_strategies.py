"""Run strategies with real runs through an engine (inline executor, SQLite store)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

from triggers_support import STEPS, EngineThread, register, runs_of, wait_for

from kaon.engine import operations
from kaon.model.params import bind_params
from kaon.model.specs import Expr, GraphSpec, ParamSpec, ParamType, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store.base import RunRecord, WriteBatch
from kaon.store.sql import SQLStore
from kaon.triggers import strategies

SPEC = WorkflowSpec(
    name="job",
    graph=GraphSpec(
        steps=(
            TaskSpec(
                id="hold",
                config={"file": STEPS, "function": "hold"},
                inputs={"seconds": Expr("params.seconds"), "gate": Expr("params.gate")},
            ),
            TaskSpec(
                id="check",
                needs=("hold",),
                config={"file": STEPS, "function": "fail_if"},
                inputs={"fail": Expr("params.fail")},
            ),
        )
    ),
    params=(
        ParamSpec("seconds", ParamType.FLOAT, 0.0),
        ParamSpec("gate", ParamType.STR, ""),
        ParamSpec("fail", ParamType.BOOL, False),
    ),
)


def _create(store: SQLStore, priority: int | None = None, **params: object) -> str:
    run = operations.create_run(store, SPEC, bind_params(SPEC, params), priority=priority)
    strategies.on_run_created(store, run)
    time.sleep(0.002)  # distinct creation times: the queue is FIFO by creation
    return run.id


def _watch_active(store: SQLStore, stop: threading.Event, seen: list[int]) -> None:
    while not stop.is_set():
        seen.append(sum(1 for r in runs_of(store, "job") if r.status is RunStatus.RUNNING))
        time.sleep(0.005)


def _finished(store: SQLStore, ids: list[str]) -> bool:
    return all(store.get_run(i).status.is_terminal for i in ids)


def test_parallel_with_a_concurrency_limit(store: SQLStore, tmp_path: Path) -> None:
    register(store, SPEC, run_strategy="parallel", concurrency=2)
    ids = [_create(store, seconds=0.25) for _ in range(5)]
    seen: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_active, args=(store, stop, seen))
    watcher.start()
    engine = EngineThread(store, tmp_path)
    try:
        wait_for(lambda: _finished(store, ids), what="all runs")
    finally:
        stop.set()
        watcher.join()
        engine.stop()
    assert all(store.get_run(i).status is RunStatus.SUCCEEDED for i in ids)
    assert max(seen) == 2


def test_sequential_runs_one_at_a_time_in_creation_order(store: SQLStore, tmp_path: Path) -> None:
    register(store, SPEC, run_strategy="sequential")
    ids = [_create(store, seconds=0.05) for _ in range(4)]
    engine = EngineThread(store, tmp_path)
    try:
        wait_for(lambda: _finished(store, ids), what="all runs")
    finally:
        engine.stop()
    runs = [store.get_run(i) for i in ids]
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)
    for before, after in itertools.pairwise(runs):
        assert before.ended_at is not None and after.started_at is not None
        assert after.started_at >= before.ended_at


def test_a_sequential_queue_puts_a_higher_priority_run_first(
    store: SQLStore, tmp_path: Path
) -> None:
    """Engines claim runs higher priority first; a sequential workflow's queue is in the same
    order, so an urgent run created last runs right after the one running. (The queue was
    by creation only: the urgent run, seen first, was refused for the older ones waiting,
    and the runs of its workflow behind it were then skipped for that pass.)"""
    register(store, SPEC, run_strategy="sequential")
    ids = [_create(store, seconds=0.1) for _ in range(3)]
    urgent = _create(store, priority=5, seconds=0.0)
    engine = EngineThread(store, tmp_path)
    try:
        wait_for(lambda: _finished(store, [*ids, urgent]), what="all runs")
    finally:
        engine.stop()
    runs = sorted((store.get_run(i) for i in [*ids, urgent]), key=lambda r: r.started_at or 0)
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)
    assert [r.id for r in runs] == [urgent, *ids]
    for before, after in itertools.pairwise(runs):
        assert before.ended_at is not None and after.started_at is not None
        assert after.started_at >= before.ended_at


def test_a_restarted_run_waits_its_turn_behind_a_sequential_running_run(
    store: SQLStore, tmp_path: Path
) -> None:
    """A restart put the run straight back to ``running``, and the engine claims a running
    run as an orphan to recover, without asking the strategy: an old failed run restarted
    while a newer one ran made two runs of a sequential workflow at once."""
    register(store, SPEC, run_strategy="sequential")
    gate = tmp_path / "gate"
    engine = EngineThread(store, tmp_path)
    try:
        old = _create(store, fail=True)
        wait_for(lambda: store.get_run(old).status is RunStatus.FAILED, what="failure")
        newer = _create(store, gate=str(gate))
        wait_for(lambda: store.get_run(newer).status is RunStatus.RUNNING, what="newer running")
        restarted = operations.restart_run(store, old)
        assert restarted.status is RunStatus.PENDING
        time.sleep(0.4)  # several claim rounds
        assert store.get_run(old).status is RunStatus.PENDING
        reason = strategies.waiting_reason(store, store.get_run(old))
        assert reason is not None and f"waits for run {newer}" in reason
        gate.touch()
        wait_for(lambda: store.get_run(old).status.is_terminal, what="restarted run ends")
    finally:
        engine.stop()
    ended, began = store.get_run(newer).ended_at, store.get_run(old).started_at
    assert ended is not None and began is not None and began >= ended
    assert store.get_run(old).restarts == 1


def test_strict_sequential_blocks_after_a_failure_until_unblocked(
    store: SQLStore, tmp_path: Path
) -> None:
    register(store, SPEC, run_strategy="strict_sequential")
    failing = _create(store, fail=True)
    waiting = _create(store)
    engine = EngineThread(store, tmp_path)
    try:
        wait_for(lambda: store.get_run(failing).status is RunStatus.FAILED, what="failure")
        assert strategies.is_blocked(store, "job")
        time.sleep(0.4)  # several claim rounds
        assert store.get_run(waiting).status is RunStatus.PENDING
        # Why it waits, for the run page and GET /runs/ID (it said nothing: pending forever).
        reason = strategies.waiting_reason(store, store.get_run(waiting))
        assert reason is not None and f"after run {failing} failed" in reason
        assert "kaon unblock job" in reason
        assert strategies.unblock(store, "job") is True
        wait_for(lambda: store.get_run(waiting).status is RunStatus.SUCCEEDED, what="unblocked run")
        assert strategies.unblock(store, "job") is False
    finally:
        engine.stop()


def test_a_run_queued_before_an_unblock_that_fails_after_it_blocks_again(
    store: SQLStore, tmp_path: Path
) -> None:
    register(store, SPEC, run_strategy="strict_sequential")
    first, second = _create(store, fail=True), _create(store, fail=True)
    third = _create(store)
    engine = EngineThread(store, tmp_path)
    try:
        wait_for(lambda: store.get_run(first).status is RunStatus.FAILED, what="first failure")
        assert strategies.unblock(store, "job") is True
        wait_for(lambda: store.get_run(second).status is RunStatus.FAILED, what="second failure")
        assert strategies.is_blocked(store, "job")
        time.sleep(0.4)  # several claim rounds
        assert store.get_run(third).status is RunStatus.PENDING
    finally:
        engine.stop()


def test_first_only_drops_a_run_created_while_one_runs(store: SQLStore, tmp_path: Path) -> None:
    register(store, SPEC, run_strategy="first_only")
    gate = tmp_path / "gate"
    engine = EngineThread(store, tmp_path)
    try:
        first = _create(store, gate=str(gate))
        wait_for(lambda: store.get_run(first).status is RunStatus.RUNNING, what="first running")
        second = _create(store)
        dropped = store.get_run(second)
        assert dropped.status is RunStatus.CANCELLED
        assert dropped.error == strategies.DROPPED_REASON
        gate.touch()
        wait_for(lambda: store.get_run(first).status is RunStatus.SUCCEEDED, what="first done")
        third = _create(store)  # nothing runs now: accepted
        wait_for(lambda: store.get_run(third).status is RunStatus.SUCCEEDED, what="third done")
    finally:
        engine.stop()


def test_a_running_run_superseded_by_last_only_says_by_which_run(
    store: SQLStore, tmp_path: Path
) -> None:
    """The strategy's kill command carried the reason, the engine dropped it: the running
    run ended with "killed by run strategy", naming no run (a pending one said which)."""
    register(store, SPEC, run_strategy="last_only")
    engine = EngineThread(store, tmp_path)
    try:
        first = _create(store, gate=str(tmp_path / "never"))
        wait_for(lambda: store.get_run(first).status is RunStatus.RUNNING, what="first running")
        second = _create(store)
        wait_for(lambda: store.get_run(second).status is RunStatus.SUCCEEDED, what="second done")
    finally:
        engine.stop()
    ended = store.get_run(first)
    assert ended.status is RunStatus.CANCELLED
    assert ended.error == f"superseded by run {second} (last-only strategy)"


def test_last_only_cancels_the_running_run_for_the_newest(store: SQLStore, tmp_path: Path) -> None:
    register(store, SPEC, run_strategy="last_only")
    gate = tmp_path / "never"
    engine = EngineThread(store, tmp_path)
    try:
        first = _create(store, gate=str(gate))
        wait_for(lambda: store.get_run(first).status is RunStatus.RUNNING, what="first running")
        second = _create(store, gate=str(gate))
        third = _create(store)  # supersedes the second before it ever starts
        wait_for(lambda: store.get_run(third).status is RunStatus.SUCCEEDED, what="newest done")
        assert store.get_run(first).status is RunStatus.CANCELLED
        assert store.get_run(second).status is RunStatus.CANCELLED
        assert "superseded" in (store.get_run(second).error or "")
    finally:
        engine.stop()


def test_properties_default_for_unregistered_workflows(store: SQLStore) -> None:
    assert strategies.workflow_properties(store, "nope") == strategies.DEFAULT_PROPERTIES
    assert strategies.strategy_of({"run_strategy": "weird", "concurrency": 0}) == (
        strategies.RunStrategy.PARALLEL,
        None,
    )


def test_a_failure_after_the_unblock_blocks_whatever_the_run_s_age(store: SQLStore) -> None:
    # Six failed runs, then an unblock; the oldest is restarted (queued again, it is the
    # oldest: first in line) and fails again. The newest runs by creation all failed before
    # the unblock: only when each run ended counts.
    register(store, SPEC, run_strategy="strict_sequential")
    runs = [
        RunRecord(f"r{n}", "job", "h", RunStatus.FAILED, created_at=float(n), ended_at=n + 0.5)
        for n in range(1, 7)
    ]
    store.write(WriteBatch(runs=runs))
    assert strategies.is_blocked(store, "job")
    assert strategies.unblock(store, "job", now=10.0) is True
    assert not strategies.is_blocked(store, "job")
    store.write(WriteBatch(run_updates={"r1": {"ended_at": 11.0, "restarts": 1}}))
    assert strategies.is_blocked(store, "job")
    waiting = RunRecord("r7", "job", "h", RunStatus.PENDING, created_at=12.0)
    store.write(WriteBatch(runs=[waiting]))
    reason = strategies.waiting_reason(store, waiting)
    assert reason is not None and "after run r1 failed" in reason

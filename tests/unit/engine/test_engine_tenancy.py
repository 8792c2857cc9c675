"""Pools, tag permits, priorities and fair share between owner groups (kaon.engine.tenancy),
checked from the attempt times recorded in a real SQLite store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from conftest import Harness, flow, task

from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.errors import DefinitionError
from kaon.executors import create_executor
from kaon.model.resources import ResourceSpec
from kaon.model.specs import Const, ForeachSpec, GraphSpec, StepDefaults, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store.base import AttemptRecord, HoldClaim, PermitRecord, PoolRecord


def sweep(step_id: str, n: int, body_fields: dict[str, Any], seconds: float = 0.0) -> ForeachSpec:
    """A foreach over ``range(n)`` whose body sleeps ``seconds`` (a no-op when 0)."""
    body = task("item", "sleeper", inputs={"seconds": seconds}, **body_fields)
    return ForeachSpec(id=step_id, items=Const(list(range(n))), body=GraphSpec(steps=(body,)))


def most_at_once(attempts: Iterable[AttemptRecord]) -> int:
    """The most attempts running at one instant, from their recorded start and end times."""
    edges: list[tuple[float, int]] = []
    for a in attempts:
        assert a.started_at is not None and a.ended_at is not None, a
        edges += [(a.started_at, 1), (a.ended_at, -1)]
    running = peak = 0
    for _at, delta in sorted(edges):  # an end sorts before a start at the same instant
        running += delta
        peak = max(peak, running)
    return peak


def test_pool_slots_are_never_exceeded(inline: Harness) -> None:
    inline.store.set_pool(PoolRecord("small", slots=2))
    status, run_id = inline.run(flow(sweep("s", 12, {"pool": "small"}, 0.02)))
    assert status is RunStatus.SUCCEEDED
    attempts = inline.store.attempts(run_id)
    assert len(attempts) == 12 and most_at_once(attempts) == 2
    assert inline.store.hold_usage() == []  # every hold released with its attempt's end


def test_a_pool_quota_on_cpus_limits_what_its_steps_ask_together(inline: Harness) -> None:
    inline.store.set_pool(PoolRecord("cpu", slots=10, cpus=2.0))
    fields = {"pool": "cpu", "resources": ResourceSpec(cpus=1.0)}
    status, run_id = inline.run(flow(sweep("s", 6, fields, 0.02)))
    assert status is RunStatus.SUCCEEDED
    assert most_at_once(inline.store.attempts(run_id)) == 2


def test_a_tag_permit_holds_across_runs_of_different_workflows(inline: Harness) -> None:
    inline.store.set_permit(PermitRecord("db", max=1))
    tagged = {"tags": ("db",)}
    first = inline.create(flow(sweep("a", 5, tagged, 0.02), name="one"))
    second = inline.create(flow(sweep("b", 5, tagged, 0.02), task("free", "const"), name="two"))
    engine = inline.engine()
    try:
        engine.add_run(first)
        engine.add_run(second)
        assert engine.run_until_done(first) is RunStatus.SUCCEEDED
        assert engine.run_until_done(second) is RunStatus.SUCCEEDED
    finally:
        engine.close()
    rows = {r.id: r.path for r in inline.store.step_runs(second, all_levels=True)}
    both = inline.store.attempts(first) + [
        a for a in inline.store.attempts(second) if rows[a.step_run_id] != "free"
    ]
    assert len(both) == 10 and most_at_once(both) == 1


def test_step_priorities_order_dispatch_when_slots_are_short(inline: Harness) -> None:
    inline.store.set_pool(PoolRecord("one", slots=1))
    steps = [
        task(f"p{p}", "sleeper", inputs={"seconds": 0.01}, pool="one", priority=p)
        for p in (1, 3, 2, 5, 4)
    ]
    status, run_id = inline.run(flow(*steps))
    assert status is RunStatus.SUCCEEDED
    paths = {r.id: r.path for r in inline.store.step_runs(run_id)}
    order = [paths[a.step_run_id] for a in sorted(inline.store.attempts(run_id), key=_start)]
    assert order == ["p5", "p4", "p3", "p2", "p1"]


def test_run_priority_goes_before_an_older_run(inline: Harness) -> None:
    inline.store.set_pool(PoolRecord("one", slots=1))
    spec = flow(*(task(f"s{i}", "sleeper", inputs={"seconds": 0.01}) for i in range(4)))
    spec = WorkflowSpec(spec.name, spec.graph, defaults=_pool_defaults("one"))
    low = create_run(inline.store, spec, {}).id
    high = create_run(inline.store, spec, {}, priority=7).id
    assert inline.store.get_run(high).priority == 7
    engine = inline.engine()
    try:
        engine.add_run(low)
        engine.add_run(high)
        engine.run_until_done(high)
        # Turns run only while the engine loops: low, if it ended with high's last turns, is
        # no longer held (driving a finished run again raises), else it is driven now.
        if low in engine.runs:
            engine.run_until_done(low)
    finally:
        engine.close()
    low_first = min(_start(a) for a in inline.store.attempts(low))
    high_last = max(_start(a) for a in inline.store.attempts(high))
    assert high_last < low_first  # both were loaded before the first dispatch


def test_an_unknown_pool_is_refused_at_run_start_naming_the_step(inline: Harness) -> None:
    spec = flow(task("train", "const", pool="gpu"))
    with pytest.raises(DefinitionError, match=r"step 'train': pool 'gpu' does not exist"):
        inline.create(spec)
    inline.store.set_pool(PoolRecord("gpu", slots=1))
    assert inline.create(spec)


def test_holds_of_a_crashed_engine_are_reclaimed_on_takeover(inline: Harness) -> None:
    inline.store.set_pool(PoolRecord("small", slots=1))
    run_id = inline.create(flow(task("a", "const", pool="small")))
    crashed = Engine(inline.store, create_executor("inline", workers=1), inline.artifacts)
    crashed.add_run(run_id)  # holds the lease; then claims a hold and "dies" before its batch
    assert inline.store.claim_holds(crashed.owner, [HoldClaim(run_id, "a", 1, "small")]) == [True]
    assert [u.count for u in inline.store.hold_usage()] == [1]
    assert inline.store.claim_holds("other", [HoldClaim(run_id, "a", 2, "small")]) == [False]
    crashed.executor.shutdown()
    crashed._lock.release()
    inline.store.release_lease(run_id, crashed.owner)  # its lease lapsed
    assert inline.store.hold_usage() == []  # a dead engine's holds stop counting at once
    assert inline.drive(run_id) is RunStatus.SUCCEEDED  # the takeover deletes them
    assert inline.store.hold_usage() == []
    assert inline.store.claim_holds("x", [HoldClaim(run_id, "b", 1, "small")]) == [True]


def test_a_resume_after_a_crash_mid_run_leaks_no_hold_and_keeps_the_limit(
    inline: Harness,
) -> None:
    inline.store.set_pool(PoolRecord("small", slots=2))
    run_id = inline.create(flow(sweep("s", 6, {"pool": "small"}, 0.3)))
    crashed = Engine(
        inline.store, create_executor("inline", workers=4), inline.artifacts, lease_ttl=1.0
    )
    driving = threading.Thread(target=crashed.run_until_done, args=(run_id,))
    driving.start()
    _wait(lambda: len(inline.store.attempts(run_id)) >= 2)
    crashed.stop()  # dies mid-run: leases and holds stay until its lease lapses
    driving.join(10)
    assert [u.count for u in inline.store.hold_usage()] == [2]
    time.sleep(1.1)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    crashed.executor.shutdown()
    crashed._lock.release()
    attempts = inline.store.attempts(run_id)
    assert {a.status for a in attempts} <= {"succeeded", "lost"}
    assert most_at_once(attempts) <= 2
    assert inline.store.hold_usage() == []


def test_fair_share_starts_a_small_pipeline_during_a_big_sweep(inline: Harness) -> None:
    """The issue's quota test: group A's 5,000-item sweep and group B's 10-step pipeline
    share a pool of 4 slots in one engine; B's first step starts within 2 s of its
    submission, B finishes long before A, and the pool never runs more than 4."""
    inline.store.set_pool(PoolRecord("shared", slots=4))
    big = flow(sweep("items", 5000, {}), name="sweep")
    big = WorkflowSpec(big.name, big.graph, defaults=_pool_defaults("shared"))
    chain = [task("s0", "const", pool="shared")] + [
        task(f"s{i}", "const", pool="shared", needs=(f"s{i - 1}",)) for i in range(1, 10)
    ]
    small = flow(*chain, name="pipeline")
    groups = {"sweep": "team-a", "pipeline": "team-b"}
    engine = Engine(
        inline.store,
        create_executor("inline", workers=8),
        inline.artifacts,
        owner_group_of=groups.get,
    )
    serving = threading.Thread(target=engine.serve, kwargs={"claim_every_s": 0.05})
    serving.start()
    try:
        sweep_id = create_run(inline.store, big, {}).id
        _wait(lambda: len(inline.store.attempts(sweep_id)) >= 50)
        submitted = time.time()
        pipe_id = create_run(inline.store, small, {}).id
        _wait(lambda: inline.store.get_run(pipe_id).status is RunStatus.SUCCEEDED, 30)
        first = min(_start(a) for a in inline.store.attempts(pipe_id))
        assert first - submitted < 2.0
        assert inline.store.get_run(sweep_id).status is RunStatus.RUNNING  # not starved
    finally:
        engine.stop()
        serving.join(30)
        engine.close()
    attempts = inline.store.attempts(sweep_id) + inline.store.attempts(pipe_id)
    assert most_at_once(a for a in attempts if a.ended_at is not None) <= 4


def _pool_defaults(pool: str) -> StepDefaults:
    return StepDefaults(pool=pool)


def _start(attempt: AttemptRecord) -> float:
    assert attempt.started_at is not None
    return attempt.started_at


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_step_asking_more_than_its_pool_offers_fails_unschedulable(inline: Harness) -> None:
    """A step asking for more than its pool's quota can never start: it fails at once with
    ``Unschedulable`` naming the pool, instead of waiting forever."""
    inline.store.set_pool(PoolRecord("cpu", slots=4, cpus=2.0, gpus=1.0, memory=4 * 2**30))
    for asked, said in (
        (ResourceSpec(cpus=4.0), "4 cpus"),
        (ResourceSpec(gpus=2.0), "2 gpus"),
        (ResourceSpec(memory=8 * 2**30), "8.0 GiB memory"),
    ):
        run_id = inline.create(flow(task("big", "const", pool="cpu", resources=asked)))
        started = time.monotonic()
        assert inline.drive(run_id, timeout=10) is RunStatus.FAILED
        assert time.monotonic() - started < 5
        [attempt] = inline.store.attempts(run_id)
        error = attempt.error
        assert isinstance(error, dict) and error["type"] == "Unschedulable", error
        assert f"asks for {said}" in error["message"] and "pool 'cpu'" in error["message"]
    assert inline.store.hold_usage() == []


def test_a_group_is_claimed_a_run_while_another_groups_backlog_fills_the_engine(
    inline: Harness,
) -> None:
    """Team A's 30 runs fill an engine that holds 3 at once; team B's run, submitted after
    them, is claimed when the first of A's ends (B holds none, A holds two), not after A's
    whole backlog drains."""
    groups = {"sweep": "team-a", "pipeline": "team-b"}
    engine = Engine(
        inline.store,
        create_executor("inline", workers=4),
        inline.artifacts,
        owner_group_of=groups.get,
    )
    slow = flow(task("work", "sleeper", inputs={"seconds": 0.4}), name="sweep")
    backlog = [create_run(inline.store, slow, {}).id for _ in range(30)]
    pipe_id = create_run(inline.store, flow(task("one", "const"), name="pipeline"), {}).id
    serving = threading.Thread(target=engine.serve, kwargs={"claim_every_s": 0.05, "max_runs": 3})
    started = time.time()
    serving.start()
    try:
        _wait(lambda: inline.store.get_run(pipe_id).status is RunStatus.SUCCEEDED, 30)
        first = min(_start(a) for a in inline.store.attempts(pipe_id))
        assert first - started < 2.0
        done = [r for r in backlog if inline.store.get_run(r).status is RunStatus.SUCCEEDED]
        assert len(done) < 15  # long before A's backlog drained
    finally:
        engine.stop()
        serving.join(60)
        engine.close()


@pytest.mark.parametrize("grouped", [False, True], ids=["one-group", "fair-share"])
def test_a_high_priority_run_is_claimed_before_an_older_backlog(
    inline: Harness, grouped: bool
) -> None:
    """A backlog of 20 runs fills an engine that holds 2 at once; a run of priority 10,
    submitted after them, is claimed at the first free place, not after the backlog drains
    (claiming was oldest first whatever the priority: priority only ordered the steps of
    runs already held)."""
    groups = {"sweep": "team-a", "urgent": "team-a"}
    engine = Engine(
        inline.store,
        create_executor("inline", workers=4),
        inline.artifacts,
        owner_group_of=groups.get if grouped else None,
    )
    slow = flow(task("work", "sleeper", inputs={"seconds": 0.3}), name="sweep")
    backlog = [create_run(inline.store, slow, {}).id for _ in range(20)]
    serving = threading.Thread(target=engine.serve, kwargs={"claim_every_s": 0.05, "max_runs": 2})
    serving.start()
    try:
        _wait(lambda: len(engine.runs) == 2)
        urgent = flow(task("one", "const"), name="urgent")
        urgent_id = create_run(inline.store, urgent, {}, priority=10).id
        _wait(lambda: inline.store.get_run(urgent_id).status is RunStatus.SUCCEEDED, 30)
        done = [r for r in backlog if inline.store.get_run(r).status is RunStatus.SUCCEEDED]
        assert len(done) <= 3, done
    finally:
        engine.stop()
        serving.join(60)
        engine.close()

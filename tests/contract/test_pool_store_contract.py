"""Pools, tag permits and holds: the same contract on SQLite and PostgreSQL, including two
engines (replicas) on one database never exceeding a permit together."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_store_contract import write_run

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.errors import NotFoundError
from kaon.executors import create_executor
from kaon.model.specs import Const, ForeachSpec, GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import (
    AttemptRecord,
    HoldClaim,
    PermitRecord,
    PoolRecord,
    StateStore,
    WriteBatch,
)

STEPS = str(Path(__file__).parents[1] / "unit" / "engine" / "engine_steps.py")


def _leased(store: StateStore, run_id: str, owner: str = "e1") -> None:
    write_run(store, run_id)
    assert store.acquire_lease(run_id, owner, 60.0) is not None


def test_pools_and_permits_are_set_listed_and_deleted(store: StateStore) -> None:
    store.set_pool(PoolRecord("gpu", slots=2, gpus=4.0, memory=2**30, updated_at=1.0))
    store.set_pool(PoolRecord("gpu", slots=3, updated_at=2.0))  # replaced
    store.set_permit(PermitRecord("db", 1, 1.0))
    assert store.pools() == [PoolRecord("gpu", slots=3, updated_at=2.0)]
    assert store.permits() == [PermitRecord("db", 1, 1.0)]
    store.delete_pool("gpu")
    store.delete_permit("db")
    assert store.pools() == [] and store.permits() == []
    with pytest.raises(NotFoundError):
        store.delete_pool("gpu")
    with pytest.raises(NotFoundError):
        store.delete_permit("db")


@pytest.mark.parametrize("kind", ["pool", "permit"])
def test_a_re_created_limit_counts_the_attempts_still_running(store: StateStore, kind: str) -> None:
    """Deleting a pool or permit while attempts hold it, then making it again (a reset),
    keeps those attempts counted until they end: deleting their holds with the limit let
    new attempts start beside them past the new limit."""
    _leased(store, "r1")

    def make() -> None:
        if kind == "pool":
            store.set_pool(PoolRecord("p", slots=1))
        else:
            store.set_permit(PermitRecord("db", 1))

    def claim(path: str) -> list[bool]:
        pool, tags = ("p", ()) if kind == "pool" else ("default", ("db",))
        return store.claim_holds("e1", [HoldClaim("r1", path, 1, pool, tags)])

    make()
    assert claim("a") == [True]
    store.delete_pool("p") if kind == "pool" else store.delete_permit("db")
    make()
    assert claim("b") == [False]  # "a" still runs
    store.write(WriteBatch(holds_released=[("r1", "a", 1)]))
    assert claim("b") == [True]


def test_claims_are_granted_in_order_while_they_fit(store: StateStore) -> None:
    _leased(store, "r1")
    store.set_pool(PoolRecord("p", slots=3, cpus=4.0))
    store.set_permit(PermitRecord("db", 1))
    claims = [
        HoldClaim("r1", "a", 1, "p", ("db",), "g1", cpus=1.0),
        HoldClaim("r1", "b", 1, "p", ("db",), "g1", cpus=1.0),  # the permit is taken
        HoldClaim("r1", "c", 1, "p", (), "g2", cpus=3.5),  # over the CPU quota
        HoldClaim("r1", "d", 1, "p", ("free",), "g2", cpus=2.0),  # an unpermitted tag
        HoldClaim("r1", "e", 1, "p", (), "g2"),  # the third slot
        HoldClaim("r1", "f", 1, "p", (), "g2"),  # no slot left
        HoldClaim("r1", "g", 1, "elsewhere", ()),  # no limit at all
    ]
    assert store.claim_holds("e1", claims) == [True, False, False, True, True, False, True]
    usage = {(u.kind, u.name): u for u in store.hold_usage()}
    assert usage[("pool", "p")].count == 3 and usage[("pool", "p")].cpus == 3.0
    assert usage[("pool", "p")].by_group == {"g1": 1, "g2": 2}
    assert usage[("tag", "db")].count == 1 and set(usage) == {("pool", "p"), ("tag", "db")}


def test_a_hold_goes_with_the_write_that_ends_its_attempt(store: StateStore) -> None:
    _leased(store, "r1")
    store.set_permit(PermitRecord("db", 1))
    assert store.claim_holds("e1", [HoldClaim("r1", "a", 1, "default", ("db",))]) == [True]
    assert store.claim_holds("e1", [HoldClaim("r1", "b", 1, "default", ("db",))]) == [False]
    store.write(WriteBatch(holds_released=[("r1", "a", 1)]))
    assert store.hold_usage() == []
    assert store.claim_holds("e1", [HoldClaim("r1", "b", 1, "default", ("db",))]) == [True]


def test_released_holds_keep_the_reattached_attempts(store: StateStore) -> None:
    _leased(store, "r1")
    store.set_pool(PoolRecord("p", slots=5))
    claims = [HoldClaim("r1", path, 1, "p") for path in ("a", "b", "c")]
    assert store.claim_holds("e1", claims) == [True] * 3
    store.release_holds("r1", [("b", 1)])
    assert [u.count for u in store.hold_usage()] == [1]
    store.release_holds("r1")
    assert store.hold_usage() == []


def test_holds_of_a_run_whose_lease_lapsed_do_not_count(store: StateStore) -> None:
    _leased(store, "r1")
    store.set_pool(PoolRecord("p", slots=1))
    assert store.claim_holds("e1", [HoldClaim("r1", "a", 1, "p")]) == [True]
    store.release_lease("r1", "e1")
    assert store.hold_usage() == []
    assert store.claim_holds("e2", [HoldClaim("r1", "a", 2, "p")]) == [True]


def test_pool_load_counts_live_pool_holds_per_group_of_other_engines(store: StateStore) -> None:
    _leased(store, "r1", "e1")
    _leased(store, "r2", "e2")
    _leased(store, "r3", "e2")
    store.set_pool(PoolRecord("p", slots=10))
    store.set_permit(PermitRecord("db", 10))
    claims = [
        HoldClaim("r1", "a", 1, "p", ("db",), "g1"),
        HoldClaim("r2", "a", 1, "p", ("db",), "g1"),  # tag holds are not a pool's load
        HoldClaim("r2", "b", 1, "p", (), "g2"),
        HoldClaim("r3", "a", 1, "p", (), "g2"),
        HoldClaim("r3", "b", 1, "unlimited", (), "g2"),  # no pool row: no hold
    ]
    assert store.claim_holds("e1", claims) == [True] * 5
    assert store.pool_load() == {("p", "g1"): 2, ("p", "g2"): 2}
    assert store.pool_load(other_than="e1") == {("p", "g1"): 1, ("p", "g2"): 2}
    assert store.pool_load(other_than="e2") == {("p", "g1"): 1}
    store.release_lease("r3", "e2")  # a lapsed lease: its holds stop counting
    assert store.pool_load(other_than="e1") == {("p", "g1"): 1, ("p", "g2"): 1}


def test_concurrent_claimers_never_exceed_a_permit_together(url: str) -> None:
    """Two stores on one database (two replicas) claim at once: the lock on the permit row
    keeps the total at its limit."""
    stores = [open_store(url), open_store(url)]
    try:
        for i in range(2):
            _leased(stores[0], f"r{i}", f"e{i}")
        stores[0].set_permit(PermitRecord("db", 3))
        granted = [0, 0]

        def claim(i: int) -> None:
            for n in range(20):
                ok = stores[i].claim_holds(f"e{i}", [HoldClaim(f"r{i}", f"s{n}", 1, "x", ("db",))])
                granted[i] += ok[0]

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(granted) == 3
        assert [u.count for u in stores[0].hold_usage()] == [3]
    finally:
        for s in stores:
            s.close()


def test_two_engines_on_one_database_share_a_tag_permit(url: str, tmp_path: Path) -> None:
    """Two replicas, each driving its own run of tagged steps with room for four at once: at
    most two attempts carrying the tag (its permit) run at any instant across both, by the
    attempt times recorded in the store."""
    setup = open_store(url)
    setup.set_permit(PermitRecord("warehouse", 2))
    body = TaskSpec(
        id="load",
        config={"file": STEPS, "function": "sleeper"},
        inputs={"seconds": Const(0.03)},
        tags=("warehouse",),
    )
    spec = WorkflowSpec(
        "loads",
        GraphSpec(
            steps=(ForeachSpec(id="each", items=Const(list(range(6))), body=GraphSpec((body,))),)
        ),
    )
    run_ids = [create_run(setup, spec, {}).id for _ in range(2)]
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    stores = [open_store(url) for _ in run_ids]
    engines = [Engine(s, create_executor("inline", workers=4), artifacts) for s in stores]
    results: dict[str, RunStatus] = {}

    def drive(engine: Engine, run_id: str) -> None:
        results[run_id] = engine.run_until_done(run_id)

    threads = [
        threading.Thread(target=drive, args=pair) for pair in zip(engines, run_ids, strict=True)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for engine in engines:
            engine.close()
        for s in stores:
            s.close()
    assert results == dict.fromkeys(run_ids, RunStatus.SUCCEEDED)
    attempts = [a for r in run_ids for a in setup.attempts(r)]
    setup.close()
    assert len(attempts) == 12 and _most_at_once(attempts) == 2


def test_fair_share_counts_the_other_engines_attempts(url: str, tmp_path: Path) -> None:
    """Replica 1 runs an attempt of team A in pool ``shared``; replica 2 holds an older run
    of team A and a run of team B, with room for one attempt: team B goes first, as team A
    already has one running (on the other replica). Counting only its own attempts, replica 2
    would see a tie and start the older run, team A's."""
    setup = open_store(url)
    setup.set_pool(PoolRecord("shared", slots=3))

    def one_step(name: str, seconds: float) -> WorkflowSpec:
        step = TaskSpec(
            id="work",
            config={"file": STEPS, "function": "sleeper"},
            inputs={"seconds": Const(seconds)},
            pool="shared",
        )
        return WorkflowSpec(name, GraphSpec(steps=(step,)))

    groups = {"sweep-1": "team-a", "sweep-2": "team-a", "pipeline": "team-b"}
    long_a = create_run(setup, one_step("sweep-1", 1.5), {}).id
    older_a = create_run(setup, one_step("sweep-2", 0.1), {}).id
    team_b = create_run(setup, one_step("pipeline", 0.1), {}).id
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    stores = [open_store(url), open_store(url)]
    engines = [
        Engine(s, create_executor("inline", workers=1), artifacts, owner_group_of=groups.get)
        for s in stores
    ]
    results: dict[str, RunStatus] = {}
    first = threading.Thread(
        target=lambda: results.update({long_a: engines[0].run_until_done(long_a)})
    )
    try:
        first.start()
        deadline = time.monotonic() + 30
        while not setup.attempts(long_a):
            assert time.monotonic() < deadline, "replica 1 never started its attempt"
            time.sleep(0.01)
        engines[1].add_run(older_a)
        engines[1].add_run(team_b)
        for run_id in (team_b, older_a):  # one call drives both; the other may be done
            if run_id in engines[1].runs:
                engines[1].run_until_done(run_id)
            results[run_id] = setup.get_run(run_id).status
    finally:
        first.join(60)
        for engine in engines:
            engine.close()
        for s in stores:
            s.close()
    assert results == dict.fromkeys((long_a, older_a, team_b), RunStatus.SUCCEEDED)
    (a_start,) = [a.started_at for a in setup.attempts(older_a)]
    (b_start,) = [a.started_at for a in setup.attempts(team_b)]
    (long_attempt,) = setup.attempts(long_a)
    setup.close()
    assert a_start is not None and b_start is not None and long_attempt.ended_at is not None
    assert b_start < a_start < long_attempt.ended_at  # B first, while A ran on replica 1


def _most_at_once(attempts: list[AttemptRecord]) -> int:
    edges: list[tuple[float, int]] = []
    for a in attempts:
        assert a.started_at is not None and a.ended_at is not None
        edges += [(a.started_at, 1), (a.ended_at, -1)]
    running = peak = 0
    for _at, delta in sorted(edges):
        running += delta
        peak = max(peak, running)
    return peak


def test_a_claim_grants_at_most_its_limit_even_when_the_pool_has_room(store: StateStore) -> None:
    """An engine with room for one attempt asks with a few candidates: only one is granted,
    so it holds no pool slot for an attempt it cannot start (another replica could)."""
    _leased(store, "r1")
    store.set_pool(PoolRecord("p", slots=10))
    store.set_permit(PermitRecord("db", 10))
    claims = [HoldClaim("r1", s, 1, "p", ("db",), "g1") for s in "abcd"]
    assert store.claim_holds("e1", claims, limit=1) == [True, False, False, False]
    usage = {(u.kind, u.name): u.count for u in store.hold_usage()}
    assert usage == {("pool", "p"): 1, ("tag", "db"): 1}
    more = [HoldClaim("r1", s, 1, "p", (), "g1") for s in "efgh"]
    assert store.claim_holds("e1", more, limit=2) == [True, True, False, False]

"""A workflow's run queue as run strategies read it (``StateStore.queue_place``,
``active_runs``): counted in the database, equal to its definition over runs of every
status, owner, priority and creation time (ties included), on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaon.model.status import RunStatus
from kaon.store.base import QueuePlace, RunRecord, StateStore, WriteBatch, claim_key

STATUSES = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.SUCCEEDED]
_names = itertools.count()


def _active(run: RunRecord) -> bool:
    return run.status in (RunStatus.RUNNING, RunStatus.PAUSED) or (
        run.status is RunStatus.PENDING and run.owner is not None
    )


def _expected(runs: list[RunRecord], run: RunRecord, limit: int) -> QueuePlace:
    others = [r for r in runs if r.id != run.id]
    active = sum(1 for r in others if _active(r))
    ahead = sum(
        1
        for r in others
        if r.status is RunStatus.PENDING and r.owner is None and claim_key(r) < claim_key(run)
    )
    return QueuePlace(active=min(active, limit), ahead=min(ahead, limit))


run_specs = st.lists(
    st.tuples(
        st.sampled_from(STATUSES),
        st.booleans(),  # claimed by an engine
        st.integers(-1, 1),  # priority
        st.integers(0, 3),  # creation time (ties)
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=run_specs, limit=st.integers(1, 4), pick=st.integers(0, 11))
def test_a_runs_place_is_counted_as_defined(
    store: StateStore, specs: list[tuple[RunStatus, bool, int, int]], limit: int, pick: int
) -> None:
    workflow = f"wf{next(_names)}"  # a workflow of its own per example: one store for all
    runs = [
        RunRecord(
            f"{workflow}-{n:02d}",
            workflow,
            "h",
            status,
            created_at=100.0 + at,
            owner="engine" if claimed else None,
            priority=priority,
        )
        for n, (status, claimed, priority, at) in enumerate(specs)
    ]
    store.write(WriteBatch(runs=runs))
    run = runs[pick % len(runs)]
    assert store.queue_place(run, limit) == _expected(runs, run, limit)
    active = [r.id for r in store.active_runs(workflow, 100)]
    oldest_first = sorted((r for r in runs if _active(r)), key=lambda r: (r.created_at, r.id))
    assert active == [r.id for r in oldest_first]


def test_a_queue_of_thousands_is_counted_up_to_the_limit(store: StateStore) -> None:
    """The counts stop at the limit: the head of a queue of 3,000 has none ahead, the last
    one has the limit ahead, whatever the queue's length."""
    runs = [
        RunRecord(f"q{n:05d}", "long", "h", RunStatus.PENDING, created_at=float(n))
        for n in range(3000)
    ]
    runs[0].status = RunStatus.RUNNING
    store.write(WriteBatch(runs=runs))
    assert store.queue_place(runs[1], 1) == QueuePlace(active=1, ahead=0)
    assert store.queue_place(runs[-1], 2) == QueuePlace(active=1, ahead=2)
    assert store.queue_place(runs[0], 5) == QueuePlace(active=0, ahead=0)

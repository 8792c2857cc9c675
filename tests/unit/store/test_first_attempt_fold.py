"""A step run's first attempt lives in its step run's row, its retries in ``attempts``
(``kaon.store.sql.FIRST_ATTEMPT``): whatever the batches that start and update attempts and
step runs, in whatever grouping, the store reads back the attempts and step runs a plain
model of the batches says (property test on a SQLite file)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import AttemptRecord, RunRecord, StepRunRecord, WriteBatch
from kaon.store.sql import SQLStore

STEPS = (1, 2, 3)
_runs = itertools.count()

# One operation: ("start", step) starts the step's next attempt (the step run is inserted with
# its first one); ("end", step, status, error) ends its latest attempt; ("step", step, status)
# changes the step run; "cut" ends the batch.
operation = st.one_of(
    st.tuples(st.just("start"), st.sampled_from(STEPS)),
    st.tuples(
        st.just("end"),
        st.sampled_from(STEPS),
        st.sampled_from(["succeeded", "failed", "lost", "cancelled"]),
        st.one_of(st.none(), st.fixed_dictionaries({"type": st.sampled_from(["E", "F"])})),
    ),
    st.tuples(
        st.just("step"),
        st.sampled_from(STEPS),
        st.sampled_from([StepStatus.RETRYING, StepStatus.SUCCEEDED, StepStatus.FAILED]),
    ),
    st.just(("cut",)),
)


def _apply(
    ops: list[Any], run_id: str
) -> tuple[list[WriteBatch], dict[tuple[int, int], AttemptRecord], dict[int, StepStatus]]:
    """The batches ``ops`` make, and what the store should hold after them."""
    batches, batch = [], WriteBatch()
    attempts: dict[tuple[int, int], AttemptRecord] = {}
    steps: dict[int, StepStatus] = {}
    latest: dict[int, int] = {}
    clock = itertools.count(1)
    for op in ops:
        if op[0] == "cut":
            batches.append(batch)
            batch = WriteBatch()
            continue
        step = op[1]
        if op[0] == "start":
            number = latest.get(step, 0) + 1
            latest[step] = number
            at = float(next(clock))
            if step not in steps:
                steps[step] = StepStatus.RUNNING
                batch.insert_step_run(
                    StepRunRecord(run_id, step, f"s{step}", f"s{step}", "task", StepStatus.RUNNING)
                )
            record = AttemptRecord(run_id, step, number, "running", at, worker=f"w{number}")
            batch.insert_attempt(record)
            attempts[(step, number)] = AttemptRecord(**_fields(record))
        elif step in latest:
            if op[0] == "end":
                key = (step, latest[step])
                at = float(next(clock))
                batch.update_attempt((run_id, *key), status=op[2], ended_at=at, error=op[3])
                attempts[key].status, attempts[key].ended_at = op[2], at
                attempts[key].error = op[3]
            else:
                batch.update_step_run(run_id, step, status=op[2])
                steps[step] = op[2]
    batches.append(batch)
    return batches, attempts, steps


def _fields(record: AttemptRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLStore]:
    """One store for every example (each writes a run of its own)."""
    made = SQLStore(f"sqlite:///{tmp_path_factory.mktemp('fold') / 'kaon.db'}")
    yield made
    made.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, max_size=30))
def test_attempts_and_step_runs_read_back_as_the_batches_wrote_them(
    store: SQLStore, ops: list[Any]
) -> None:
    run_id = f"r{next(_runs)}"
    store.write(WriteBatch(runs=[RunRecord(run_id, "wf", "h", RunStatus.RUNNING)]))
    batches, attempts, steps = _apply(ops, run_id)
    for batch in batches:
        store.write(batch)
    want = [attempts[key] for key in sorted(attempts)]
    assert store.attempts(run_id) == want
    for step in STEPS:
        assert store.attempts(run_id, step) == [a for a in want if a.step_run_id == step]
    assert store.attempts_of(run_id, [2, 3]) == [a for a in want if a.step_run_id in (2, 3)]
    rows = {row.id: row.status for row in store.step_runs(run_id)}
    assert rows == steps

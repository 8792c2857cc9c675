"""The contract every StateStore backend passes: one base class, one subclass per backend.

A backend subclass provides a ``store_url`` fixture; :class:`PersistentStoreContract` adds the
tests that need a database that outlives a store object (reopening, schema versions, two
store objects on one database as two engine processes would be).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext

from kaon.errors import NotFoundError, SchemaVersionError, StoreError, StoreUnavailableError
from kaon.model.status import RunStatus, StepStatus
from kaon.store import migrations, open_store
from kaon.store.base import (
    ArtifactRecord,
    ArtifactUseRecord,
    AttemptRecord,
    CacheEntryRecord,
    CommandRecord,
    DefinitionRecord,
    EventRecord,
    Fence,
    LogRecord,
    MetricRecord,
    RunRecord,
    SignalRecord,
    StateStore,
    StepRunRecord,
    WriteBatch,
)
from kaon.store.schema import VERSION_TABLE, metadata


def run_record(run_id: str = "r1", **fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "workflow": "wf",
        "definition_hash": "h1",
        "status": RunStatus.PENDING,
        "created_at": 100.0,
    }
    values.update(fields)
    return RunRecord(id=run_id, **values)


def step_record(run_id: str, step_run_id: int, **fields: Any) -> StepRunRecord:
    values: dict[str, Any] = {
        "path": f"s{step_run_id}",
        "step_id": f"s{step_run_id}",
        "kind": "task",
        "status": StepStatus.PENDING,
        "created_at": 101.0,
    }
    values.update(fields)
    return StepRunRecord(run_id=run_id, id=step_run_id, **values)


def batch_of(**fields: Any) -> WriteBatch:
    return WriteBatch(**fields)


def write_run(store: StateStore, run_id: str = "r1", **fields: Any) -> RunRecord:
    record = run_record(run_id, **fields)
    store.write(batch_of(runs=[record]))
    return record


def write_steps(store: StateStore, *records: StepRunRecord) -> None:
    batch = WriteBatch()
    for record in records:
        batch.insert_step_run(record)
    store.write(batch)


def lease_taker(store_of: Callable[[str], StateStore]) -> Callable[[str], bool]:
    """Try to take the lease on run ``r1`` for an owner, through that owner's store."""

    def take(owner: str) -> bool:
        return store_of(owner).acquire_lease("r1", owner, 10.0) is not None

    return take


@contextmanager
def store_and_connections(store_url: str) -> Iterator[tuple[StateStore, list[Any]]]:
    """A store on ``store_url``, and the DBAPI connections its engines open, as they open."""
    connections: list[Any] = []

    def opened(dbapi_connection: Any, _record: Any) -> None:
        connections.append(dbapi_connection)

    sa.event.listen(sa.engine.Engine, "connect", opened)
    store = open_store(store_url)
    try:
        yield store, connections
    finally:
        store.close()
        sa.event.remove(sa.engine.Engine, "connect", opened)


class StoreContract:
    """Behaviour every store backend must have."""

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[StateStore]:
        store = open_store(store_url)
        yield store
        store.close()

    # -- round trips -----------------------------------------------------------------------

    def test_a_ping_reads_nothing_and_answers(self, store: StateStore) -> None:
        assert store.ping() is None  # GET /readyz: raises StoreError when the database is down

    def test_definition_round_trip_and_idempotent_insert(self, store: StateStore) -> None:
        spec = {"name": "wf", "steps": [{"id": "a", "params": {"x": [1, 2.5, None, "s"]}}]}
        record = DefinitionRecord("h1", "wf", spec, source="steps: []", created_at=5.0)
        store.write(batch_of(definitions=[record]))
        store.write(batch_of(definitions=[DefinitionRecord("h1", "other", {}, "", 6.0)]))
        assert store.get_definition("h1") == record
        with pytest.raises(NotFoundError, match="nope"):
            store.get_definition("nope")

    def test_run_round_trip(self, store: StateStore) -> None:
        record = run_record(
            "r1",
            status=RunStatus.RUNNING,
            params={"lr": 0.1, "regions": ["eu", "us"], "nested": {"a": None}},
            started_at=101.5,
            ended_at=None,
            error="boom",
            restarts=2,
            executor="process",
            owner="engine-1",
            lease_until=200.0,
            labels={"team": "ml"},
        )
        store.write(batch_of(runs=[record]))
        got = store.get_run("r1")
        assert got == record
        assert type(got.status) is RunStatus
        with pytest.raises(NotFoundError, match="r2"):
            store.get_run("r2")

    def test_step_run_round_trip(self, store: StateStore) -> None:
        write_run(store)
        record = step_record(
            "r1",
            7,
            path="regions[3].train",
            step_id="train",
            kind="item",
            status=StepStatus.SUCCEEDED,
            parent_id=4,
            index=3,
            item={"region": "eu", "n": 3},
            attempts=2,
            platform_attempts=1,
            outputs={"model": {"kind": "artifact", "uri": "file:///x"}},
            error={"error_type": "ValueError", "message": "m"},
            reason="retried",
            started_at=102.0,
            ended_at=103.0,
            next_attempt_at=104.0,
            cache_key="ck",
            cached_from="r0/train",
        )
        write_steps(store, record)
        got = store.get_step_run("r1", "regions[3].train")
        assert got == record
        assert type(got.status) is StepStatus
        assert store.step_runs("r1", parent_id=4) == [record]
        with pytest.raises(NotFoundError):
            store.get_step_run("r1", "missing")

    def test_scalar_items_round_trip(self, store: StateStore) -> None:
        write_run(store)
        write_steps(
            store,
            step_record("r1", 1, item="text"),
            step_record("r1", 2, item=3),
            step_record("r1", 3, item=[1, "a"]),
            step_record("r1", 4, item=None),
        )
        assert [s.item for s in store.step_runs("r1")] == ["text", 3, [1, "a"], None]

    def test_attempt_round_trip_and_order(self, store: StateStore) -> None:
        write_run(store)
        write_steps(store, step_record("r1", 1), step_record("r1", 2, path="s2"))
        batch = WriteBatch()
        second = AttemptRecord("r1", 1, 2, "running", started_at=5.0, worker="w2")
        first = AttemptRecord("r1", 1, 1, "failed", 1.0, 2.0, "w1", {"message": "x"})
        other = AttemptRecord("r1", 2, 1, "succeeded", 3.0, 4.0)
        for record in (other, second, first):
            batch.insert_attempt(record)
        store.write(batch)
        assert store.attempts("r1", 1) == [first, second]
        assert store.attempts("r1") == [first, second, other]

    def test_logs_round_trip_and_filters(self, store: StateStore) -> None:
        write_run(store)
        lines = [
            LogRecord("r1", 1, 1, 1.0, "stdout", "a"),
            LogRecord("r1", 1, 2, 2.0, "stderr", "b"),
            LogRecord("r1", 2, 1, 3.0, "log", "c\nwith newline"),
            LogRecord("r1", 1, 2, 4.0, "stdout", "d"),
        ]
        store.write(batch_of(logs=lines))
        got = store.logs("r1")
        assert [(g.step_run_id, g.attempt, g.at, g.stream, g.text) for g in got] == [
            (x.step_run_id, x.attempt, x.at, x.stream, x.text) for x in lines
        ]
        ids = [g.id for g in got]
        assert all(isinstance(i, int) for i in ids)
        assert ids == sorted(i or 0 for i in ids)
        assert [g.text for g in store.logs("r1", 1)] == ["a", "b", "d"]
        assert [g.text for g in store.logs("r1", 1, attempt=2)] == ["b", "d"]
        assert [g.text for g in store.logs("r1", after_id=got[1].id or 0)] == [
            "c\nwith newline",
            "d",
        ]
        assert [g.text for g in store.logs("r1", limit=2)] == ["a", "b"]

    def test_metrics_round_trip(self, store: StateStore) -> None:
        write_run(store)
        metrics = [
            MetricRecord("r1", 1, 1, "loss", 0.5, 1.0, step=1),
            MetricRecord("r1", 2, 1, "auc", 0.9, 2.0),
            MetricRecord("r1", 1, 1, "loss", 0.25, 3.0, step=2),
        ]
        store.write(batch_of(metrics=metrics))
        got = store.metrics("r1")
        assert [(m.step_run_id, m.name, m.value, m.at, m.step) for m in got] == [
            (1, "loss", 0.5, 1.0, 1),
            (2, "auc", 0.9, 2.0, None),
            (1, "loss", 0.25, 3.0, 2),
        ]
        assert [m.value for m in store.metrics("r1", 1)] == [0.5, 0.25]

    def test_events_paging(self, store: StateStore) -> None:
        write_run(store, "r1")
        write_run(store, "r2")
        store.write(
            batch_of(
                events=[
                    EventRecord("r1", "run_started", 1.0, {"by": "me"}),
                    EventRecord("r2", "run_started", 2.0),
                    EventRecord("r1", "step_started", 3.0, {"step": "a"}, step_run_id=1),
                ]
            )
        )
        store.write(batch_of(events=[EventRecord("r1", "step_succeeded", 4.0, step_run_id=1)]))
        everything = store.events()
        assert [(e.run_id, e.kind) for e in everything] == [
            ("r1", "run_started"),
            ("r2", "run_started"),
            ("r1", "step_started"),
            ("r1", "step_succeeded"),
        ]
        assert everything[0].data == {"by": "me"} and everything[1].data == {}
        assert everything[2].step_run_id == 1 and everything[0].step_run_id is None
        r1 = store.events("r1")
        assert [e.kind for e in r1] == ["run_started", "step_started", "step_succeeded"]
        page = store.events("r1", after_id=r1[0].id or 0, limit=1)
        assert [e.kind for e in page] == ["step_started"]
        assert store.events("r1", after_id=r1[-1].id or 0) == []
        assert [e.run_id for e in store.events(after_id=everything[0].id or 0, limit=2)] == [
            "r2",
            "r1",
        ]
        # One step run's events, newest first, without reading the run's feed.
        assert [e.kind for e in store.step_events("r1", 1)] == ["step_succeeded", "step_started"]
        assert [e.data for e in store.step_events("r1", 1, kind="step_started")] == [{"step": "a"}]
        assert len(store.step_events("r1", 1, limit=1)) == 1
        assert store.step_events("r2", 1) == [] and store.step_events("r1", 2) == []

    def test_commands(self, store: StateStore) -> None:
        write_run(store, "r1")
        write_run(store, "r2")
        store.write(
            batch_of(
                commands=[
                    CommandRecord("r1", "kill", {"reason": "x"}, 1.0, by="alice"),
                    CommandRecord("r2", "kill", created_at=2.0),
                    CommandRecord("r1", "skip", {"path": "a"}, 3.0),
                ]
            )
        )
        pending = store.pending_commands("r1")
        assert [(c.kind, c.payload, c.by) for c in pending] == [
            ("kill", {"reason": "x"}, "alice"),
            ("skip", {"path": "a"}, ""),
        ]
        assert all(c.done_at is None and c.id is not None for c in pending)
        store.write(batch_of(commands_done={pending[0].id or 0: 9.0}))
        assert [c.kind for c in store.pending_commands("r1")] == ["skip"]
        assert [c.kind for c in store.pending_commands("r2")] == ["kill"]

    # -- batches ---------------------------------------------------------------------------

    def test_empty_batch_is_a_no_op(self, store: StateStore) -> None:
        store.write(WriteBatch())
        assert store.list_runs() == []

    def test_updates_merge_and_group_by_columns(self, store: StateStore) -> None:
        write_run(store)
        write_steps(store, step_record("r1", 1), step_record("r1", 2), step_record("r1", 3))
        batch = WriteBatch()
        batch.update_run("r1", status=RunStatus.RUNNING)
        batch.update_run("r1", started_at=5.0, params={"x": 1})
        batch.update_step_run("r1", 1, status=StepStatus.RUNNING)
        batch.update_step_run("r1", 1, status=StepStatus.SUCCEEDED, outputs={"y": 2})
        batch.update_step_run("r1", 2, status=StepStatus.SUCCEEDED, outputs={"y": 3})
        batch.update_step_run("r1", 3, reason="skipped by user", status=StepStatus.SKIPPED)
        store.write(batch)
        run = store.get_run("r1")
        assert (run.status, run.started_at, run.params) == (RunStatus.RUNNING, 5.0, {"x": 1})
        steps = {s.id: s for s in store.step_runs("r1")}
        assert (steps[1].status, steps[1].outputs) == (StepStatus.SUCCEEDED, {"y": 2})
        assert (steps[2].status, steps[2].outputs) == (StepStatus.SUCCEEDED, {"y": 3})
        assert (steps[3].status, steps[3].reason) == (StepStatus.SKIPPED, "skipped by user")
        assert steps[3].outputs is None

    def test_update_can_clear_a_field(self, store: StateStore) -> None:
        write_run(store, owner="x", error="e")
        write_steps(store, step_record("r1", 1, outputs={"a": 1}, error={"m": "x"}))
        batch = WriteBatch()
        batch.update_run("r1", owner=None, error=None)
        batch.update_step_run("r1", 1, outputs=None, error=None)
        store.write(batch)
        assert (store.get_run("r1").owner, store.get_run("r1").error) == (None, None)
        step = store.get_step_run("r1", "s1")
        assert (step.outputs, step.error) == (None, None)

    def test_attempt_updates(self, store: StateStore) -> None:
        write_run(store)
        write_steps(store, step_record("r1", 1))
        batch = WriteBatch()
        batch.insert_attempt(AttemptRecord("r1", 1, 1, "running", started_at=1.0))
        store.write(batch)
        batch = WriteBatch()
        batch.update_attempt(("r1", 1, 1), status="failed", ended_at=2.0)
        batch.update_attempt(("r1", 1, 1), error={"message": "x"})
        store.write(batch)
        assert store.attempts("r1") == [
            AttemptRecord("r1", 1, 1, "failed", 1.0, 2.0, "", {"message": "x"})
        ]

    def test_retries_after_a_first_attempt_in_later_batches(self, store: StateStore) -> None:
        """A first attempt started after its step run was written, updated in a batch of
        its own and with its step run's update, then two retries: every attempt reads back
        in order, each batch's changes whole, and the step run's record is untouched."""
        write_run(store)
        write_steps(store, step_record("r1", 1), step_record("r1", 2, path="s2"))
        store.write(batch_of(attempts={("r1", 1, 1): AttemptRecord("r1", 1, 1, "running", 1.0)}))
        batch = WriteBatch()
        batch.update_attempt(("r1", 1, 1), worker="w1")
        store.write(batch)
        batch = WriteBatch()
        batch.update_step_run("r1", 1, attempts=1, next_attempt_at=5.0)
        batch.update_attempt(("r1", 1, 1), status="failed", ended_at=2.0, error={"m": "x"})
        batch.insert_attempt(AttemptRecord("r1", 2, 1, "running", 1.5, worker="w9"))
        store.write(batch)
        batch = WriteBatch()
        batch.insert_attempt(AttemptRecord("r1", 1, 2, "running", 5.0, worker="w2"))
        store.write(batch)
        batch = WriteBatch()
        batch.update_attempt(("r1", 1, 2), status="lost", ended_at=6.0)
        batch.insert_attempt(AttemptRecord("r1", 1, 3, "succeeded", 7.0, 8.0, "w3"))
        batch.update_step_run("r1", 1, status=StepStatus.SUCCEEDED, ended_at=8.0)
        store.write(batch)
        assert store.attempts("r1", 1) == [
            AttemptRecord("r1", 1, 1, "failed", 1.0, 2.0, "w1", {"m": "x"}),
            AttemptRecord("r1", 1, 2, "lost", 5.0, 6.0, "w2"),
            AttemptRecord("r1", 1, 3, "succeeded", 7.0, 8.0, "w3"),
        ]
        assert [(a.step_run_id, a.number) for a in store.attempts("r1")] == [
            (1, 1),
            (1, 2),
            (1, 3),
            (2, 1),
        ]
        assert store.attempts_of("r1", [2]) == [
            AttemptRecord("r1", 2, 1, "running", 1.5, worker="w9")
        ]
        step = store.get_step_run("r1", "s1")
        assert (step.status, step.attempts, step.next_attempt_at, step.ended_at) == (
            StepStatus.SUCCEEDED,
            1,
            5.0,
            8.0,
        )
        assert step.error is None  # the attempt's error is the attempt's

    def test_folded_inserts(self, store: StateStore) -> None:
        write_run(store)
        batch = WriteBatch()
        batch.insert_step_run(step_record("r1", 1))
        batch.update_step_run("r1", 1, status=StepStatus.RUNNING, started_at=9.0)
        batch.insert_attempt(AttemptRecord("r1", 1, 1, "running"))
        batch.update_attempt(("r1", 1, 1), status="succeeded", ended_at=10.0)
        assert not batch.step_run_updates and not batch.attempt_updates
        store.write(batch)
        step = store.get_step_run("r1", "s1")
        assert (step.status, step.started_at) == (StepStatus.RUNNING, 9.0)
        assert [(a.status, a.ended_at) for a in store.attempts("r1", 1)] == [("succeeded", 10.0)]

    def test_run_insert_and_update_in_one_batch(self, store: StateStore) -> None:
        batch = WriteBatch(runs=[run_record("r1")])
        batch.update_run("r1", status=RunStatus.RUNNING)
        store.write(batch)
        assert store.get_run("r1").status is RunStatus.RUNNING

    def test_duplicate_key_rolls_back_the_whole_batch(self, store: StateStore) -> None:
        write_run(store)
        write_steps(store, step_record("r1", 1))
        batch = WriteBatch(runs=[run_record("r2")])
        batch.definitions.append(DefinitionRecord("h9", "wf", {}))
        batch.update_run("r1", status=RunStatus.RUNNING)
        batch.insert_step_run(step_record("r1", 1, path="other"))  # same (run_id, id)
        batch.events.append(EventRecord("r1", "x", 1.0))
        with pytest.raises(StoreError, match="step_runs"):
            store.write(batch)
        with pytest.raises(NotFoundError):
            store.get_run("r2")
        with pytest.raises(NotFoundError):
            store.get_definition("h9")
        assert store.get_run("r1").status is RunStatus.PENDING
        assert store.events() == []
        assert [s.path for s in store.step_runs("r1")] == ["s1"]

    def test_duplicate_path_is_rejected(self, store: StateStore) -> None:
        write_run(store)
        write_steps(store, step_record("r1", 1, path="a"))
        with pytest.raises(StoreError, match="step_runs"):
            write_steps(store, step_record("r1", 2, path="a"))

    def test_update_of_missing_row_rolls_back(self, store: StateStore) -> None:
        write_run(store)
        batch = WriteBatch(events=[EventRecord("r1", "x", 1.0)])
        batch.update_run("r1", status=RunStatus.RUNNING)
        batch.update_step_run("r1", 99, status=StepStatus.RUNNING)
        with pytest.raises(StoreError, match=r"missing row.*step_runs"):
            store.write(batch)
        assert store.get_run("r1").status is RunStatus.PENDING
        assert store.events() == []

    @pytest.mark.parametrize("table", ["runs", "step_runs", "attempts", "commands"])
    def test_update_of_a_missing_row_names_its_table_and_writes_nothing(
        self, store: StateStore, table: str
    ) -> None:
        write_run(store)
        write_run(store, "r2")
        write_steps(store, step_record("r1", 1), step_record("r2", 1))
        start = WriteBatch(
            commands=[CommandRecord("r1", "kill", created_at=1.0), CommandRecord("r2", "kill")]
        )
        start.insert_attempt(AttemptRecord("r1", 1, 1, "running"))
        start.insert_attempt(AttemptRecord("r2", 1, 1, "running"))
        store.write(start)
        mine, other = (store.pending_commands(r)[0].id or 0 for r in ("r1", "r2"))

        def batch(missing: bool) -> WriteBatch:
            """Rows of every kind, with two updates of ``table`` changing the same columns
            (one statement), the second of a row that does not exist when ``missing``."""
            made = WriteBatch(events=[EventRecord("r1", "x", 1.0), EventRecord("r1", "y", 2.0)])
            made.insert_step_run(step_record("r1", 2))
            made.insert_attempt(AttemptRecord("r1", 2, 1, "running"))
            made.signals.append(SignalRecord("go", {"n": 1}, 3.0))
            made.update_run("r1", status=RunStatus.RUNNING)
            made.update_step_run("r1", 1, status=StepStatus.RUNNING)
            made.update_attempt(("r1", 1, 1), status="succeeded")
            made.command_done(mine, "r1", 4.0)
            run = "nope" if missing else "r2"
            if table == "runs":
                made.update_run(run, status=RunStatus.RUNNING)
            elif table == "step_runs":
                made.update_step_run(run, 1, status=StepStatus.RUNNING)
            elif table == "attempts":
                made.update_attempt((run, 1, 1), status="succeeded")
            else:
                made.command_done(987654 if missing else other, "r2", 4.0)
            return made

        with pytest.raises(StoreError, match=rf"missing row.* {table}; nothing .* written"):
            store.write(batch(missing=True))
        for run in ("r1", "r2"):
            assert store.get_run(run).status is RunStatus.PENDING
            assert [(s.id, s.status) for s in store.step_runs(run)] == [(1, StepStatus.PENDING)]
            assert [(a.step_run_id, a.status) for a in store.attempts(run)] == [(1, "running")]
            assert len(store.pending_commands(run)) == 1
        assert store.events() == []
        assert store.signals() == []
        # The connection is as good as before: the same batch without the missing row lands.
        store.write(batch(missing=False))
        assert [e.kind for e in store.events()] == ["x", "y"]
        assert store.pending_commands("r1") == []
        assert store.get_step_run("r1", "s1").status is StepStatus.RUNNING

    def test_unknown_field_and_unencodable_value_are_store_errors(self, store: StateStore) -> None:
        write_run(store)
        batch = WriteBatch()
        batch.update_run("r1", no_such_field=1)
        with pytest.raises(StoreError, match="no_such_field"):
            store.write(batch)
        with pytest.raises(StoreError, match="runs"):
            store.write(batch_of(runs=[run_record("r2", params={"x": object()})]))
        with pytest.raises(NotFoundError):
            store.get_run("r2")
        # Stored JSON is standard JSON: NaN is refused, and the rest of its batch with it.
        batch = batch_of(runs=[run_record("r3")], events=[EventRecord("r1", "x", 1.0)])
        batch.update_run("r1", status=RunStatus.RUNNING)
        batch.insert_step_run(step_record("r1", 1, outputs={"loss": float("nan")}))
        with pytest.raises(StoreError, match="step_runs"):
            store.write(batch)
        with pytest.raises(NotFoundError):
            store.get_run("r3")
        assert (store.get_run("r1").status, store.step_runs("r1"), store.events()) == (
            RunStatus.PENDING,
            [],
            [],
        )

    def test_times_read_back_exactly_whether_given_as_float_or_int(self, store: StateStore) -> None:
        """A time (a double) reads back bit for bit: PostgreSQL's write path sends doubles in
        binary, an int made a float first (never an integer's bytes read as a double)."""
        write_run(store)
        at = 1796508214.5924401  # 17 significant digits
        batch = WriteBatch()
        batch.insert_step_run(step_record("r1", 1, created_at=7, started_at=at))
        batch.events.append(EventRecord("r1", "x", at, step_run_id=1))
        batch.events.append(EventRecord("r1", "y", 3))
        store.write(batch)
        batch = WriteBatch()
        batch.update_step_run("r1", 1, ended_at=5, status=StepStatus.SUCCEEDED)
        store.write(batch)
        step = store.get_step_run("r1", "s1")
        assert (step.created_at, step.started_at, step.ended_at) == (7.0, at, 5.0)
        assert [(e.kind, e.at) for e in store.events()] == [("x", at), ("y", 3.0)]

    # -- queries ---------------------------------------------------------------------------

    def test_list_runs_order_filters_and_pages(self, store: StateStore) -> None:
        statuses = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED]
        runs = [
            run_record(
                f"r{n:02}",
                workflow="a" if n % 2 else "b",
                status=statuses[n % 4],
                created_at=float(n // 2),  # pairs share a time: ties break by id, descending
            )
            for n in range(12)
        ]
        store.write(batch_of(runs=list(reversed(runs))))
        newest_first = [r.id for r in store.list_runs()]
        assert newest_first == [f"r{n:02}" for n in reversed(range(12))]
        assert [r.id for r in store.list_runs(limit=5, offset=5)] == newest_first[5:10]
        assert [r.id for r in store.list_runs(workflow="a")] == [
            "r11",
            "r09",
            "r07",
            "r05",
            "r03",
            "r01",
        ]
        assert [r.id for r in store.list_runs(statuses=[RunStatus.SUCCEEDED])] == [
            "r10",
            "r06",
            "r02",
        ]
        assert [
            r.id
            for r in store.list_runs(workflow="a", statuses={RunStatus.RUNNING, RunStatus.FAILED})
        ] == ["r11", "r09", "r07", "r05", "r03", "r01"]
        assert store.list_runs(workflow="zzz") == []
        assert store.list_runs(statuses=[]) == []
        assert store.list_runs()[0] == runs[11]

    def test_list_runs_after_a_run_is_a_keyset_page(self, store: StateStore) -> None:
        """``after`` starts after a run's (created_at, id), ties by id as the order breaks
        them, whether that run still exists or not: pages a list's readers follow are not
        shifted by runs created or deleted between them."""
        runs = [run_record(f"r{n:02}", created_at=float(n // 2)) for n in range(12)]
        store.write(batch_of(runs=runs))
        newest_first = [f"r{n:02}" for n in reversed(range(12))]
        assert [r.id for r in store.list_runs(limit=3, after=(4.0, "r09"))] == newest_first[3:6]
        assert [r.id for r in store.list_runs(after=(4.0, "r08"))] == newest_first[4:]
        assert [r.id for r in store.list_runs(after=(4.0, "r085"))] == newest_first[3:]  # gone
        oldest_first = [r.id for r in store.list_runs(oldest_first=True, after=(1.0, "r02"))]
        assert oldest_first == [f"r{n:02}" for n in range(3, 12)]
        assert store.list_runs(after=(0.0, "r00")) == []

    def test_last_ended_run_goes_by_end_time_not_creation(self, store: StateStore) -> None:
        failed, ok = RunStatus.FAILED, RunStatus.SUCCEEDED
        runs = [
            run_record(f"r{n}", status=failed, created_at=float(n), ended_at=n + 0.5)
            for n in range(1, 8)
        ]
        runs[0].ended_at = 50.0  # the oldest, restarted, ended last
        runs.append(run_record("ok", status=ok, created_at=60.0, ended_at=61.0))
        runs.append(run_record("other", workflow="b", status=failed, created_at=70.0, ended_at=71))
        runs.append(run_record("open", status=RunStatus.RUNNING, created_at=80.0))
        store.write(batch_of(runs=runs))
        found = store.last_ended_run("wf", failed, after=10.0)
        assert found is not None and found.id == "r1" and found.ended_at == 50.0
        assert store.last_ended_run("wf", failed, after=50.0) is None
        between = store.last_ended_run("wf", failed, after=3.0, until=6.0)
        assert between is not None and between.id == "r5"
        assert store.last_ended_run("wf", failed, after=7.5, until=49.0) is None
        last_ok = store.last_ended_run("wf", ok, after=0.0)
        assert last_ok is not None and last_ok.id == "ok"
        assert store.last_ended_run("zzz", failed, after=0.0) is None

    def test_find_runs_by_prefix(self, store: StateStore) -> None:
        ids = [f"abc{n:02}" for n in range(12)] + ["abd", "a%c", "a_c", "zzz"]
        store.write(batch_of(runs=[run_record(i) for i in ids]))
        assert store.find_runs("abc") == [f"abc{n:02}" for n in range(10)]
        assert store.find_runs("abd") == ["abd"]
        assert store.find_runs("a%") == ["a%c"]
        assert store.find_runs("a_") == ["a_c"]
        assert store.find_runs("nope") == []
        assert store.resolve_run_id("abd") == "abd"  # an exact id wins over longer ids
        assert store.resolve_run_id("zz") == "zzz"
        with pytest.raises(NotFoundError, match="matches several runs"):
            store.resolve_run_id("abc")
        with pytest.raises(NotFoundError, match="no run matches 'nope'"):
            store.resolve_run_id("nope")
        for long in ("a" * 60_000, "_" * 30_000):  # past SQLite's LIKE pattern limit
            with pytest.raises(NotFoundError, match="no run matches") as found:
                store.resolve_run_id(long)
            assert len(str(found.value)) < 300  # the message quotes the start of it

    def test_step_runs_by_level_and_status(self, store: StateStore) -> None:
        write_run(store)
        write_steps(
            store,
            step_record("r1", 1, status=StepStatus.SUCCEEDED),
            step_record("r1", 2, kind="foreach", status=StepStatus.RUNNING),
            step_record("r1", 3, kind="item", parent_id=2, index=0, status=StepStatus.RUNNING),
            step_record("r1", 4, parent_id=3, status=StepStatus.QUEUED),
            step_record("r1", 5, status=StepStatus.PENDING),
        )
        write_run(store, "r2")
        write_steps(store, step_record("r2", 1))
        assert [s.id for s in store.step_runs("r1")] == [1, 2, 5]
        assert [s.id for s in store.step_runs("r1", parent_id=2)] == [3]
        assert [s.id for s in store.step_runs("r1", parent_id=3)] == [4]
        assert [s.id for s in store.step_runs("r1", all_levels=True)] == [1, 2, 3, 4, 5]
        running = [StepStatus.RUNNING, StepStatus.QUEUED]
        assert [s.id for s in store.step_runs("r1", statuses=running)] == [2]
        assert [s.id for s in store.step_runs("r1", all_levels=True, statuses=running)] == [2, 3, 4]
        assert store.step_runs("r1", parent_id=5) == []
        assert store.max_step_run_id("r1") == 5
        assert store.max_step_run_id("r2") == 1

    def test_children_of_several_frames(self, store: StateStore) -> None:
        """The rows under several frames in one read (a resumed foreach's next items), by
        id; none of another run's, nor of a frame not asked, nor below the frames'."""
        write_run(store)
        write_steps(
            store,
            step_record("r1", 1, kind="foreach", status=StepStatus.RUNNING),
            *(step_record("r1", 2 + i, kind="item", parent_id=1, index=i) for i in range(3)),
            step_record("r1", 7, parent_id=4, status=StepStatus.QUEUED),
            step_record("r1", 5, parent_id=2, status=StepStatus.RUNNING),
            step_record("r1", 6, kind="foreach", parent_id=2),
            step_record("r1", 8, kind="item", parent_id=6, index=0),
            step_record("r1", 9, parent_id=3),
        )
        write_run(store, "r2")
        write_steps(store, step_record("r2", 5, parent_id=2))
        found = store.children_of("r1", [4, 2, 99])
        assert [(r.id, r.parent_id) for r in found] == [(5, 2), (6, 2), (7, 4)]
        assert found[0] == store.step_runs("r1", parent_id=2)[0]
        assert store.children_of("r1", []) == []
        assert store.children_of("nope", [2]) == []
        many = store.children_of("r1", range(2, 1000))  # past the 500 parents of a query
        assert [r.id for r in many] == [5, 6, 7, 8, 9]

    def test_child_outputs_and_counts(self, store: StateStore) -> None:
        write_run(store)
        frames = [
            step_record(
                "r1", 10 + i, kind="item", parent_id=1, index=index, status=status, outputs=out
            )
            for i, (index, status, out) in enumerate(
                [
                    (2, StepStatus.SUCCEEDED, {"m": 2}),
                    (0, StepStatus.SUCCEEDED, {"m": 0}),
                    (1, StepStatus.FAILED, None),
                    (3, StepStatus.RUNNING, None),
                ]
            )
        ]
        write_steps(store, step_record("r1", 1, kind="foreach"), *frames)
        write_steps(store, step_record("r1", 20, parent_id=10, index=None))  # a task in a frame
        assert store.child_outputs("r1", 1) == [(0, {"m": 0}), (1, None), (2, {"m": 2}), (3, None)]
        assert store.child_counts("r1", 1) == {
            StepStatus.SUCCEEDED: 2,
            StepStatus.FAILED: 1,
            StepStatus.RUNNING: 1,
        }
        assert store.child_counts("r1", 99) == {}
        assert store.child_outputs("r1", 99) == []

    def test_summary_reads_match_the_interface_defaults(self, store: StateStore) -> None:
        """The summary reads (answered in the database by SQL stores) agree with the
        interface's defaults, which read every row."""
        write_run(store)
        ok, bad = StepStatus.SUCCEEDED, StepStatus.FAILED
        write_steps(
            store,
            step_record("r1", 1, path="each", kind="foreach", status=bad),
            step_record("r1", 2, path="each[0]", kind="item", parent_id=1, index=0, status=ok),
            step_record("r1", 3, path="each[0].t", parent_id=2, status=ok),
            step_record("r1", 4, path="each[1]", kind="item", parent_id=1, index=1, status=bad),
            step_record("r1", 5, path="each[1].t", parent_id=4, status=bad),
            step_record("r1", 6, path="after", status=StepStatus.SKIPPED),
        )
        batch = WriteBatch()
        for step_run_id in (3, 5, 6):
            batch.insert_attempt(AttemptRecord("r1", step_run_id, 1, "succeeded", 1.0, 2.0))
        store.write(batch)
        shown = store.summary_step_runs("r1")
        assert [r.path for r in shown] == ["each", "each[1]", "each[1].t", "after"]
        assert shown == StateStore.summary_step_runs(store, "r1")
        assert store.status_counts("r1") == {
            ("foreach", bad): 1,
            ("item", ok): 1,
            ("item", bad): 1,
            ("task", ok): 1,
            ("task", bad): 1,
            ("task", StepStatus.SKIPPED): 1,
        }
        assert store.status_counts("r1") == StateStore.status_counts(store, "r1")
        assert store.frame_counts("r1") == {1: {ok: 1, bad: 1}}
        assert store.frame_counts("r1") == StateStore.frame_counts(store, "r1")
        of = store.attempts_of("r1", [5, 6, 99])
        assert [(a.step_run_id, a.number) for a in of] == [(5, 1), (6, 1)]
        assert of == StateStore.attempts_of(store, "r1", [5, 6, 99])

    def test_empty_run_reads(self, store: StateStore) -> None:
        write_run(store)
        assert store.step_runs("r1") == []
        assert store.max_step_run_id("r1") == 0
        assert store.attempts("r1") == []
        assert store.logs("r1") == []
        assert store.metrics("r1") == []
        assert store.events("r1") == []
        assert store.pending_commands("r1") == []

    @pytest.mark.parametrize(
        "read",
        [
            lambda s: s.step_runs("nope"),
            lambda s: s.max_step_run_id("nope"),
            lambda s: s.attempts("nope"),
            lambda s: s.logs("nope"),
            lambda s: s.metrics("nope"),
            lambda s: s.events("nope"),
            lambda s: s.pending_commands("nope"),
            lambda s: s.child_counts("nope", 1),
            lambda s: s.child_outputs("nope", 1),
            lambda s: s.acquire_lease("nope", "me", 10.0),
        ],
    )
    def test_unknown_run_is_not_found(
        self, store: StateStore, read: Callable[[StateStore], object]
    ) -> None:
        with pytest.raises(NotFoundError, match="nope"):
            read(store)

    # -- leases ----------------------------------------------------------------------------

    def test_lease_take_renew_expire_release(self, store: StateStore) -> None:
        write_run(store)
        assert store.acquire_lease("r1", "a", 0.4) == 1
        assert store.acquire_lease("r1", "b", 10.0) is None
        assert store.renew_leases("a", {"r1": 1}, 0.4) == set()
        assert store.get_run("r1").owner == "a"
        time.sleep(0.5)  # expired by the database's clock
        assert store.acquire_lease("r1", "b", 10.0) == 2  # taken over: a new epoch
        assert store.renew_leases("a", {"r1": 1}, 10.0) == {"r1"}
        store.release_lease("r1", "a")  # not the holder: no effect
        store.release_lease("r1", "b", epoch=1)  # not the epoch held: no effect
        assert (store.get_run("r1").owner, store.get_run("r1").lease_epoch) == ("b", 2)
        store.release_lease("r1", "b", epoch=2)
        assert (store.get_run("r1").owner, store.get_run("r1").lease_until) == (None, None)
        assert store.acquire_lease("r1", "c", 10.0) == 3
        assert store.acquire_lease("r1", "d", 10.0) is None
        assert store.acquire_lease("r1", "d", 10.0, steal_from="c") == 4  # proven dead

    def test_many_leases_in_one_transaction(self, store: StateStore) -> None:
        for run_id in ("r1", "r2", "r3", "r4"):
            write_run(store, run_id)
        finish = WriteBatch()
        finish.update_run("r4", status=RunStatus.SUCCEEDED)
        store.write(finish)
        assert store.acquire_lease("r2", "other", 100.0) == 1
        taken = store.acquire_leases(["r3", "r1", "r2", "r4", "nope"], "me", 100.0)
        assert [(record.id, epoch) for record, epoch in taken] == [("r3", 1), ("r1", 1)]
        assert all(record.owner == "me" and record.lease_epoch == 1 for record, _ in taken)
        assert store.get_run("r2").owner == "other"  # held: left alone
        assert store.get_run("r4").owner is None  # finished: not taken
        assert store.acquire_leases(["r1"], "again", 100.0) == []  # held by "me" now
        assert store.acquire_leases([], "me", 100.0) == []

    def test_largest_step_run_ids_of_many_runs(self, store: StateStore) -> None:
        for run_id in ("r1", "r2", "r3"):
            write_run(store, run_id)
        write_steps(store, step_record("r1", 1), step_record("r1", 7), step_record("r3", 2))
        assert store.max_step_run_ids(["r1", "r2", "r3", "nope"]) == {"r1": 7, "r3": 2}
        assert store.max_step_run_ids([]) == {}

    def test_lease_times_are_the_database_clock(self, store: StateStore) -> None:
        write_run(store)
        store.acquire_lease("r1", "a", 100.0)
        until = store.get_run("r1").lease_until
        assert until is not None and abs(until - (time.time() + 100.0)) < 5.0

    def test_lease_race_between_threads_has_one_winner(self, store: StateStore) -> None:
        write_run(store)
        for _round in range(5):
            winners = self._race(lease_taker(lambda owner: store))
            assert len(winners) == 1
            assert store.get_run("r1").owner == winners[0]
            store.release_lease("r1", winners[0])

    @staticmethod
    def _race(attempt: Callable[[str], bool], contenders: int = 8) -> list[str]:
        barrier = threading.Barrier(contenders)
        winners: list[str] = []
        errors: list[BaseException] = []

        def contend(owner: str) -> None:
            try:
                barrier.wait()
                if attempt(owner):
                    winners.append(owner)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=contend, args=(f"o{i}",)) for i in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        return winners

    # -- concurrency -----------------------------------------------------------------------

    def test_concurrent_writers_lose_nothing(self, store: StateStore) -> None:
        write_run(store, "ra")
        write_run(store, "rb")
        batches = 150
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def writer(run_id: str) -> None:
            try:
                barrier.wait()
                for n in range(1, batches + 1):
                    batch = WriteBatch(events=[EventRecord(run_id, "e", float(n))])
                    batch.insert_step_run(step_record(run_id, n))
                    batch.update_run(run_id, restarts=n)
                    store.write(batch)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=writer, args=(r,)) for r in ("ra", "rb")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        for run_id in ("ra", "rb"):
            assert store.max_step_run_id(run_id) == batches
            assert len(store.step_runs(run_id)) == batches
            assert [e.at for e in store.events(run_id, limit=10_000)] == [
                float(n) for n in range(1, batches + 1)
            ]
            assert store.get_run(run_id).restarts == batches

    def test_cache_entries_newest_wins_filter_and_delete(self, store: StateStore) -> None:
        write_run(store, "r1")
        entry = CacheEntryRecord(
            key="k1",
            workflow="wf",
            step_id="train",
            path="train",
            run_id="r1",
            step_run_id=1,
            outputs={"return": {"t": "lit", "v": 1}},
            components={"code": "c1", "inputs.x": "i1"},
            created_at=10.0,
        )
        later = CacheEntryRecord(
            key="k1",
            workflow="wf",
            step_id="train",
            path="train",
            run_id="r2",
            step_run_id=5,
            outputs={},
            components={},
            created_at=20.0,
        )
        other = CacheEntryRecord(
            key="k2",
            workflow="wf",
            step_id="eval",
            path="eval",
            run_id="r1",
            step_run_id=2,
            outputs={},
            components={},
            created_at=30.0,
        )
        store.write(batch_of(cache_entries=[entry]))
        store.write(batch_of(cache_entries=[later, other]))
        # The newest execution under a key replaces the entry (a --force or --no-cache run,
        # or one whose earlier outputs lost a blob): later runs reuse it, not the old one.
        assert store.get_cache_entry("k1") == later
        assert store.get_cache_entry("nope") is None
        assert [e.key for e in store.cache_entries(workflow="wf")] == ["k2", "k1"]
        assert [e.key for e in store.cache_entries(step_id="train")] == ["k1"]
        assert store.delete_cache_entries(step_id="train") == 1
        assert store.get_cache_entry("k1") is None
        assert store.delete_cache_entries() == 1
        assert store.cache_entries() == []

    def test_artifact_lineage_records(self, store: StateStore) -> None:
        write_run(store, "r1")
        a = ArtifactRecord(
            hash="h1",
            run_id="r1",
            step_run_id=1,
            path="prepare",
            output="train",
            serializer="parquet",
            size=100,
            attempt=1,
            type_name="pandas.DataFrame",
            inputs=[],
            created_at=1.0,
        )
        b = ArtifactRecord(
            hash="h2",
            run_id="r1",
            step_run_id=2,
            path="each[0].fit",
            output="return",
            serializer="pickle",
            size=50,
            attempt=1,
            item_index=0,
            inputs=["h1"],
            created_at=2.0,
        )
        store.write(batch_of(artifacts=[a, b]))
        rows = store.artifacts(run_id="r1")
        assert [(r.hash, r.path, r.inputs, r.item_index) for r in rows] == [
            ("h1", "prepare", [], None),
            ("h2", "each[0].fit", ["h1"], 0),
        ]
        assert [r.path for r in store.artifacts(hash="h2")] == ["each[0].fit"]
        assert store.referenced_hashes() == {"h1", "h2"}

    def test_artifact_uses_are_read_by_hash_oldest_first(self, store: StateStore) -> None:
        write_run(store)
        uses = [
            ArtifactUseRecord("h1", "r1", 2, "fit", 1, [["return", "h2"]], created_at=1.0),
            ArtifactUseRecord("h9", "r1", 3, "other", 1, [], created_at=1.5),
            ArtifactUseRecord("h1", "r1", 4, "score", 2, [], created_at=2.0),
        ]
        store.write(batch_of(artifact_uses=uses))
        found = store.artifact_uses("h1")
        assert [(u.path, u.attempt, u.outputs, u.created_at) for u in found] == [
            ("fit", 1, [["return", "h2"]], 1.0),
            ("score", 2, [], 2.0),
        ]
        assert [u.path for u in store.artifact_uses("h1", limit=1)] == ["fit"]
        assert store.artifact_uses("nope") == []

    def test_signals_filters_and_paging(self, store: StateStore) -> None:
        signals = [
            SignalRecord("data_ready", {"day": "2026-11-01"}, at=10.0, by="alice"),
            SignalRecord("other", {}, at=11.0),
            SignalRecord("data_ready", {"day": "2026-11-02"}, at=12.0, source_run_id="r9"),
        ]
        store.write(batch_of(signals=signals))
        ready = store.signals(name="data_ready")
        assert [s.params["day"] for s in ready] == ["2026-11-01", "2026-11-02"]
        assert ready[0].by == "alice" and ready[1].source_run_id == "r9"
        first_id = ready[0].id
        assert first_id is not None
        assert [s.name for s in store.signals(after_id=first_id)] == ["other", "data_ready"]
        assert [s.at for s in store.signals(since=11.5)] == [12.0]
        assert len(store.signals(limit=1)) == 1


class PersistentStoreContract(StoreContract):
    """Behaviour of stores whose database outlives the store object."""

    def test_reopen_finds_everything(self, store_url: str) -> None:
        first = open_store(store_url)
        batch = WriteBatch(
            definitions=[DefinitionRecord("h1", "wf", {"a": 1})],
            runs=[run_record("r1")],
            logs=[LogRecord("r1", 1, 1, 1.0, "stdout", "hello")],
            metrics=[MetricRecord("r1", 1, 1, "loss", 0.5, 1.0)],
            events=[EventRecord("r1", "run_started", 1.0)],
            commands=[CommandRecord("r1", "kill")],
        )
        batch.insert_step_run(step_record("r1", 1, outputs={"x": 1}))
        batch.insert_attempt(AttemptRecord("r1", 1, 1, "running"))
        first.write(batch)
        first.close()
        second = open_store(store_url)
        try:
            assert second.get_definition("h1").spec == {"a": 1}
            assert second.get_run("r1") == batch.runs[0]
            assert second.get_step_run("r1", "s1").outputs == {"x": 1}
            assert [a.number for a in second.attempts("r1")] == [1]
            assert [x.text for x in second.logs("r1")] == ["hello"]
            assert [m.name for m in second.metrics("r1")] == ["loss"]
            assert [e.kind for e in second.events("r1")] == ["run_started"]
            assert [c.kind for c in second.pending_commands("r1")] == ["kill"]
        finally:
            second.close()

    def test_migrated_schema_matches_the_schema_module(self, store_url: str) -> None:
        open_store(store_url).close()
        engine = sa.create_engine(store_url)
        try:
            with engine.connect() as conn:
                context = MigrationContext.configure(
                    conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
                )
                assert compare_metadata(context, metadata) == []
        finally:
            engine.dispose()

    def test_newer_schema_revision_is_refused(self, store_url: str) -> None:
        open_store(store_url).close()
        engine = sa.create_engine(store_url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff9999'"))
        finally:
            engine.dispose()
        with pytest.raises(
            SchemaVersionError, match=r"ffff9999, newer than this Kaon.*upgrade Kaon"
        ):
            open_store(store_url)

    def test_an_old_schema_is_not_migrated_under_its_own_running_engines(
        self, store_url: str
    ) -> None:
        """A newer Kaon opening a store (even `kaon runs`) migrated it while an engine of
        the older Kaon drove a run in it: that engine went on writing the old schema's rows
        (a first attempt in `attempts`, which revision 0012 had emptied), its run failed on
        "update of 1 missing row(s) in table attempts" and was left half recorded. A live
        lease on an unfinished run now stops the migration, naming the engine; once the
        engines are gone (their leases over), the store migrates and reads back."""
        if store_url.startswith("sqlite:///"):
            Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(store_url)
        config = AlembicConfig()
        config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))
        clock = (
            "((julianday('now') - 2440587.5) * 86400.0)"
            if store_url.startswith("sqlite")
            else "(extract(epoch from clock_timestamp())::float8)"
        )
        insert = (
            "INSERT INTO runs (id, workflow, definition_hash, status, params, created_at, "
            "restarts, executor, owner, lease_until, labels) VALUES (:id, 'wf', 'h', :status, "
            f"'{{}}', 1.0, 0, 'process', :owner, {clock} + :ttl, '{{}}')"
        )
        try:
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                alembic_command.upgrade(config, "0011_step_events_index")
                for run_id, status, owner, ttl in (
                    ("live", "running", "old-host:1:abc", 30.0),
                    ("done", "succeeded", "old-host:2:def", 3600.0),  # finished: no engine
                    ("dead", "running", "old-host:3:fed", -5.0),  # a crashed engine's
                ):
                    conn.execute(
                        sa.text(insert),
                        {"id": run_id, "status": status, "owner": owner, "ttl": ttl},
                    )
            with pytest.raises(SchemaVersionError) as caught:
                open_store(store_url, create=False)
            message = str(caught.value)
            assert "schema revision 0011_step_events_index, older than this Kaon's" in message
            assert "old-host:1:abc drives 1 run (live)" in message
            assert "old-host:2:def" not in message and "old-host:3:fed" not in message
            with engine.connect() as conn:
                assert migrations.current_revisions(conn) == ("0011_step_events_index",)
            with engine.begin() as conn:  # the old engine stopped and released its lease
                conn.execute(sa.text("UPDATE runs SET owner = NULL, lease_until = NULL"))
            store = open_store(store_url, create=False)
            try:
                assert {r.id for r in store.list_runs()} == {"live", "done", "dead"}
            finally:
                store.close()
        finally:
            engine.dispose()

    def test_opening_twice_at_once_migrates_once(self, store_url: str) -> None:
        stores: list[StateStore] = []
        lock = threading.Lock()

        def opener(owner: str) -> bool:
            store = open_store(store_url)
            with lock:
                stores.append(store)
            return True

        assert len(self._race(opener, contenders=4)) == 4
        try:
            write_run(stores[0])
            assert all(s.get_run("r1").id == "r1" for s in stores)
        finally:
            for store in stores:
                store.close()

    def test_lease_race_between_store_objects_has_one_winner(self, store_url: str) -> None:
        stores = [open_store(store_url) for _ in range(4)]
        try:
            write_run(stores[0])
            by_owner = {f"o{i}": s for i, s in enumerate(stores)}
            for _round in range(3):
                winners = self._race(lease_taker(by_owner.__getitem__), len(stores))
                assert len(winners) == 1
                stores[0].release_lease("r1", winners[0])
        finally:
            for store in stores:
                store.close()


class TestSQLiteFileStore(PersistentStoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'state' / 'kaon.db'}"


class TestSQLiteMemoryStore(StoreContract):
    @pytest.fixture(params=["sqlite://", "sqlite:///:memory:"])
    def store_url(self, request: pytest.FixtureRequest) -> str:
        url: str = request.param
        return url


@pytest.mark.integration
class TestPostgresStore(PersistentStoreContract):
    @pytest.fixture
    def store_url(self, pg_url: str) -> str:
        return pg_url

    def test_a_batch_draws_its_feed_ids_under_the_feed_lock(self, store_url: str) -> None:
        """The batch's first feed row takes the feed lock (kaon.store.feed) before any of its
        rows draws an id: while another transaction holds the lock, the batch waits, and the
        ids of its events and signals come after the ones that transaction drew."""
        import psycopg

        from kaon.store.feed import FEED_LOCK_SQL

        dsn = store_url.replace("postgresql+psycopg://", "postgresql://")
        with store_and_connections(store_url) as (store, _connections):
            write_run(store)
            batch = WriteBatch()
            batch.update_run("r1", status=RunStatus.RUNNING)
            batch.events.append(EventRecord("r1", "a", 1.0))
            batch.events.append(EventRecord("r1", "b", 1.0))
            batch.signals.append(SignalRecord("s", {}, 1.0))
            errors: list[BaseException] = []

            def write() -> None:
                try:
                    store.write(batch)
                except BaseException as error:  # reported by the test's thread
                    errors.append(error)

            writer = threading.Thread(target=write)
            with psycopg.connect(dsn) as holder:
                holder.execute(FEED_LOCK_SQL)
                writer.start()
                writer.join(0.5)
                assert writer.is_alive(), "the batch did not wait for the feed lock"
                row = holder.execute(
                    "SELECT nextval('events_id_seq'), nextval('signals_id_seq')"
                ).fetchone()
                assert row is not None
                holder.commit()
            writer.join(30)
            assert not writer.is_alive() and not errors, errors
            event_ids = [e.id or 0 for e in store.events()]
            signal_ids = [s.id or 0 for s in store.signals()]
            assert len(event_ids) == 2 and min(event_ids) > row[0], (event_ids, row)
            assert len(signal_ids) == 1 and signal_ids[0] > row[1], (signal_ids, row)
            assert store.get_run("r1").status is RunStatus.RUNNING

    def test_a_turn_is_one_round_trip_commit_included(self, store_url: str, tmp_path: Path) -> None:
        """A chain turn's batch (fence, inserts, checked updates, feed lock, events) and its
        commit cost one round trip: libpq's protocol trace of the store's connections shows
        one burst of client messages, then one of server messages ending in the only
        ReadyForQuery (the server's answer to a Sync or a simple query)."""
        import psycopg.pq

        def traced(turn: int, write: Callable[[], None]) -> list[list[str]]:
            """The protocol messages of every connection of the store during ``write()``."""
            flags = psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
            pgconns = [connection.pgconn for connection in connections]
            paths = [tmp_path / f"turn{turn}-{n}.txt" for n in range(len(pgconns))]
            with ExitStack() as files:
                for path, pgconn in zip(paths, pgconns, strict=True):
                    pgconn.trace(files.enter_context(path.open("w")).fileno())
                    pgconn.set_trace_flags(flags)
                try:
                    write()
                finally:
                    for pgconn in pgconns:
                        pgconn.untrace()  # flushes, before the file closes
            return [line.split("\t") for path in paths for line in path.read_text().splitlines()]

        with store_and_connections(store_url) as (store, connections):
            write_run(store)
            epoch = store.acquire_lease("r1", "engine", 60.0)
            assert epoch is not None
            fence = Fence("engine", {"r1": epoch})
            for step in range(1, 4):  # the first turns prepare the statements; the last not
                batch = WriteBatch(fence=fence)
                if step > 1:
                    batch.update_step_run("r1", step - 1, status=StepStatus.SUCCEEDED)
                    batch.update_attempt(("r1", step - 1, 1), status="succeeded")
                    batch.events.append(EventRecord("r1", "succeeded", 1.0, step_run_id=step - 1))
                batch.insert_step_run(step_record("r1", step, status=StepStatus.RUNNING))
                batch.insert_attempt(AttemptRecord("r1", step, 1, "running"))
                batch.events.append(EventRecord("r1", "started", 1.0, step_run_id=step))
                lines = traced(step, lambda batch=batch: store.write(batch))
                directions = [line[0] for line in lines]
                bursts = [d for n, d in enumerate(directions) if n == 0 or directions[n - 1] != d]
                assert bursts == ["F", "B"], f"turn {step}: {len(bursts) // 2} round trips"
                assert [line[2] for line in lines if line[0] == "B"][-1] == "ReadyForQuery"
                assert sum(line[2] == "ReadyForQuery" for line in lines) == 1
            assert [s.status for s in store.step_runs("r1")][-1] is StepStatus.RUNNING
            assert len(store.events()) == 5

    def test_a_long_run_updates_its_step_runs_by_primary_key(self, store_url: str) -> None:
        """A connection's prepared statements are planned from the tables' statistics, which
        autovacuum gathers a minute or more after a table grows. Planned without them, the
        update of a step run (by primary key, ``run_id`` and ``id``) took an index of
        ``(run_id, kind, status, id)`` and scanned every step run of the run: a chain's step
        on PostgreSQL cost time in proportion to the steps before it (0.07 ms per update at
        its start, 0.51 ms over the last tenth of 4,000). The store analyzes ``step_runs``
        as its writes grow it; the plan the connection then holds looks a step run up by
        primary key."""
        import psycopg

        from kaon.store._pg_statements import _cache

        with store_and_connections(store_url) as (store, connections):
            write_run(store)
            for step in range(1, 1201):  # a chain: the next step started, the last one ended
                batch = WriteBatch()
                batch.insert_step_run(step_record("r1", step, status=StepStatus.RUNNING))
                if step > 1:
                    batch.update_step_run("r1", step - 1, status=StepStatus.SUCCEEDED)
                store.write(batch)
            updates = [  # this process's (other tests prepared other shapes)
                s for s in _cache.values() if s.query.startswith(b"WITH u AS (UPDATE step_runs")
            ]
            plans = []
            for update in updates:  # the connection that prepared this test's explains it
                values = ", ".join(
                    "'r1'" if p == "k_run_id" else "1200" if p == "k_id" else "NULL"
                    for p in update.params
                )
                for connection in connections:
                    try:
                        explain = f"EXPLAIN EXECUTE {update.name.decode()}({values})"
                        plans.append("\n".join(row[0] for row in connection.execute(explain)))
                    except psycopg.errors.InvalidSqlStatementName:
                        pass  # not prepared on this connection
                    finally:
                        connection.rollback()
            assert plans
            for plan in plans:
                assert "Index Scan using step_runs_pkey on step_runs" in plan, plan

    def test_a_write_after_the_database_closed_its_connections_takes_new_ones(
        self, store_url: str
    ) -> None:
        """After a database restart (here: every backend of the store terminated, as a
        restart does), the write path's kept connection and its pool's are dead. A write
        finds that without a round trip (the socket says the server hung up), takes a new
        connection and succeeds, instead of failing once per dead connection (the API
        answered those with 500, the trigger loop lost a pass)."""
        import psycopg

        with store_and_connections(store_url) as (store, connections):
            write_run(store)
            sql_store = cast(Any, store)
            for path in ("kept", "pooled"):
                if path == "pooled":  # the kept connection is busy: a write takes the pool's
                    assert sql_store._pin_lock.acquire(blocking=False)
                try:
                    batch = WriteBatch()
                    batch.insert_step_run(step_record("r1", 1 if path == "kept" else 2))
                    store.write(batch)  # opens the connection the next write reuses
                    dsn = store_url.replace("postgresql+psycopg://", "postgresql://")
                    with psycopg.connect(dsn, autocommit=True) as admin:
                        pids = [c.info.backend_pid for c in connections if not c.closed]
                        admin.execute(
                            "SELECT pg_terminate_backend(pid) FROM unnest(%s) pid", [pids]
                        )
                    time.sleep(0.2)  # the terminations land
                    again = WriteBatch()
                    again.update_step_run(
                        "r1", 1 if path == "kept" else 2, status=StepStatus.RUNNING
                    )
                    store.write(again)  # StoreUnavailableError before: a dead connection
                finally:
                    if path == "pooled":
                        sql_store._pin_lock.release()
            assert [s.status for s in store.step_runs("r1")] == [StepStatus.RUNNING] * 2

    def test_a_write_while_the_database_refuses_connections_keeps_the_store_closable(
        self, store_url: str
    ) -> None:
        """While a restarted database refuses connections (it is still recovering), a write
        finds its kept connection dead and cannot open another: StoreUnavailableError. That
        write used to leave the kept connection's lock taken: every later write went without
        a kept connection, and closing the store waited on the lock for ever (a server's
        engine did not stop on SIGTERM and was killed 30 s later)."""
        import psycopg

        dsn = store_url.replace("postgresql+psycopg://", "postgresql://")
        server, database = dsn.rsplit("/", 1)
        with store_and_connections(store_url) as (store, connections):
            write_run(store)
            batch = WriteBatch()
            batch.insert_step_run(step_record("r1", 1))
            store.write(batch)  # the write path keeps this connection
            with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                try:
                    pids = [c.info.backend_pid for c in connections if not c.closed]
                    admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s) pid", [pids])
                    time.sleep(0.2)  # the terminations land
                    refused = WriteBatch()
                    refused.update_step_run("r1", 1, status=StepStatus.RUNNING)
                    with pytest.raises(StoreUnavailableError):
                        store.write(refused)
                finally:
                    admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            store.write(refused)  # the database is back
            assert [s.status for s in store.step_runs("r1")] == [StepStatus.RUNNING]
            closing_store = threading.Thread(target=store.close, daemon=True)
            closing_store.start()
            closing_store.join(10)
            hangs = closing_store.is_alive()
            if hangs:  # let the fixture's own close end
                cast(Any, store)._pin_lock.release()
            assert not hangs, "closing the store waits for ever on the kept connection's lock"

    def test_an_analysis_that_cannot_lock_the_table_does_not_fail_the_write(
        self, store_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The write that is due to analyze ``step_runs`` is committed before the analysis;
        an analysis that waits for the table's lock (here another session holds it, as a
        VACUUM would) gives up after 200 ms with a warning, and the write stands."""
        import psycopg

        from kaon.store import _pg_write

        locker = psycopg.connect(store_url.replace("postgresql+psycopg://", "postgresql://"))
        with closing(locker), store_and_connections(store_url) as (store, connections):
            write_run(store)
            sessions = [_pg_write._sessions[c] for c in connections if c in _pg_write._sessions]
            assert len(sessions) == 1
            sessions[0].analyze_at = sessions[0].writes + 1  # the next write analyzes
            locker.execute("LOCK TABLE step_runs IN SHARE UPDATE EXCLUSIVE MODE")
            batch = WriteBatch()
            batch.insert_step_run(step_record("r1", 1, status=StepStatus.RUNNING))
            watchdog = threading.Timer(5.0, locker.rollback)  # fail, not hang, without it
            watchdog.start()
            started = time.monotonic()
            try:
                with caplog.at_level("WARNING", logger="kaon.store._pg_write"):
                    store.write(batch)
            finally:
                watchdog.cancel()
                watchdog.join()
            assert time.monotonic() - started < 1.5
            assert "analyzing step_runs failed" in caplog.text
            assert "lock timeout" in caplog.text
            locker.rollback()
            assert [r.id for r in store.step_runs("r1")] == [1]

    def test_a_write_interrupted_mid_round_trip_leaves_a_connection_that_is_replaced(
        self, store: StateStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from kaon.store import _pg_write

        write_run(store)
        waits = 0

        def interrupted(fileno: int, *, write: bool) -> bool:
            nonlocal waits
            waits += 1
            raise KeyboardInterrupt

        with monkeypatch.context() as patch:
            patch.setattr(_pg_write, "_wait", interrupted)
            with pytest.raises(KeyboardInterrupt):
                write_steps(store, step_record("r1", 1))
        assert waits == 1
        with pytest.raises(StoreUnavailableError, match="interruption"):
            write_steps(store, step_record("r1", 2))  # the connection is found unusable
        write_steps(store, step_record("r1", 3))  # on a new one
        assert {s.id for s in store.step_runs("r1")} <= {1, 3}
        assert 3 in {s.id for s in store.step_runs("r1")}

    def test_statements_the_server_forgot_are_prepared_again(self, store_url: str) -> None:
        """Something ran ``DEALLOCATE ALL`` on the writer's connection (or a pooler moved its
        session): the write that finds its prepared statements gone runs again, prepared."""
        with store_and_connections(store_url) as (store, connections):
            write_run(store)
            write_steps(store, step_record("r1", 1))
            for connection in connections:
                if not connection.closed:
                    connection.execute("DEALLOCATE ALL")
                    connection.rollback()
            batch = WriteBatch(events=[EventRecord("r1", "x", 1.0)])
            batch.insert_step_run(step_record("r1", 2))
            batch.update_step_run("r1", 1, status=StepStatus.RUNNING)
            store.write(batch)
            assert [(s.id, s.status) for s in store.step_runs("r1")] == [
                (1, StepStatus.RUNNING),
                (2, StepStatus.PENDING),
            ]
            assert [e.kind for e in store.events()] == ["x"]

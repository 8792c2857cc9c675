"""The SQL store's write path: update grouping, statement reuse, errors at the boundary."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import StoreError, StoreUnavailableError
from kaon.model.status import RunStatus, StepStatus
from kaon.store import _lite
from kaon.store._rows import update_groups
from kaon.store.base import EventRecord, RunRecord, SignalRecord, StepRunRecord, WriteBatch
from kaon.store.sql import SQLStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "kaon.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLStore]:
    store = SQLStore(f"sqlite:///{path}")
    yield store
    store.close()


def _turn(n: int) -> WriteBatch:
    batch = WriteBatch(events=[EventRecord("r1", "e", float(n))])
    batch.insert_step_run(StepRunRecord("r1", n, f"s{n}", "s", "task", StepStatus.RUNNING))
    if n > 1:
        batch.update_step_run("r1", n - 1, status=StepStatus.SUCCEEDED, ended_at=float(n))
    return batch


def test_updates_group_by_changed_columns_and_encode_enums() -> None:
    groups = update_groups(
        "step_runs",
        {
            ("r", 1): {"status": StepStatus.RUNNING},
            ("r", 2): {"status": StepStatus.FAILED, "reason": "x"},
            ("r", 3): {"reason": "y", "status": StepStatus.SKIPPED},
            ("r", 4): {},
        },
    )
    assert groups == {
        frozenset({"status"}): [{"k_run_id": "r", "k_id": 1, "v_status": "running"}],
        frozenset({"status", "reason"}): [
            {"k_run_id": "r", "k_id": 2, "v_status": "failed", "v_reason": "x"},
            {"k_run_id": "r", "k_id": 3, "v_status": "skipped", "v_reason": "y"},
        ],
    }


@pytest.mark.parametrize("column", ["nope", "run_id", "id"])
def test_update_statement_refuses_unknown_and_key_columns(store: SQLStore, column: str) -> None:
    with pytest.raises(StoreError, match=f"'{column}' of table step_runs"):
        store._compiled("step_runs", ("update", frozenset({column, "status"})))


def test_statements_are_compiled_once_per_shape(store: SQLStore) -> None:
    store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
    store.write(_turn(1))
    store.write(_turn(2))
    compiled = dict(store._statements)
    for n in range(3, 50):
        store.write(_turn(n))
    assert store._statements == compiled
    assert len(store.step_runs("r1")) == 49


def test_database_errors_become_store_errors(store: SQLStore, path: Path) -> None:
    store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE events")
        raw.execute("DROP TABLE runs")
    with pytest.raises(StoreError, match="writing table events failed"):
        store.write(_turn(1))
    with pytest.raises(StoreError, match="reading failed"):
        store.get_run("r1")
    with pytest.raises(StoreError, match="acquiring a lease failed"):
        store.acquire_lease("r1", "me", 2.0)


def test_a_write_that_cannot_begin_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the database's write lock: the engine logged "store ...:
    writing table ? failed" while it retried, naming no table (none had been written yet)
    nor what failed."""
    monkeypatch.setattr(_lite, "BUSY_TIMEOUT_S", 0.05)  # read as connections are made
    path = tmp_path / "kaon.db"
    store = SQLStore(f"sqlite:///{path}")
    try:
        store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                store.write(_turn(1))
        finally:
            other.execute("ROLLBACK")
            other.close()
        message = str(caught.value)
        assert "table ?" not in message
        assert "beginning the write transaction failed" in message, message
        assert "database is locked" in message, message
    finally:
        store.close()


def test_unreachable_database_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="opening the store failed") as caught:
        SQLStore("postgresql+psycopg://kaon:secret@127.0.0.1:1/kaon")
    assert "127.0.0.1:1/kaon" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_sqlite_inserts_leave_null_columns_out_and_read_back_the_same(
    store: SQLStore, path: Path
) -> None:
    """Rows of one table with different NULL columns are written by statements that bind
    only their values (the driver's cost of binding None); what is read back is the same."""
    store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
    bare = StepRunRecord("r1", 1, "a", "a", "task", StepStatus.RUNNING, created_at=1)
    full = StepRunRecord(
        "r1",
        2,
        "b",
        "b",
        "task",
        StepStatus.FAILED,
        parent_id=1,
        index=0,
        item={"k": [1, 2]},
        outputs={"return": {"literal": 3}},
        error={"type": "E", "message": "m"},
        reason="why",
        created_at=2,
        started_at=2.5,
        ended_at=3,
        cache_key="key",
    )
    batch = WriteBatch(events=[EventRecord("r1", "run", 1.0, {"status": "running"})])
    batch.events.append(EventRecord("r1", "step", 2.0, {"path": "b"}, step_run_id=2))
    batch.insert_step_run(bare)
    batch.insert_step_run(full)
    store.write(batch)
    rows = {row.id: row for row in store.step_runs("r1", all_levels=True)}
    assert rows[1] == bare
    assert rows[2] == full
    assert isinstance(rows[2].ended_at, float) and rows[2].ended_at == 3.0  # REAL column
    assert [(e.step_run_id, e.data) for e in store.events("r1")] == [
        (None, {"status": "running"}),
        (2, {"path": "b"}),
    ]
    with sqlite3.connect(path) as raw:
        kinds = raw.execute("SELECT typeof(created_at), typeof(item) FROM step_runs").fetchall()
    assert kinds == [("real", "null"), ("real", "text")]


def test_json_documents_that_cannot_be_stored_are_store_errors(store: SQLStore) -> None:
    store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
    looped: dict[str, object] = {}
    looped["self"] = looped
    for data, reason in (
        (looped, "Circular reference"),
        ({"x": float("nan")}, "Out of range float"),
        ({"x": object()}, "not JSON serializable"),
    ):
        with pytest.raises(StoreError, match=reason):
            store.write(WriteBatch(events=[EventRecord("r1", "e", 1.0, data)]))  # type: ignore[arg-type]
    assert store.events("r1") == []


def test_sparse_inserts_keep_the_order_rows_were_written_in(store: SQLStore) -> None:
    """Rows that leave out different NULL columns still get their ids in batch order: the
    event feed, logs and metrics are read by id."""
    store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
    steps = [2, None, 3, None, None, 4]
    batch = WriteBatch(
        events=[
            EventRecord("r1", "e", float(n), {"n": n}, step_run_id=s) for n, s in enumerate(steps)
        ]
    )
    store.write(batch)
    found = store.events("r1")
    assert [e.data["n"] for e in found] == list(range(len(steps)))
    assert [e.step_run_id for e in found] == steps
    assert [e.id for e in found] == sorted(e.id for e in found)


def test_a_signal_committed_while_a_cursor_is_made_is_after_the_cursor(store: SQLStore) -> None:
    """A wait step's cursor is made with two reads (the first signal since its run began,
    else the newest id). A signal committed between them must still be above the cursor,
    or the step would never see it (a wait run stuck forever, seen under load)."""
    since = time.time()
    store.write(WriteBatch(signals=[SignalRecord("old", {}, since - 60, "test")]))
    lite = store._lite
    assert lite is not None
    rows = lite.rows
    late: list[int] = []
    reads = [0]

    def commit_between(key: Any, params: Any, cursor: Any = None) -> Any:
        found = rows(key, params, cursor)
        reads[0] += 1
        if reads[0] == 1:  # after the first read, another writer commits a signal
            store.write(WriteBatch(signals=[SignalRecord("go", {}, since + 1, "test")]))
            newest = rows(("signal_max",), {})
            late.append(int(next(iter(newest[0].values()))))
        return found

    lite.rows = commit_between  # type: ignore[method-assign]
    try:
        cursor = store.signal_cursor_since(since)
    finally:
        del lite.rows
    assert late and cursor < late[0]


def test_a_full_disk_is_the_store_being_unavailable_not_a_rejected_row(
    store: SQLStore,
) -> None:
    """SQLite's "database or disk is full" concerns the whole store, not the rows written:
    it is a transient StoreUnavailableError (the engine retries the write until space is
    freed), as PostgreSQL's disk full is, never a StoreError that blames (and fails) the
    run whose write met it."""
    lite = store._lite
    assert lite is not None
    with lite.connection() as connection:  # the pooled connection the write takes next
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages + 2}")  # what SQLITE_FULL says
    batch = WriteBatch(events=[EventRecord("r1", "log", 1.0, {"text": "x" * 100_000})])
    with pytest.raises(StoreUnavailableError, match="database or disk is full"):
        store.write(batch)
    store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))  # small: fits
    assert store.get_run("r1").status is RunStatus.RUNNING

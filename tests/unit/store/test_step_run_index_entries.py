"""Which secondary indexes a step run's rows write: a chain step (top level) changes status
twice, and every index keyed by status moves its entry at each change, so such an index
holds only the rows its reads need."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from query_plans import query_plans

from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store, stats
from kaon.store.base import RunRecord, StepRunRecord, WriteBatch
from kaon.store.reads import SQLRunReads, StepQuery
from kaon.store.sql import SQLStore


def _entries(path: Path) -> dict[str, int]:
    """The entries (leaf cells) of each index of ``step_runs``."""
    raw = sqlite3.connect(path)
    try:
        rows = raw.execute(
            "SELECT name, sum(ncell) FROM dbstat WHERE pagetype = 'leaf' AND name IN "
            "(SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'step_runs') "
            "GROUP BY name"
        ).fetchall()
    finally:
        raw.close()
    return {str(name): int(n) for name, n in rows}


def _run(store: SQLStore) -> None:
    """A run with three top-level tasks that ran and a foreach of two items."""
    batch = WriteBatch()
    batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.RUNNING, created_at=1.0))
    for i in (1, 2, 3):
        batch.insert_step_run(StepRunRecord("r1", i, f"s{i}", f"s{i}", "task", StepStatus.RUNNING))
    batch.insert_step_run(StepRunRecord("r1", 4, "each", "each", "foreach", StepStatus.RUNNING))
    for i in (0, 1):
        path = f"each[{i}]"
        item = StepRunRecord("r1", 5 + i, path, "each", "item", StepStatus.RUNNING, 4, i)
        batch.insert_step_run(item)
    store.write(batch)
    for i in (1, 2, 3):
        done = WriteBatch()
        done.update_step_run("r1", i, status=StepStatus.SUCCEEDED, ended_at=2.0)
        store.write(done)


def test_a_top_level_step_has_no_entry_in_the_status_index_of_children(tmp_path: Path) -> None:
    """``ix_step_runs_parent_status`` (whose entries a status change moves) holds a
    container's children only; the parent index, whose top-level entries never move, holds
    every step run, and the run's top level is read from it."""
    path = tmp_path / "entries.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    try:
        _run(store)
        entries = _entries(path)
        assert entries["ix_step_runs_parent_status"] == 2, entries  # the two items
        assert entries["ix_step_runs_parent_index"] == 6, entries
        reads = SQLRunReads(store)
        done = (StepStatus.SUCCEEDED,)
        top = query_plans(store, path, lambda: reads.step_page("r1", StepQuery(statuses=done)))
        assert [row.path for row in store.step_runs("r1", statuses=done)] == ["s1", "s2", "s3"]
        assert reads.step_page("r1", StepQuery(statuses=done, sort="path")).total == 3
        children = query_plans(store, path, lambda: store.child_counts("r1", 4))
        children += query_plans(store, path, lambda: reads.children_counts("r1", [4]))
        items = StepQuery(parent_id=4, statuses=(StepStatus.RUNNING,))
        children += query_plans(store, path, lambda: reads.step_page("r1", items))
        assert store.child_counts("r1", 4) == {StepStatus.RUNNING: 2}
    finally:
        store.close()
    steps = [line for line in top if "step_runs" in line]
    assert len(steps) == 2, top  # the page and its count
    assert all("ix_step_runs_parent_index (run_id=? AND parent_id=?)" in x for x in steps), top
    steps = [line for line in children if "step_runs" in line]
    assert len(steps) == 4, children
    assert all("ix_step_runs_parent_status (run_id=? AND parent_id=?" in x for x in steps), steps


def test_only_tasks_have_an_entry_in_the_metrics_index(tmp_path: Path) -> None:
    """``/metrics`` reads tasks only, so a container's or a frame's rows (a foreach's items,
    each changing status twice) write no entry of ``ix_step_runs_metrics``, and its reads
    (tasks by status, the first attempts that ended in a range) still read it."""
    path = tmp_path / "entries.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    sent: list[tuple[str, Any]] = []

    def grab(conn: object, cursor: object, statement: str, parameters: Any, *_: object) -> None:
        sent.append((statement, parameters))

    try:
        _run(store)
        with store.reading() as conn:
            sa.event.listen(conn, "before_cursor_execute", grab)
            _, tasks = stats.status_counts(conn)
            ended = stats.attempt_durations(conn, (1.0,), 0.0, None)
    finally:
        store.close()
    assert _entries(path)["ix_step_runs_metrics"] == 3, _entries(path)  # the three tasks
    assert sorted(tasks) == [("succeeded", 3)]
    assert ended.count == 0  # no attempt started (no first_started_at)
    raw = sqlite3.connect(path)
    try:
        plans = [
            row[3]
            for statement, parameters in sent
            if "step_runs" in statement
            for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    finally:
        raw.close()
    assert len(plans) == 2, plans
    assert all("INDEX ix_step_runs_metrics" in line for line in plans), plans

"""The reads of one step's events and of a run's logs, metrics and failed tasks use an index in
the order they read (SQLite's query plan: no scan of the run's rows, no sort of them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from query_plans import query_plans

from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store, stats
from kaon.store.base import RunRecord, StepRunRecord, WriteBatch
from kaon.store.reads import RunHistoryQuery, SQLRunReads, StepQuery
from kaon.store.sql import SQLStore


def _plans(store: SQLStore, path: Path, read: Callable[[], Any]) -> list[str]:
    """The query plan lines of every SELECT that ``read`` sends."""
    return query_plans(store, path, read)


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("step_events", "ix_events_run_step"),
        ("progress", "ix_events_run_step"),
        ("run_logs", "ix_logs_run"),
        ("last_log", "ix_logs_run"),
        ("run_metrics", "ix_metrics_run"),
        ("failed_tasks", "ix_step_runs_kind_status"),
        ("last_failure", "ix_runs_workflow_status_ended"),
        ("success_in_a_day", "ix_runs_workflow_status_ended"),
        ("run_status_changes", "ix_events_run_step"),
    ],
)
def test_reads_follow_an_index(tmp_path: Path, name: str, index: str) -> None:
    path = tmp_path / "plans.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    try:
        batch = WriteBatch()
        batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.RUNNING, created_at=1.0))
        batch.insert_step_run(StepRunRecord("r1", 1, "a", "a", "task", StepStatus.FAILED))
        store.write(batch)
        reads = SQLRunReads(store)
        calls: dict[str, Callable[[], Any]] = {
            "step_events": lambda: store.step_events("r1", 1, kind="step"),
            "progress": lambda: reads.last_progress("r1", 1),
            "run_logs": lambda: reads.log_window("r1", None, after_id=0),
            "last_log": lambda: reads.last_log_id("r1"),
            "run_metrics": lambda: reads.run_metrics("r1", limit=10),
            "failed_tasks": lambda: reads.all_levels_page(
                "r1", limit=10, statuses=(StepStatus.FAILED,), kind="task", total=1
            ),
            "last_failure": lambda: store.last_ended_run("wf", RunStatus.FAILED, after=0.0),
            "success_in_a_day": lambda: store.last_ended_run(
                "wf", RunStatus.SUCCEEDED, after=0.0, until=86_400.0
            ),
            "run_status_changes": lambda: reads.run_status_changes("r1", 0.0),
        }
        plans = _plans(store, path, calls[name])
        assert any(index in line for line in plans), plans
        assert not any("TEMP B-TREE" in line for line in plans), plans
    finally:
        store.close()


def test_metrics_histogram_and_a_frames_children_follow_an_index(tmp_path: Path) -> None:
    """``/metrics``' latency histogram reads a range of end times from an index for both
    homes of an attempt (the retries' rows, the first attempts' columns of the step runs,
    one range per status), and a container's children are read by the partial parent index
    (which top-level steps are left out of)."""
    path = tmp_path / "plans.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    sent: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    try:
        store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
        with store.reading() as conn:
            sa.event.listen(conn, "before_cursor_execute", grab)
            stats.attempt_durations(conn, (1.0, 5.0), 10.0, 20.0)
        plans = _plans(store, path, lambda: store.child_outputs("r1", 3))
        frame = {"run_id": "r1", "parent_id": 3}
        plans += _plans(store, path, lambda: store.query_value(("frame_index", "max"), **frame))
    finally:
        store.close()
    raw = sqlite3.connect(path)
    try:
        histogram = [
            row[3]
            for statement, parameters in sent
            for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    finally:
        raw.close()
    assert len(histogram) == 2, histogram
    assert "USING INDEX ix_attempts_ended (ended_at>? AND ended_at<?)" in histogram[0]
    assert "ix_step_runs_metrics (status=? AND first_ended_at>?" in histogram[1]
    children = [line for line in plans if "step_runs" in line]
    assert len(children) == 2, plans
    assert all("INDEX ix_step_runs_parent_index (run_id=? AND parent_id=?" in x for x in children)


def test_a_text_search_reads_the_index_of_its_page(tmp_path: Path) -> None:
    """Searching a workflow's runs or a frame's items for text (matched in the JSON of the
    params, labels or item as written) reads them as the page without a search does: one
    workflow's runs on ix_runs_workflow_created (its count on a workflow index), one frame's
    items on a parent index (a count reads the rows, not only the index, to match their
    text)."""
    path = tmp_path / "plans.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    try:
        batch = WriteBatch()
        batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.RUNNING, created_at=1.0))
        batch.insert_step_run(StepRunRecord("r1", 1, "each", "each", "foreach", StepStatus.RUNNING))
        store.write(batch)
        reads = SQLRunReads(store)

        def plans(text: str | None) -> list[str]:
            history = RunHistoryQuery("wf", text=text)
            items = StepQuery(parent_id=1, text=text)
            found = _plans(store, path, lambda: reads.run_history(history))
            found += _plans(store, path, lambda: reads.step_page("r1", items))
            return [line.replace("COVERING INDEX", "INDEX") for line in found]

        searched = plans('Zü"r\\')
        assert searched == plans(None)
        # The page and its count each read one workflow's range of a workflow index (which
        # of the two for the count is SQLite's pick: both start with the workflow).
        runs = [line for line in searched if "ix_runs_workflow_" in line]
        items = [line for line in searched if "step_runs" in line]
        assert len(runs) == 2 and all("(workflow=?" in line for line in runs), searched
        assert "ix_runs_workflow_created" in runs[0], searched  # the page, in its order
        assert not [line for line in searched if line.startswith("SCAN")], searched
        assert len(items) == 2, searched
        # The frame's range of either parent index (the status one, partial, holds children).
        frame = "ix_step_runs_parent_{} (run_id=? AND parent_id=?"
        assert all(frame.format("index") in x or frame.format("status") in x for x in items)
    finally:
        store.close()


def test_one_parents_step_runs_read_its_range_not_the_whole_run(tmp_path: Path) -> None:
    """The engine reads the run's top level (opening a run) and a container's children
    (restoring a frame, cancelling a tree) with ``step_runs``: each reads a parent index's
    range, not every step run of the run in id order (a foreach of 100,000 items made each
    such read of two top-level rows take 20-35 ms)."""
    path = tmp_path / "plans.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    try:
        batch = WriteBatch()
        batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.RUNNING, created_at=1.0))
        batch.insert_step_run(StepRunRecord("r1", 1, "each", "each", "foreach", StepStatus.RUNNING))
        for i in range(50):
            path_i = f"each[{i}]"
            item = StepRunRecord("r1", 2 + i, path_i, "each", "item", StepStatus.RUNNING, 1, i)
            batch.insert_step_run(item)
        store.write(batch)
        running = [StepStatus.RUNNING]
        plans = _plans(store, path, lambda: store.step_runs("r1"))
        plans += _plans(store, path, lambda: store.step_runs("r1", statuses=running))
        plans += _plans(store, path, lambda: store.step_runs("r1", parent_id=1))
        plans += _plans(store, path, lambda: store.step_runs("r1", parent_id=1, statuses=running))
        assert [row.id for row in store.step_runs("r1", parent_id=1)] == list(range(2, 52))
        assert [row.path for row in store.step_runs("r1")] == ["each"]
    finally:
        store.close()
    searches = [line for line in plans if "step_runs" in line]
    assert len(searches) == 4, plans
    assert all("ix_step_runs_parent_" in line and "parent_id=?" in line for line in searches), plans

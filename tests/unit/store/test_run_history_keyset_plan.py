"""A page of a workflow's runs after a keyset (``GET /workflows/{name}/runs?before=``) seeks
its place in ``ix_runs_workflow_created``: an offset walked over every run before the page."""

from __future__ import annotations

from pathlib import Path

from query_plans import query_plans

from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import RunRecord, WriteBatch
from kaon.store.reads import RunHistoryQuery, SQLRunReads
from kaon.store.sql import SQLStore


def test_a_deep_page_of_a_workflows_runs_seeks_its_place(tmp_path: Path) -> None:
    """The page after a keyset is a range of ``ix_runs_workflow_created`` from that run
    on, not a walk over the runs before it."""
    path = tmp_path / "plans.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    try:
        runs = [
            RunRecord(f"r{i:03d}", "wf", "h", RunStatus.SUCCEEDED, created_at=1.0 + i)
            for i in range(9)
        ]
        store.write(WriteBatch(runs=runs))
        reads = SQLRunReads(store)
        query = RunHistoryQuery("wf", limit=3, before=(5.0, "r004"))
        assert [r.id for r in reads.run_history(query).rows] == ["r003", "r002", "r001"]
        plans = query_plans(store, path, lambda: reads.run_history(query))
    finally:
        store.close()
    page = "SEARCH runs USING INDEX ix_runs_workflow_created (workflow=? AND created_at<?)"
    assert plans[0] == page, plans

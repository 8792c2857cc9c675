"""Choosing the runs past retention reads them oldest first from ``ix_runs_created`` and
counts each one's newer runs in ``ix_runs_workflow_created``, up to the number kept: the cost
follows the batch, not the history (ranking every finished run of every workflow took 0.96 s
a call with 200,000: ``python bench/retention_bench.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from query_plans import query_plans

from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import RunRecord, WriteBatch
from kaon.store.sql import SQLStore


@pytest.mark.parametrize("workflow", [None, "wf1"])
def test_runs_past_retention_are_read_oldest_first_without_sorting_the_history(
    tmp_path: Path, workflow: str | None
) -> None:
    path = tmp_path / "retention.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    found: list[RunRecord] = []
    try:
        runs = [
            RunRecord(f"r{n:03d}", f"wf{n % 3}", "h", RunStatus.SUCCEEDED, created_at=n)
            for n in range(30)
        ]
        store.write(WriteBatch(runs=runs))

        def read() -> None:
            found.extend(store.expired_runs(before=20.0, keep_last=4, workflow=workflow))

        plans = query_plans(store, path, read)
    finally:
        store.close()
    kept = _newest(runs, 4)
    assert [r.id for r in found] == [
        r.id
        for r in runs
        if r.created_at < 20 and r.id not in kept and workflow in (None, r.workflow)
    ]
    # At most the ties of one creation time are sorted (by id), never the whole history.
    assert not any("TEMP B-TREE FOR ORDER BY" in line for line in plans), plans
    reads = [line for line in plans if line.startswith(("SEARCH", "SCAN"))]
    outer = "ix_runs_workflow_created" if workflow else "ix_runs_created"
    assert outer in reads[0], plans
    assert "newer USING INDEX ix_runs_workflow_created (workflow=? AND created_at>?)" in reads[1]


def _newest(runs: list[RunRecord], keep: int) -> set[str]:
    found: set[str] = set()
    for workflow in {r.workflow for r in runs}:
        mine = sorted((r for r in runs if r.workflow == workflow), key=lambda r: r.created_at)
        found.update(r.id for r in mine[-keep:])
    return found

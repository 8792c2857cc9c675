"""An engine's claiming pass reads its pages of claimable runs as ranges of one index in
claiming order (``ix_runs_claim``), not by reading every open run and sorting them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from query_plans import query_plans

from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import RunRecord, WriteBatch, claim_key
from kaon.store.sql import SQLStore


def _plans(store: SQLStore, path: Path, **kwargs: Any) -> list[str]:
    """The query plan lines of the statements ``claimable_runs(**kwargs)`` sends."""
    return query_plans(store, path, lambda: store.claimable_runs(**kwargs))


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("skip", [False, True])
def test_a_page_of_claimable_runs_is_a_range_of_the_claim_index(
    tmp_path: Path, after: bool, skip: bool
) -> None:
    path = tmp_path / "claim.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    try:
        batch = WriteBatch()
        for n in range(40):
            status = RunStatus.SUCCEEDED if n % 2 else RunStatus.PENDING
            batch.runs.append(
                RunRecord(f"r{n:03d}", f"wf{n % 4}", "h", status, created_at=n, priority=n % 3)
            )
        store.write(batch)
        first = store.claimable_runs(limit=5)
        kwargs: dict[str, Any] = {"limit": 5}
        if after:
            kwargs["after"] = claim_key(first[-1])
        if skip:
            kwargs["skip_workflows"] = ["wf0"]
        plans = _plans(store, path, **kwargs)
        reads = [line for line in plans if line.startswith(("SCAN runs", "SEARCH runs"))]
        assert reads, plans
        assert all("USING INDEX ix_runs_claim" in line for line in reads), plans
        # The sort left, if any, is the merge of the two ranges' pages (a page each), never
        # of the open runs read from the table.
        assert not any("TEMP B-TREE" in line for line in plans if "runs" in line), plans
    finally:
        store.close()


def test_the_claim_index_holds_every_run_not_finished() -> None:
    from kaon.store.schema import RUN_OPEN

    finished = ", ".join(f"'{s.value}'" for s in sorted(RunStatus) if s.is_terminal)
    expected = f"status NOT IN ({finished})"
    assert expected == RUN_OPEN

"""``/metrics``: the latency histogram keeps the sums of settled history and re-reads only
recent attempts, and stays exact across scrapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaon.api.metrics import SETTLE_S, _StoreCollector
from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store
from kaon.store.base import AttemptRecord, RunRecord, StepRunRecord, WriteBatch
from kaon.store.sql import SQLStore

NOW = 1_000_000.0


def _attempts(store: SQLStore, first: int, ends: list[float]) -> None:
    batch = WriteBatch()
    for n, end in enumerate(ends, start=first):
        batch.insert_attempt(AttemptRecord("r", 1, n, "succeeded", end - 2.0, end, "w"))
    store.write(batch)


def _histogram(collector: _StoreCollector) -> dict[str, Any]:
    family = next(m for m in collector.collect() if m.name == "kaon_step_duration_seconds")
    return {s.name + s.labels.get("le", ""): s.value for s in family.samples}


def test_the_histogram_is_exact_across_scrapes(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'kaon.db'}")
    assert isinstance(store, SQLStore)
    try:
        start = WriteBatch(runs=[RunRecord("r", "wf", "h", RunStatus.RUNNING)])
        start.insert_step_run(StepRunRecord("r", 1, "t", "t", "task", StepStatus.RUNNING))
        store.write(start)  # its first attempt is kept in its row, the retries in `attempts`
        now = [NOW]
        collector = _StoreCollector(store, clock=lambda: now[0])
        _attempts(store, 1, [NOW - 10 * SETTLE_S, NOW - 5 * SETTLE_S, NOW - 1.0])
        first = _histogram(collector)
        assert first["kaon_step_duration_seconds_count"] == 3
        assert first["kaon_step_duration_seconds_sum"] == 6.0
        # Time passes: the recent attempt settles; new ones end, one of them "late" (ended
        # before the last scrape but committed after it, within the settling delay).
        now[0] = NOW + 2 * SETTLE_S
        _attempts(store, 4, [NOW - 2.0, now[0] - 1.0])
        second = _histogram(collector)
        assert second["kaon_step_duration_seconds_count"] == 5
        assert second["kaon_step_duration_seconds_bucket1.0"] == 0
        assert second["kaon_step_duration_seconds_bucket5.0"] == 5
        assert _histogram(collector) == second
    finally:
        store.close()

"""``compare`` of two big sweeps costs what it answers: timings and memory, SQLite and PostgreSQL.

Builds two runs of a foreach of ``--items`` items (rows written straight through the store,
as ``bench/bigrun.py`` does), each item's task reporting ``loss`` at ``--epochs`` epochs and
``acc`` once, the second run's values shifted on one item in ten and one item failed; then
times :func:`kaon.service._compare.compare` of the two (best of ``--repeat``) and reports the
peak Python memory of one comparison (tracemalloc) and the growth of this process's RSS.
Prints one JSON line per backend.

    python bench/compare_bench.py --items 10000 --backends sqlite postgresql
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.model.codec import spec_hash, workflow_to_dict
from kaon.model.status import RunStatus, StepStatus
from kaon.service._compare import compare
from kaon.store import open_store
from kaon.store.base import (
    DefinitionRecord,
    MetricRecord,
    RunRecord,
    StateStore,
    StepRunRecord,
    WriteBatch,
)

FLOW = """\
name: sweep
params:
  items: {type: list, default: []}
steps:
  - id: prepare
    shell: 'true'
  - id: segments
    foreach: '${{ params.items }}'
    needs: [prepare]
    steps:
      - id: train
        shell: 'true'
"""


def build_sweep(store: StateStore, items: int, epochs: int, shift: float) -> str:
    """A finished run of the sweep with ``items`` items and their metrics; its id."""
    spec = load_yaml_text(FLOW, "sweep.yaml")
    digest = spec_hash(spec)
    run_id = uuid.uuid4().hex
    now = time.time()
    batch = WriteBatch()
    batch.definitions.append(DefinitionRecord(digest, "sweep", workflow_to_dict(spec), "", now))
    batch.runs.append(
        RunRecord(run_id, "sweep", digest, RunStatus.SUCCEEDED, created_at=now, executor="inline")
    )
    batch.insert_step_run(
        StepRunRecord(run_id, 1, "prepare", "prepare", "task", StepStatus.SUCCEEDED)
    )
    batch.metrics.append(MetricRecord(run_id, 1, 1, "rows", 1000.0, now))
    batch.insert_step_run(
        StepRunRecord(run_id, 2, "segments", "segments", "foreach", StepStatus.SUCCEEDED)
    )
    for i in range(items):
        frame, task = 3 + 2 * i, 4 + 2 * i
        failed = shift and i == 7
        status = StepStatus.FAILED if failed else StepStatus.SUCCEEDED
        batch.insert_step_run(
            StepRunRecord(
                run_id, frame, f"segments[{i}]", "segments", "item", status,
                parent_id=2, index=i, item={"segment": f"seg-{i}"},
            )
        )  # fmt: skip
        batch.insert_step_run(
            StepRunRecord(run_id, task, f"segments[{i}].train", "train", "task", status, frame)
        )
        bias = shift if i % 10 == 0 else 0.0
        for epoch in range(epochs):
            loss = 1.0 / (1 + epoch + i % 7) + bias
            batch.metrics.append(MetricRecord(run_id, task, 1, "loss", loss, now, step=epoch))
        batch.metrics.append(MetricRecord(run_id, task, 1, "acc", 0.5 + (i % 5) / 10, now))
        if len(batch.metrics) >= 20_000:
            store.write(batch)
            batch = WriteBatch()
    store.write(batch)
    return run_id


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, items: int, epochs: int, repeat: int) -> dict[str, Any]:
    store = open_store(url)
    try:
        first = build_sweep(store, items, epochs, 0.0)
        second = build_sweep(store, items, epochs, 0.25)
        rss_before = _rss_mb()
        best = float("inf")
        view = None
        for _ in range(repeat):
            started = time.perf_counter()
            view = compare(store, [first, second])
            best = min(best, time.perf_counter() - started)
        rss_after = _rss_mb()
        tracemalloc.start()
        compare(store, [first, second])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert view is not None
        return {
            "items": items,
            "metric_rows_per_run": items * (epochs + 1) + 1,
            "compare_ms": round(best * 1000, 1),
            "peak_python_mb": round(peak / 2**20, 2),
            "rss_growth_mb": round(rss_after - rss_before, 1),
            "answer": {
                "metrics": len(view.metrics),
                "metrics_total": view.metrics_total,
                "steps": len(view.steps),
                "steps_total": view.steps_total,
                "steps_differing": view.steps_differing,
                "groups": len(view.groups),
            },
        }
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["sqlite"])
    args = parser.parse_args()
    for backend in args.backends:
        if backend == "sqlite":
            url = f"sqlite:///{tempfile.mkdtemp(prefix='kaon-compare-')}/kaon.db"
            result = measure(url, args.items, args.epochs, args.repeat)
        else:
            from pg_cluster import pg_cluster

            with pg_cluster() as url:
                result = measure(url, args.items, args.epochs, args.repeat)
        print(json.dumps({"backend": backend, **result}), flush=True)


if __name__ == "__main__":
    main()

"""Cache lookups at scale: W2 (a foreach of 10,000 no-op items and a join) with ``cache=True``
on every step, run once, then run again on a fresh engine against the same store, where every
step is a cache hit. Target: the fully cached re-run at least 5x faster than the first run.

Each item gets its index as input, so that every item has its own cache key (the first run
finds nothing to reuse; the second reuses all 10,002 executions).

    python bench/cache_bench.py                      # inline and process executors
    python bench/cache_bench.py --executor process --items 10000

prints one JSON line per executor: first and cached wall seconds, the speed-up, and how many
step runs the cached run reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

from engine_bench import _task, fan_out  # the W2 builders

from kaon.artifacts import open_artifact_store
from kaon.artifacts.base import ArtifactStore
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.specs import Expr, ForeachSpec, GraphSpec, StepDefaults, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store
from kaon.store.base import StateStore


def cached_w2(items: int) -> WorkflowSpec:
    """W2 with caching on by default and each item's index as the work step's input."""
    spec, _ = fan_out(items)
    steps = []
    for step in spec.graph.steps:
        if isinstance(step, ForeachSpec):
            body = GraphSpec(steps=(_task("work", inputs={"x": Expr("item")}),))
            step = dataclasses.replace(step, body=body)
        steps.append(step)
    return dataclasses.replace(
        spec, graph=GraphSpec(steps=tuple(steps)), defaults=StepDefaults(cache=True)
    )


def timed_run(
    store: StateStore, artifacts: ArtifactStore, executor: str, spec: WorkflowSpec
) -> tuple[float, str]:
    """Run ``spec`` once on a fresh engine; returns wall seconds and the run id."""
    engine = Engine(store, create_executor(executor), artifacts)
    engine.start()  # worker start-up is not what we measure
    run = create_run(store, spec, {})
    started = time.perf_counter()
    status = engine.run_until_done(run.id)
    wall = time.perf_counter() - started
    engine.close()
    assert status is RunStatus.SUCCEEDED, store.get_run(run.id).error
    return wall, run.id


def bench(executor: str, items: int) -> dict[str, object]:
    """First run and fully cached re-run of cached W2 with ``executor``, in a fresh home."""
    home = Path(tempfile.mkdtemp(prefix="kaon-cache-bench-"))
    try:
        store = open_store(f"sqlite:///{home / 'kaon.db'}")
        artifacts = open_artifact_store(str(home / "artifacts"))
        spec = cached_w2(items)
        first, _ = timed_run(store, artifacts, executor, spec)
        cached, run_id = timed_run(store, artifacts, executor, spec)
        tasks = [r for r in store.step_runs(run_id, all_levels=True) if r.kind == "task"]
        reused = sum(1 for r in tasks if r.status is StepStatus.CACHED)
        store.close()
        return {
            "workflow": "W2-cached",
            "executor": executor,
            "items": items,
            "task_steps": len(tasks),
            "reused": reused,
            "first_s": round(first, 3),
            "cached_s": round(cached, 3),
            "speedup": round(first / cached, 2),
            "cached_ms_per_step": round(cached / max(len(tasks), 1) * 1000, 4),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executor", choices=["inline", "process", "both"], default="both")
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    executors = ["inline", "process"] if args.executor == "both" else [args.executor]
    for executor in executors:
        print(json.dumps(bench(executor, args.items)), flush=True)


if __name__ == "__main__":
    main()

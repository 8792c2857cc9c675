"""What pools, permits and fair share cost per step: W2 (a foreach of 10,000 no-op items and a
join) with admission off (no pool, permit or priority: the plain path) and on (the items in a
pool of ``--slots`` slots, tagged with a permitted tag, so every attempt claims and releases
holds in the store).

    python bench/tenancy_bench.py --items 10000 --slots 64

prints one JSON line per mode: wall seconds, ms and engine CPU ms per step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from engine_bench import fan_out

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.specs import ForeachSpec, GraphSpec, StepDefaults, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import PermitRecord, PoolRecord


def _limited(spec: WorkflowSpec) -> WorkflowSpec:
    """The same workflow with its steps in pool ``bench`` and its items tagged ``bench``."""
    steps = []
    for step in spec.graph.steps:
        if isinstance(step, ForeachSpec):
            body = tuple(
                TaskSpec(id=s.id, config=s.config, tags=("bench",))  # type: ignore[attr-defined]
                for s in step.body.steps
            )
            step = ForeachSpec(id=step.id, items=step.items, body=GraphSpec(steps=body))
        steps.append(step)
    return WorkflowSpec(
        spec.name, GraphSpec(steps=tuple(steps)), defaults=StepDefaults(pool="bench")
    )


def measure(items: int, slots: int, limited: bool) -> dict[str, object]:
    spec, steps = fan_out(items)
    home = Path(tempfile.mkdtemp(prefix="kaon-bench-"))
    try:
        store = open_store(f"sqlite:///{home / 'kaon.db'}")
        if limited:
            spec = _limited(spec)
            store.set_pool(PoolRecord("bench", slots=slots))
            store.set_permit(PermitRecord("bench", slots))
        engine = Engine(store, create_executor("inline"), open_artifact_store(str(home / "a")))
        engine.start()
        run = create_run(store, spec, {})
        started, cpu_before = time.perf_counter(), time.process_time()
        status = engine.run_until_done(run.id)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
        engine.close()
        assert status is RunStatus.SUCCEEDED, store.get_run(run.id).error
        store.close()
        return {
            "mode": "pool+permit" if limited else "off",
            "steps": steps,
            "wall_s": round(wall, 3),
            "ms_per_step": round(wall / steps * 1000, 4),
            "cpu_ms_per_step": round(cpu / steps * 1000, 4),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=64)
    args = parser.parse_args()
    for limited in (False, True):
        print(json.dumps(measure(args.items, args.slots, limited)))


if __name__ == "__main__":
    main()

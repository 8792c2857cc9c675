"""Engine memory across a large foreach with step timeouts and a large output beside a flag.

The run: ``check`` returns ``{"ok": True, "model": <--mb MB array>}``; ``gate`` runs
``when: steps.check.ok``; then a foreach of ``--items`` items, each a no-op task with the
workflow's ``step_timeout`` set (an hour, so no timer comes due). The engine runs in a child
process with the process executor, so only the engine's own memory is measured: RSS before
the run, its peak, and after the run, with the timers still live and the ``Frame`` objects
still reachable at the end::

    python bench/memory_bench.py                      # 3,000 items, 300 MB model
    python bench/memory_bench.py --items 100000 --mb 300

To compare with another checkout, point ``PYTHONPATH`` at its ``src``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS = str(Path(__file__).with_name("memory_steps.py"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spec(items: int, mb: int) -> Any:
    from kaon.model.specs import (
        Const,
        Expr,
        ForeachSpec,
        GraphSpec,
        StepDefaults,
        TaskSpec,
        WorkflowSpec,
    )

    def task(step_id: str, function: str, **fields: Any) -> TaskSpec:
        return TaskSpec(id=step_id, config={"file": STEPS, "function": function}, **fields)

    body = GraphSpec(steps=(task("work", "noop", inputs={"x": Expr("item")}),))
    steps = (
        task("check", "check", inputs={"mb": Const(mb)}),
        task("gate", "noop", needs=("check",), when="steps.check.ok"),
        task("make", "items", needs=("gate",), inputs={"n": Const(items)}),
        ForeachSpec(id="each", needs=("make",), items=Expr("steps.make"), body=body),
    )
    return WorkflowSpec(
        name="memory", graph=GraphSpec(steps=steps), defaults=StepDefaults(timeout_s=3600.0)
    )


def child(items: int, mb: int, workers: int) -> dict[str, Any]:
    """Run the workflow in this process; return the measurements."""
    import gc

    from kaon.artifacts import open_artifact_store
    from kaon.engine.engine import Engine
    from kaon.engine.nodes import Frame
    from kaon.engine.operations import create_run
    from kaon.executors import create_executor
    from kaon.model.params import bind_params
    from kaon.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/kaon.db")
        artifacts = open_artifact_store(f"{tmp}/artifacts")
        spec = _spec(items, mb)
        run_id = create_run(store, spec, bind_params(spec, {})).id
        engine = Engine(store, create_executor("process", workers=workers), artifacts)
        gc.collect()
        before = _rss_mb()
        started = time.perf_counter()
        engine.add_run(run_id)
        status = engine.run_until_done(run_id)
        wall = time.perf_counter() - started
        engine.close()
        gc.collect()
        timers = engine.ctx.timers
        return {
            "status": str(status),
            "items": items,
            "mb": mb,
            "wall_s": round(wall, 1),
            "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(_peak_mb(), 1),
            "rss_after_mb": round(_rss_mb(), 1),
            "live_timers": len(timers) if hasattr(timers, "__len__") else None,
            "live_frames": sum(1 for o in gc.get_objects() if isinstance(o, Frame)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--mb", type=int, default=300, help="size of the model beside the flag")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.items, args.mb, args.workers)))
        return
    command = [sys.executable, __file__, "--child", "--items", str(args.items)]
    command += ["--mb", str(args.mb), "--workers", str(args.workers)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for key, value in result.items():
        print(f"{key:>14}: {value}")
    print(
        f"{'growth':>14}: {result['rss_peak_mb'] - result['rss_before_mb']:.1f} MB (peak - before)"
    )


if __name__ == "__main__":
    main()

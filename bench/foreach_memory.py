"""Engine memory against the size of a foreach: a step producing N items, a foreach of N
(x + 1), a join counting the results. Each size runs in a fresh process on a fresh SQLite
store; the figure is the engine process's peak RSS (``ru_maxrss``), with the wall and CPU time
per step to show the per-step cost stays flat.

    python bench/foreach_memory.py                       # 20,000 items (fast)
    python bench/foreach_memory.py --items 50000 1000000 --executor process

prints one JSON line per size, then the RSS difference between the largest and smallest.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = str(Path(__file__).with_name("noop_steps.py"))


def measure(items: int, executor: str) -> dict[str, object]:
    """Run the shape once in this process; the figures."""
    from kaon.artifacts import open_artifact_store
    from kaon.engine.engine import Engine
    from kaon.engine.operations import create_run
    from kaon.executors import create_executor
    from kaon.model.specs import Expr, ForeachSpec, GraphSpec, TaskSpec, WorkflowSpec
    from kaon.model.status import RunStatus
    from kaon.store import open_store

    def step(step_id: str, function: str, **inputs: str) -> TaskSpec:
        config = {"file": STEPS, "function": function}
        return TaskSpec(id=step_id, config=config, inputs={k: Expr(v) for k, v in inputs.items()})

    body = GraphSpec(steps=(step("work", "plus_one", x="item"),))
    spec = WorkflowSpec(
        name=f"foreach{items}",
        graph=GraphSpec(
            steps=(
                step("src", "items", n=str(items)),
                ForeachSpec(id="each", items=Expr("steps.src"), body=body),
                step("join", "count", values="steps.each"),
            )
        ),
    )
    home = Path(tempfile.mkdtemp(prefix="kaon-bench-"))
    try:
        store = open_store(f"sqlite:///{home / 'kaon.db'}")
        engine = Engine(store, create_executor(executor), open_artifact_store(str(home / "a")))
        engine.start()
        run = create_run(store, spec, {})
        started, cpu = time.perf_counter(), time.process_time()
        status = engine.run_until_done(run.id)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.close()
        assert status is RunStatus.SUCCEEDED, store.get_run(run.id).error
        store.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    steps = items + 2
    return {
        "items": items,
        "executor": executor,
        "wall_s": round(wall, 2),
        "ms_per_step": round(wall / steps * 1000, 4),
        "cpu_ms_per_step": round(cpu / steps * 1000, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, nargs="+", default=[20_000])
    parser.add_argument("--executor", default="inline", choices=["inline", "process"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.items[0], args.executor)))
        return
    results = []
    for items in args.items:
        command = [sys.executable, __file__, "--one", "--items", str(items)]
        out = subprocess.run(
            [*command, "--executor", args.executor], check=True, capture_output=True, text=True
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if len(results) > 1:
        grown = float(str(results[-1]["peak_rss_mb"])) - float(str(results[0]["peak_rss_mb"]))
        print(json.dumps({"rss_growth_mb": round(grown, 1)}))


if __name__ == "__main__":
    main()

"""Reads of a big run cost what they show: timings and memory on runs of growing size.

For each size in ``--items`` it builds a run (``bench/bigrun.py``: 50 chained tasks and a
foreach of N items, rows written straight through the store) in a fresh SQLite store (or the
``--db`` URL), then times, best of ``--repeat``, each read the UI and the API make:

- ``summary``: the run, task counts by status (GROUP BY in the database), top-level graph;
- ``run``: what ``GET /runs/{id}`` answers: the run, its counts, the top level's step runs;
- ``step``: one foreach item's task in detail (attempts, metrics, cache decision, its inputs
  resolved: the item and an upstream output);
- ``page``: 100 items of the foreach from the middle, and 100 failed items;
- ``log_tail``: the last 200 log lines of a step;
- ``page_cold``, ``summary_cold``: the page and the summary as first read after the run
  changed (counts by status are kept per state of the run, i.e. until its next event; these
  count again).

and the peak Python memory (tracemalloc) over all of them, which must not grow with N. Each
read reports its wall time (``*_ms``) and this process's CPU time (``*_cpu_ms``: with SQLite
the query runs in the process, so this is the cost without other work on the machine).
Prints one JSON line per size. Targets at 100,000 items: summary < 100 ms, step < 50 ms,
page < 100 ms.

    python bench/read_bench.py --items 10000 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bigrun import build_big_run

from kaon.artifacts import open_artifact_store
from kaon.service.run_reads import RunReads, forget_counts
from kaon.store import open_store


def _best(repeat: int, call: Callable[[], Any]) -> tuple[float, float]:
    """Best wall time and best CPU time of this process (SQLite runs in it), in ms."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return round(wall * 1000, 2), round(cpu * 1000, 2)


def measure(url: str, items: int, repeat: int) -> dict[str, Any]:
    """Build a run of ``items`` items in the store at ``url`` and time the reads."""
    store = open_store(url)
    try:
        started = time.perf_counter()
        run_id = build_big_run(store, items)
        built = time.perf_counter() - started
        artifacts = open_artifact_store(tempfile.mkdtemp(prefix="kaon-reads-"))
        reads = RunReads(store, artifacts)
        bare = RunReads(store)
        middle = items // 2
        calls: dict[str, Callable[[], Any]] = {
            "summary_ms": lambda: reads.summary(run_id),
            "run_ms": lambda: reads.page(run_id),  # GET /runs/{id}
            "step_ms": lambda: reads.step(run_id, f"segments[{middle}].train"),
            # The same read without resolving the inputs (what it cost before it did).
            "step_bare_ms": lambda: bare.step(run_id, f"segments[{middle}].train"),
            "page_ms": lambda: reads.children(run_id, "segments", offset=middle, limit=100),
            "page_failed_ms": lambda: reads.children(
                run_id, "segments", statuses=("failed",), limit=100
            ),
            "log_tail_ms": lambda: reads.logs(run_id, "s0", limit=200),
            # The first read after the run changed: its counts are not cached yet.
            "page_cold_ms": lambda: (
                forget_counts(),
                reads.children(run_id, "segments", offset=middle, limit=100),
            ),
            "summary_cold_ms": lambda: (forget_counts(), reads.summary(run_id)),
        }
        result: dict[str, Any] = {"items": items, "build_s": round(built, 1)}
        for name, call in calls.items():
            call()  # warm the connection pool and the graph cache
            result[name], result[name.replace("_ms", "_cpu_ms")] = _best(repeat, call)
        tracemalloc.start()
        for call in calls.values():
            call()
        result["peak_python_kb"] = tracemalloc.get_traced_memory()[1] // 1024
        tracemalloc.stop()
        summary = reads.summary(run_id)
        result["tasks"] = sum(summary.tasks.values())
        result["nodes"] = len(summary.nodes)
        return result
    finally:
        store.close()


def main() -> None:
    """Parse arguments, measure each size, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", help="a store URL (default: a fresh SQLite file per size)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for n in args.items:
            url = args.db or f"sqlite:///{folder}/reads-{n}.db"
            print(json.dumps(measure(url, n, args.repeat)), flush=True)


if __name__ == "__main__":
    main()

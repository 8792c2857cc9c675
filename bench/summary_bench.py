"""``kaon run``'s end-of-run report against the size of the run: its time must not grow.

For each shape it builds a run in a fresh SQLite store (``bench/bigrun.py``: ``steps``
chained tasks, then a foreach of ``items`` items, one item in 1,000 failed) and times
``kaon.cli.show_view.report``, what ``kaon run`` prints once the run has ended (the header,
the counts, the steps that did not succeed and the slowest, the first failed tasks of every
level), rendered by rich into a string. The first report after the store is built is
reported apart (``cold_ms``: counts by status computed, not yet kept); then the median and
the worst of ``--repeat`` reports, wall and CPU (the CPU is the cost without other work on
the machine). Prints one JSON line per shape. Target: at most 50 ms for any run size.

    python bench/summary_bench.py
    python bench/summary_bench.py --shapes 10x0 1000x0 5000x0 50x100000
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time

from bigrun import build_big_run
from rich.console import Console

from kaon.cli.show_view import report
from kaon.service.local import LocalService
from kaon.service.settings import Settings

DEFAULT_SHAPES = ["10x0", "1000x0", "5000x0", "50x100000"]


def measure(steps: int, items: int, repeat: int) -> dict[str, object]:
    """Time the report of one run of ``steps`` chained tasks and ``items`` foreach items."""
    with tempfile.TemporaryDirectory(prefix="kaon-summary-") as home:
        service = LocalService(Settings.from_env(home=home))
        try:
            run_id = build_big_run(service.store, items, steps)
            output = io.StringIO()
            console = Console(file=output, width=120, force_terminal=True)

            def once() -> tuple[float, float]:
                output.seek(0)
                output.truncate()
                wall, cpu = time.perf_counter(), time.process_time()
                report(service, console, run_id)
                return time.perf_counter() - wall, time.process_time() - cpu

            cold, _ = once()
            walls, cpus = zip(*(once() for _ in range(repeat)), strict=True)
            lines = output.getvalue().count("\n")
        finally:
            service.close()
    return {
        "steps": steps,
        "items": items,
        "cold_ms": round(cold * 1000, 1),
        "median_ms": round(statistics.median(walls) * 1000, 1),
        "max_ms": round(max(walls) * 1000, 1),
        "cpu_median_ms": round(statistics.median(cpus) * 1000, 1),
        "lines": lines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=DEFAULT_SHAPES,
        help="STEPSxITEMS: chained tasks, then a foreach of that many items",
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for shape in args.shapes:
        steps, _, items = shape.partition("x")
        print(json.dumps(measure(int(steps), int(items or 0), args.repeat)), flush=True)


if __name__ == "__main__":
    main()

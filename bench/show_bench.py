"""``kaon show`` as a whole process on runs of growing size: wall time and peak memory.

For each size in ``--items`` it builds a run (``bench/bigrun.py``: 50 chained tasks and a
foreach of N items, one item in ``--failed-every`` failed) in a fresh SQLite store, then runs
each command below ``--repeat`` times as its own process (``python -m kaon.cli.main``, output
to a pipe that is read and dropped) and reports the best and the worst wall time and the
largest peak RSS, and the least CPU time (user + system: the cost without other work on the
machine):

- ``floor``: ``kaon --version``, the interpreter and the CLI's start-up alone;
- ``show``: ``kaon show RUN``, the folded view (counts, top level, the first failed tasks);
- ``failed_page``: ``kaon show RUN --status failed --page 3``;
- ``json``: ``kaon show RUN --json``;
- ``all_json`` (with ``--all-json``): ``kaon show RUN --all --json``, every step run streamed.

The first ``show`` after the store is built is reported apart (``show_cold``: counts by status
computed, not yet kept). Memory and time must not grow with N (``all_json`` excepted for time).
Prints one JSON line per size. Target at 100,000 items: ``kaon show`` < 1 s.

    python bench/show_bench.py --items 1000 10000 100000
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


def _once(args: list[str]) -> tuple[float, float, int]:
    """Wall and CPU seconds and peak RSS (KB) of one ``kaon`` process (output to a file)."""
    with tempfile.TemporaryFile() as sink, tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "kaon.cli.main", *args], stdout=sink, stderr=errors
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            errors.seek(0)
            raise RuntimeError(f"kaon {' '.join(args)} failed: {errors.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def _measure(args: list[str], repeat: int) -> dict[str, Any]:
    walls: list[float] = []
    cpus: list[float] = []
    rss = 0
    for _ in range(repeat):
        wall, cpu, peak = _once(args)
        walls.append(wall)
        cpus.append(cpu)
        rss = max(rss, peak)
    return {
        "best_s": round(min(walls), 3),
        "worst_s": round(max(walls), 3),
        "cpu_s": round(min(cpus), 3),
        "rss_mb": rss // 1024,
    }


def measure(folder: str, items: int, repeat: int, failed_every: int, all_json: bool) -> Any:
    """Build a run of ``items`` items and time the ``kaon show`` commands on it."""
    url = f"sqlite:///{folder}/show-{items}.db"
    # Built by another process: a child forked from a big parent would count its pages.
    built = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("bigrun.py")),
            *("--db", url, "--items", str(items), "--failed-every", str(failed_every)),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    run_id = built.stdout.strip()
    base = ["show", run_id, "--db", url]
    result: dict[str, Any] = {"items": items, "failed_every": failed_every}
    result["floor"] = _measure(["--version"], repeat)  # the interpreter and the CLI alone
    result["show_cold"] = _measure(base, 1)
    result["show"] = _measure(base, repeat)
    result["failed_page"] = _measure([*base, "--status", "failed", "--page", "3"], repeat)
    result["json"] = _measure([*base, "--json"], repeat)
    if all_json:
        result["all_json"] = _measure([*base, "--all", "--json"], 1)
    result["load_average"] = round(os.getloadavg()[0], 1)
    return result


def main() -> None:
    """Parse arguments, measure each size, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--failed-every", type=int, default=10, help="one item in N failed")
    parser.add_argument("--all-json", action="store_true", help="also time --all --json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for n in args.items:
            found = measure(folder, n, args.repeat, args.failed_every, args.all_json)
            print(json.dumps(found), flush=True)


if __name__ == "__main__":
    main()

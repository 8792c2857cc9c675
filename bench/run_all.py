"""Run every benchmark, each in its own process (so peak RSS is per benchmark), and print a
Markdown table of the results: ``make bench``.

    python bench/run_all.py            # everything
    python bench/run_all.py --quick    # W1 and W2 only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ENGINE_RUNS = [(w, e) for w in ("W1", "W2", "W3") for e in ("inline", "process")]


def _run(args: list[str]) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, cwd=HERE.parent
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip W3 and the extras")
    args = parser.parse_args()
    cpus = os.cpu_count()
    print(f"machine: {platform.machine()}, {cpus} cores, Python {platform.python_version()}")
    print()
    print("| benchmark | executor | steps | wall (s) | per step (ms) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for workflow, executor in ENGINE_RUNS:
        if args.quick and workflow == "W3":
            continue
        for row in _run([str(HERE / "engine_bench.py"), workflow, "--executor", executor]):
            print(
                f"| {row['workflow']} | {row['executor']} | {row['steps']:,} | {row['wall_s']} "
                f"| {row['ms_per_step']} | {row['peak_rss_mb']} |"
            )
    if args.quick:
        return
    for extra in (
        "cache_bench.py",
        "store_write.py",
        "artifacts_throughput.py",
        "trigger_bench.py",
        "api_bench.py",
    ):
        script = HERE / extra
        if script.exists():
            print(f"\n{extra}:")
            result = subprocess.run(
                [sys.executable, str(script)], capture_output=True, text=True, cwd=HERE.parent
            )
            print(result.stdout.strip() or result.stderr.strip()[-2000:])


if __name__ == "__main__":
    main()

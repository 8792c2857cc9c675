"""The peers' shapes as whole ``kaon run`` processes: start-up plus orchestration, as a user
sees it. Each run gets a fresh SQLite store (a new ``--home``); runs are interleaved so that a
drift of the machine's speed hits every shape alike; figures are medians.

    python bench/peers.py                 # 5 runs of each shape, inline and process
    python bench/peers.py -n 3 --executor inline
    python bench/peers.py --src new=src --src old=../main/src    # two checkouts, interleaved

Shapes (``bench/shapes/``): ``one`` (one step), ``W1`` (a chain of 100 steps, each returning
the previous value + 1), ``W2`` (a step producing 500 items, a foreach of 500 doing x + 1, and
a join). The marginal cost per step is ``(median(shape) - median(one)) / (steps - 1)``: what a
step adds once the process is up. ``kaon --help`` and ``kaon validate`` of ``one`` are timed
too (start-up alone). Prints a Markdown table.

Kaon runs as a user's would: with bytecode caches (``PYTHONDONTWRITEBYTECODE`` is removed from
its environment, and a warm-up round writes the caches before anything is timed).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
SHAPES = {"one": ("one.py", 1), "W1": ("w1.py", 100), "W2": ("w2.py", 502)}
STARTUP = ("help", "validate")  # commands timed once per source, not per executor


def _kaon() -> list[str]:
    found = shutil.which("kaon", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-c", "from kaon.cli.main import main; main()"]


def _command(shape: str, executor: str, home: Path) -> list[str]:
    if shape == "help":
        return [*_kaon(), "--help"]
    if shape == "validate":
        return [*_kaon(), "validate", str(HERE / "shapes" / SHAPES["one"][0])]
    command = [*_kaon(), "run", str(HERE / "shapes" / SHAPES[shape][0])]
    return [*command, "--home", str(home), "--executor", executor]


def run_once(shape: str, executor: str, src: str | None = None) -> tuple[float, float]:
    """One ``kaon run`` on a fresh store (or ``kaon --help``, ``kaon validate``): (wall
    seconds, CPU seconds of the process tree). ``src``: a source folder to run Kaon from
    (PYTHONPATH), else the installed one."""
    home = Path(tempfile.mkdtemp(prefix="kaon-peers-"))
    try:
        command = _command(shape, executor, home)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        if src:
            env["PYTHONPATH"] = os.path.abspath(src)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=home, env=env)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=5)
    parser.add_argument("--executor", choices=["inline", "process", "both"], default="both")
    parser.add_argument(
        "--src", action="append", default=[], metavar="LABEL=PATH", help="Kaon to run (repeat)"
    )
    args = parser.parse_args()
    executors = ["inline", "process"] if args.executor == "both" else [args.executor]
    sources = dict(item.split("=", 1) for item in args.src) or {"kaon": ""}
    walls: dict[tuple[str, str, str], list[float]] = {}
    cpus: dict[tuple[str, str, str], list[float]] = {}
    cases = [(lb, "", sh) for lb in sources for sh in STARTUP]
    cases += [(lb, ex, sh) for lb in sources for ex in executors for sh in SHAPES]
    for label, executor, shape in cases:
        run_once(shape, executor, sources[label] or None)  # warm-up: caches, bytecode
    for _ in range(args.runs):
        for label, executor, shape in cases:
            wall, cpu = run_once(shape, executor, sources[label] or None)
            walls.setdefault((label, executor, shape), []).append(wall)
            cpus.setdefault((label, executor, shape), []).append(cpu)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, medians of {args.runs} whole `kaon run` processes"
    )
    print()
    print("| kaon | shape | executor | steps | wall (s) | CPU (s) | marginal per step (ms) |")
    print("|---|---|---|---|---|---|---|")
    for label, executor, shape in cases:
        steps = SHAPES[shape][1] if shape in SHAPES else 0
        base = statistics.median(walls[(label, executor, "one")]) if steps else 0.0
        wall = statistics.median(walls[(label, executor, shape)])
        cpu = statistics.median(cpus[(label, executor, shape)])
        marginal = f"{(wall - base) / (steps - 1) * 1000:.2f}" if steps > 1 else ""
        row = f"| {label} | {shape} | {executor} | {steps or ''} | {wall:.3f} | {cpu:.3f} |"
        print(f"{row} {marginal} |")


if __name__ == "__main__":
    main()

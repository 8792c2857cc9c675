"""What a wake-up across cores costs on this machine: a pipe ping-pong between two processes.

The parent writes a few bytes to a child and blocks reading its answer, ``--rounds`` times:
with both processes left to the kernel (on an idle machine it puts them on different
cores), both pinned to one core, and each pinned to a core of its own. It prints the wall
time and the parent's CPU time (user and system) per round trip, and its voluntary context
switches. The process executor's chain is such a ping-pong once per step (see
``kaon.executors._affinity``).

    python bench/wakeup_bench.py [--rounds 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time


def ping_pong(rounds: int, parent: set[int] | None, child: set[int] | None) -> dict[str, float]:
    """Round trips with the parent on ``parent`` and the child on ``child`` (None: wherever
    the kernel puts it)."""
    to_child, from_parent = os.pipe()
    from_child, to_parent = os.pipe()
    before = os.sched_getaffinity(0)
    pid = os.fork()
    if pid == 0:  # the child: echo until the pipe closes
        if child is not None:
            os.sched_setaffinity(0, child)
        os.close(from_parent)
        os.close(from_child)
        while data := os.read(to_child, 64):
            os.write(to_parent, data)
        os._exit(0)
    os.close(to_child)
    os.close(to_parent)
    if parent is not None:
        os.sched_setaffinity(0, parent)
    try:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        for _ in range(rounds):
            os.write(from_parent, b"x" * 40)
            os.read(from_child, 64)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.close(from_parent)  # the child reads the end of its input and exits
        os.waitpid(pid, 0)
        os.close(from_child)
        os.sched_setaffinity(0, before)
    return {
        "wall_us": round(wall / rounds * 1e6, 1),
        "user_us": round((after.ru_utime - usage.ru_utime) / rounds * 1e6, 1),
        "sys_us": round((after.ru_stime - usage.ru_stime) / rounds * 1e6, 1),
        "voluntary_switches": round((after.ru_nvcsw - usage.ru_nvcsw) / rounds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    placements: list[tuple[str, set[int] | None, set[int] | None]] = [
        ("kernel's choice", None, None),
        ("one core", {cores[0]}, {cores[0]}),
    ]
    if len(cores) > 1:
        placements.append(("two cores", {cores[0]}, {cores[1]}))
    for label, parent, child in placements:
        figures = ping_pong(args.rounds, parent, child)
        print(json.dumps({"bench": "wakeup", "placement": label, "cores": len(cores), **figures}))


if __name__ == "__main__":
    main()

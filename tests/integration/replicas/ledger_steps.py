"""Steps for the replica chaos test: every execution appends to a side-effect ledger."""

from __future__ import annotations

import os
import time


def _append(line: str) -> None:
    fd = os.open(os.environ["KAON_CHAOS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def work(run: str, step: str, seconds: float = 0.05) -> str:
    """Record start and end of this execution (run, step, pid, time) around a short sleep."""
    _append(f"start {run} {step} {os.getpid()} {time.time():.6f}")
    time.sleep(seconds)
    _append(f"end {run} {step} {os.getpid()} {time.time():.6f}")
    return step


def items(n: int) -> list[int]:
    return list(range(n))

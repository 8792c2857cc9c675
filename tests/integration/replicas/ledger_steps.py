"""Steps for the replica chaos test: every execution writes its side effects to a ledger.

An execution appends ``start``, then a ``tick`` every 10 ms while it works, then ``end``
(O_APPEND, one line per write): the span from its first line to its last is when it was
acting, whether it ended or was killed.
"""

from __future__ import annotations

import os
import time


def _append(kind: str, run: str, step: str) -> None:
    line = f"{kind} {run} {step} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(os.environ["KAON_CHAOS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def work(run: str, step: str, seconds: float = 0.05) -> str:
    """Record start, a tick every 10 ms for ``seconds``, and end of this execution."""
    _append("start", run, step)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
        _append("tick", run, step)
    _append("end", run, step)
    return step


def items(n: int) -> list[int]:
    return list(range(n))

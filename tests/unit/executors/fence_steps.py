"""A step for the lease fence tests: append the time to a ledger every 10 ms."""

from __future__ import annotations

import os
import time


def tick(path: str, seconds: float) -> int:
    """Append ``time.time()`` to ``path`` every 10 ms for ``seconds``; return the count."""
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{time.time():.6f}\n".encode())
        finally:
            os.close(fd)
        count += 1
        time.sleep(0.01)
    return count

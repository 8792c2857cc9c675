"""Step functions for the trigger tests (loaded by file path)."""

from __future__ import annotations

import time
from pathlib import Path


def hold(seconds: float = 0.0, gate: str = "") -> str:
    """Sleep ``seconds``, or until the file ``gate`` exists when one is named (at most 20 s)."""
    deadline = time.time() + (20.0 if gate else seconds)
    while time.time() < deadline:
        if gate and Path(gate).exists():
            break
        time.sleep(0.01)
    return "done"


def fail_if(fail: bool = False) -> str:
    """Fail when asked to."""
    if fail:
        raise ValueError("asked to fail")
    return "ok"

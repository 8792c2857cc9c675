"""Steps for ``bench/memory_bench.py`` (loaded by file path, also in worker processes)."""

from __future__ import annotations

from typing import Any


def check(mb: int) -> dict[str, Any]:
    """A verdict next to a large model: a flag kept inline and ``mb`` MB of array."""
    import numpy as np

    return {"ok": True, "model": np.ones(mb * 131_072, dtype=np.float64)}


def items(n: int) -> list[int]:
    """The foreach items: 0..n-1."""
    return list(range(n))


def noop(x: Any = None) -> None:
    """Do nothing: the benchmark measures the engine, not the step."""
    return None

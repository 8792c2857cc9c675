"""No-op steps for the engine benchmarks (loaded by file path, also in worker processes)."""

from __future__ import annotations

from typing import Any


def noop(x: Any = None) -> None:
    """Do nothing: the benchmark measures Kaon, not the step."""
    return None


def items(n: int) -> list[int]:
    """The foreach items: 0..n-1."""
    return list(range(n))


def count(values: list[Any]) -> int:
    """The join: how many results arrived."""
    return len(values)


def plus_one(x: int) -> int:
    """An item's work: the item + 1 (a value per item, for the join to collect)."""
    return x + 1

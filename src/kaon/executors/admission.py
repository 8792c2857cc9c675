"""Admitting attempts by the resources their steps ask for, on one host.

A :class:`HostBudget` holds what the host offers (CPUs, memory, GPUs, custom resources) and
what running attempts hold. An attempt whose step asks for nothing takes nothing (only its
worker slot); one that asks is admitted when what it asks for is free, and gives it back when
it ends. One that asks for more than the host has at all can never run: :meth:`refusal` says
why, and the executor fails it at once instead of holding it forever. Not thread-safe: the
executor calls it under its own lock.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

_EPSILON = 1e-9


def _total_memory() -> int:
    """The host's physical memory in bytes: from ``sysconf`` where it tells (Linux, macOS;
    what psutil reads too, without importing it), else psutil."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        import psutil

        return int(psutil.virtual_memory().total)


class HostBudget:
    """What one host offers and what is taken. ``cpus`` defaults to the CPU count, ``memory``
    to the physical memory; ``gpus`` and ``custom`` to none."""

    def __init__(
        self,
        cpus: float | None = None,
        memory: int | None = None,
        gpus: float = 0.0,
        custom: Mapping[str, float] | None = None,
    ) -> None:
        self.total: dict[str, float] = {
            "cpus": float(cpus if cpus is not None else (os.cpu_count() or 1)),
            "memory": float(memory if memory is not None else _total_memory()),
            "gpus": float(gpus),
        }
        for name, amount in (custom or {}).items():
            self.total[f"custom.{name}"] = float(amount)
        self.used: dict[str, float] = dict.fromkeys(self.total, 0.0)

    @staticmethod
    def _needs(resources: Mapping[str, Any]) -> dict[str, float]:
        needs = {
            name: float(resources[name])
            for name in ("cpus", "memory", "gpus")
            if resources.get(name)
        }
        for name, amount in dict(resources.get("custom") or {}).items():
            needs[f"custom.{name}"] = float(amount)
        return needs

    def refusal(self, resources: Mapping[str, Any]) -> str | None:
        """Why an attempt asking for ``resources`` can never run here, or None."""
        for name, amount in self._needs(resources).items():
            total = self.total.get(name, 0.0)
            if amount > total + _EPSILON:
                shown = name.removeprefix("custom.")
                asked, offered = _amount(name, amount), _amount(name, total)
                return (
                    f"the step asks for {asked} {shown}, and this host offers {offered}; "
                    "lower the request or run it on a larger executor (ray)"
                )
        return None

    def fits(self, resources: Mapping[str, Any]) -> bool:
        """Whether what ``resources`` asks for is free now."""
        return all(
            self.used[name] + amount <= self.total[name] + _EPSILON
            for name, amount in self._needs(resources).items()
            if name in self.total
        )

    def take(self, resources: Mapping[str, Any]) -> None:
        """Hold ``resources`` for a starting attempt."""
        for name, amount in self._needs(resources).items():
            self.used[name] = self.used.get(name, 0.0) + amount

    def clear(self) -> None:
        """Nothing taken (before counting again what is held)."""
        self.used = dict.fromkeys(self.total, 0.0)

    def give_back(self, resources: Mapping[str, Any]) -> None:
        """Release what an ended attempt held."""
        for name, amount in self._needs(resources).items():
            self.used[name] = max(0.0, self.used.get(name, 0.0) - amount)


def _amount(name: str, value: float) -> str:
    """``value`` of resource ``name`` as a person reads it: memory in GiB or MiB, not
    ``1.07374e+11``."""
    if name != "memory":
        return f"{value:g}"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:g} bytes"

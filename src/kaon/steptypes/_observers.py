"""Who is told when a step starts something that would outlive its process if that process
were killed: a shell command's process group, a container.

A process executor's worker tells its parent of each process group (so that the parent kills
the commands of a worker that died); the inline executor tells its reaper of both
(:mod:`kaon.executors._reaper`). A light module: setting an observer imports no step type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

GroupObserver = Callable[[int, bool], None]  # (process group, running)
ContainerObserver = Callable[[str, "list[str] | None"], None]  # (name, removal argv or None)


@dataclass
class Observers:
    """The observers of this process (each None when nobody listens)."""

    group: GroupObserver | None = None
    container: ContainerObserver | None = None


observers = Observers()

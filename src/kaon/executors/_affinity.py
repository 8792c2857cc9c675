"""Placing a chain's two ends on one core: the process executor's reader and its worker.

A chain of steps on the process executor is a ping-pong: the engine's reader thread sends
the next attempt to a worker and waits, the worker runs it and answers, the reader runs the
engine's turn and sends the next one. Left to the kernel, the two wake each other on
different cores, each step: the waker's core interrupts the sleeper's, which was idle. On a
virtual machine an idle core is a halted virtual CPU, and waking one costs the hypervisor's
round trip and a cold core (measured on this project's 2-core VM: a bare pipe round trip
between two processes 70-78 µs on two cores, 7 µs on one; a W1 chain step 0.57-0.61 ms of
the engine's CPU and 0.82-0.86 ms of wall time on two cores, 0.38-0.41 and 0.48-0.54 ms with
both ends kept on one). A chain runs one step at a time, so one core loses it nothing.

So while exactly one attempt is in flight, :class:`~kaon.executors.process.ProcessExecutor`
pins its reader thread to the core it runs on and tells the worker that core; the worker
pins its threads there while they wait, and unpins the thread that runs the attempt for
as long as the step's own code runs: what a step starts (threads, processes, a BLAS or
OpenMP pool sized by ``os.sched_getaffinity``) sees every core the worker may use. A second
attempt in flight unpins both ends.

Linux only (``sched_setaffinity``); elsewhere, and on a single core, nothing is pinned. A
failure to pin (a core taken away by a cpuset meanwhile) is ignored: placement is an
optimisation, never a condition.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Set

# Every core this process may use, as it started (what unpinning restores); None where
# threads cannot be pinned or there is a single core (nothing to choose).
ALL: frozenset[int] | None = None
if hasattr(os, "sched_setaffinity") and os.path.exists("/proc/thread-self/stat"):
    with contextlib.suppress(OSError):
        ALL = frozenset(os.sched_getaffinity(0))
    if ALL is not None and len(ALL) < 2:
        ALL = None

_PROCESSOR_FIELD = 38  # "processor": the CPU the thread last ran on (proc(5), 0-based 38)


def current_cpu() -> int | None:
    """The core the calling thread runs on (``/proc/thread-self/stat``), or None."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count after it.
    fields = text[text.rindex(b")") + 2 :].split()
    try:
        return int(fields[_PROCESSOR_FIELD - 2])
    except (IndexError, ValueError):
        return None


def pin(thread_id: int, cpus: Set[int]) -> bool:
    """Let the thread ``thread_id`` (0: the calling one) run only on ``cpus``; False if it
    cannot (no such thread, a core not allowed)."""
    try:
        os.sched_setaffinity(thread_id, cpus)
    except OSError:
        return False
    return True


class Placement:
    """One worker thread's pinning: to the core it was told while it waits, to every core
    while a step's code runs (see the module docstring). Only its own thread calls it."""

    def __init__(self) -> None:
        self._pinned: int | None = None

    def wait_on(self, cpu: int | None) -> None:
        """Before waiting for work: pin to ``cpu``, or unpin for None."""
        if cpu == self._pinned or ALL is None:
            return
        if pin(0, ALL if cpu is None else {cpu}):
            self._pinned = cpu

    def release(self) -> None:
        """Before a step's code runs: every core again."""
        if self._pinned is not None and ALL is not None and pin(0, ALL):
            self._pinned = None

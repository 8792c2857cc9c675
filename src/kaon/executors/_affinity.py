"""Placing a chain's two ends on one core: the process executor's reader and its worker.

A chain of steps on the process executor is a ping-pong: the engine's reader thread sends
the next attempt to a worker and waits, the worker runs it and answers, the reader runs the
engine's turn and sends the next one. Left to the kernel, the two wake each other on
different cores, each step: the waker's core interrupts the sleeper's, which was idle. On a
virtual machine an idle core is a halted virtual CPU, and waking one costs the hypervisor's
round trip and a cold core (measured on this project's 2-core VM: a bare pipe round trip
between two processes 70-87 µs across cores, 6-7 µs on one, ``bench/wakeup_bench.py``; a
W1 chain step, medians of 6, 0.474 ms of the engine's CPU and 0.637 ms of wall time left to
the kernel, 0.352 and 0.460 ms placed as below). A chain runs one step at a time, so one
core loses it nothing.

So when the reader itself sends the one attempt in flight (it ran the turn of a chain's step,
see :meth:`EventInbox.settle <kaon.executors.base.EventInbox.settle>`),
:class:`~kaon.executors.process.ProcessExecutor` tells the worker the reader's core, and
both ends pin their threads there *only while they wait*: the reader unpins itself to run
what it woke for (the engine's turn, which may start threads or processes), and the
worker's thread unpins itself before the step's code runs, so that what a step starts
(threads, processes, a BLAS or OpenMP pool sized by ``os.sched_getaffinity``) sees every
core the worker may use. Any other send (a second attempt in flight, or a turn on the
engine's thread) unpins both ends.

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
    """One thread's pinning (the reader's, or a worker's): to the core it was told while it
    waits, to every core while it works (see the module docstring). Only that thread calls
    it."""

    def __init__(self) -> None:
        self._pinned: int | None = None

    def wait_on(self, cpu: int | None) -> None:
        """Before waiting for work: pin to ``cpu``, or unpin for None."""
        if cpu == self._pinned or ALL is None:
            return
        if pin(0, ALL if cpu is None else {cpu}):
            self._pinned = cpu

    def release(self) -> None:
        """Before working (a step's code, the engine's turn): every core again."""
        if self._pinned is not None and ALL is not None and pin(0, ALL):
            self._pinned = None

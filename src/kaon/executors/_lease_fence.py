"""Self-fencing workers: an attempt stops when its engine's lease runs out, heard or not.

A fenced write (:class:`~kaon.store.base.Fence`) stops a paused or cut-off engine from
*recording* anything once another engine has taken its runs over; it cannot stop the engine's
workers from *doing* things. So the engine publishes a deadline (on the monotonic clock, which
every process of the host shares): the start of its last successful lease renewal plus a
fraction of the lease (:data:`kaon.engine.engine.FENCE_FRACTION`). A takeover needs the whole
lease to expire by the database's clock, measured from *after* that renewal, so every worker
has stopped its attempt before another engine can start it again, whatever the engine is doing
meanwhile (frozen, swapping, partitioned from the store).

The deadline lives in an 8-byte anonymous shared memory file (``memfd``) that the parent
writes and each worker maps (passed like the worker's socket, so it crosses a sandbox). In
the worker:

* a watchdog thread re-reads it every :data:`WATCH_S` seconds and stops the attempt once it
  has passed (the engine stopped renewing: frozen, or the store is unreachable);
* the kernel's interval timer (``ITIMER_REAL``) is armed for the same instant, so a worker
  frozen together with its engine (a paused VM, a SIGSTOP of the whole tree) has SIGALRM
  pending when it thaws, and its handler stops the attempt before the step's next bytecode;
* an attempt that arrives after the deadline is not started.

0.0 in the file means "no deadline" (the engine holds no lease).
"""

from __future__ import annotations

import mmap
import os
import signal
import struct
import threading
import time
from collections.abc import Callable

WATCH_S = 0.05
LEASE_EXPIRED_EXIT = 75  # EX_TEMPFAIL: the worker stopped its attempt when the lease ran out
_FORMAT = "d"


class LeaseDeadline:
    """The shared deadline: written by the executor in the engine, read by its workers."""

    def __init__(self, fd: int | None = None) -> None:
        self.owner = fd is None
        if fd is None:
            fd = os.memfd_create("kaon-lease-deadline", 0)  # inherited by workers
            os.ftruncate(fd, struct.calcsize(_FORMAT))
        self.fd = fd
        self._map = mmap.mmap(fd, struct.calcsize(_FORMAT))

    def set(self, deadline: float | None) -> None:
        """Publish ``deadline`` (``time.monotonic()`` seconds), or None for none."""
        struct.pack_into(_FORMAT, self._map, 0, deadline or 0.0)

    def get(self) -> float | None:
        """The published deadline, or None."""
        value: float = struct.unpack_from(_FORMAT, self._map, 0)[0]
        return value or None

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        deadline = self.get()
        return deadline is not None and time.monotonic() >= deadline

    def close(self) -> None:
        """Unmap; the owner also closes the file."""
        self._map.close()
        if self.owner:
            os.close(self.fd)


class Watchdog:
    """The worker's side: stops the running attempt (``stop()``) once the deadline passes.

    Call :meth:`install` from the main thread: it sets the SIGALRM handler and starts the
    watchdog thread. ``busy`` says whether an attempt runs (an idle worker has nothing to
    stop; an attempt received late is refused by :meth:`admits`).
    """

    def __init__(self, deadline: LeaseDeadline, stop: Callable[[], None]) -> None:
        self.deadline = deadline
        self.busy = False
        self._stop = stop

    def install(self) -> None:
        """SIGALRM handler (main thread) and the watchdog thread."""
        signal.signal(signal.SIGALRM, self._on_alarm)
        threading.Thread(target=self._watch, name="kaon-lease-watchdog", daemon=True).start()

    def admits(self) -> bool:
        """Whether a new attempt may start now."""
        return not self.deadline.expired()

    def _check(self) -> None:
        if self.busy and self.deadline.expired():
            self._stop()

    def _on_alarm(self, signum: int, frame: object) -> None:
        self._check()  # the deadline may have moved since the timer was armed: re-read it

    def _watch(self) -> None:
        while True:
            self._check()
            deadline = self.deadline.get()
            if deadline is None:
                signal.setitimer(signal.ITIMER_REAL, 0)
            else:
                # Armed a little late, so the alarm finds the deadline passed.
                signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0) + 0.001)
            time.sleep(WATCH_S)

"""Writers of one SQLite file take turns on an OS lock instead of SQLite's busy handler.

SQLite lets one writer at a time hold a file; the others wait in its busy handler, which
sleeps 1, 2, 5, 10 ... then 100 ms between tries and lets whoever asks at the right instant
go first. With several processes writing all the time (``kaon server``'s API, engine and
trigger processes; a ``kaon run`` next to them) a writer can lose the race again and again
and wait hundreds of milliseconds for a lock that was free most of that time.

:class:`WriterQueue` puts every write transaction of a file behind an exclusive ``flock`` on
``<file>.writer``: a waiting writer blocks in the kernel and is woken as soon as the lock is
released. Threads of one process queue on a mutex first (an ``flock`` is held per open file,
not per thread), and a forked child opens the file again (a lock belongs to the open file,
which a fork shares). The SQLite lock stays the guarantee; this only orders the waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

_queues: dict[str, WriterQueue] = {}
_made = threading.Lock()


class WriterQueue:
    """The write turn of one database file, shared by the process's stores of that file."""

    def __init__(self, path: Path) -> None:
        self._mutex = threading.RLock()  # re-entered by a thread: the turn is held once
        self._depth = 0
        self._path = Path(f"{path}.writer")
        self._fd: int | None = None
        self._held: int | None = None  # the descriptor locked by the outermost turn

    @classmethod
    def of(cls, database: str) -> WriterQueue:
        """The queue of ``database`` (a file path), one per process."""
        key = os.path.realpath(database)
        with _made:
            found = _queues.get(key)
            if found is None:
                found = _queues[key] = cls(Path(key))
            return found

    def turn(self) -> WriterQueue:
        """Hold the file's write turn (blocks until it is this writer's): ``with
        queue.turn(): ...``. (The queue is its own context manager: a generator-based one
        costs more than a SQLite write's lock itself.)"""
        return self

    def __enter__(self) -> None:
        self._mutex.acquire()
        try:
            if self._depth == 0:
                fd = self._open()
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._held = fd
            self._depth += 1
        except BaseException:
            self._mutex.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._held is not None:
                fd, self._held = self._held, None
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def _open(self) -> int | None:
        """The lock file's descriptor (None when it cannot be made: SQLite alone orders)."""
        if self._fd is None:
            with contextlib.suppress(OSError):
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd


def _forget_after_fork() -> None:
    """In a forked child: the parent's open lock files are not this process's turn."""
    for queue in _queues.values():
        if queue._fd is not None:
            with contextlib.suppress(OSError):
                os.close(queue._fd)
    _queues.clear()


os.register_at_fork(after_in_child=_forget_after_fork)

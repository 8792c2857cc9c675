"""Engine identity, and proof that an engine is dead that does not rely on PIDs.

An engine's identity (its lease owner) is ``host:pid:nonce``. The PID is only informative:
replicas in separate PID namespaces (containers) cannot see each other's processes, so "PID
not visible" proves nothing. Each engine instead holds an exclusive ``flock`` on a lock file
named after its identity for as long as it lives; the kernel drops the lock when the process
dies, however it dies. Another process that can take that lock has proof the engine is dead
and may take its runs over at once; one that cannot see the file (another host, another
``/tmp``) proves nothing and waits for the lease to expire by the database's clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import tempfile
import time
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaon.store.base import StateStore

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# A dead engine's lock file is the proof of its death only while one of its leases may still
# be live (their length: --lease-ttl, 30 s by default): older than this, one nobody holds is
# removed by the next engine that starts (killed engines whose runs were never resumed left
# hundreds behind).
STALE_LOCK_S = 3600.0


def new_owner() -> str:
    """A fresh engine identity: ``host:pid:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _lock_dir() -> Path:
    found = os.environ.get("KAON_ENGINE_LOCK_DIR")
    if found:
        return Path(found)
    return Path(tempfile.gettempdir()) / f"kaon-engines-{os.getuid()}"


def _lock_path(owner: str) -> Path:
    return _lock_dir() / f"{_UNSAFE.sub('_', owner)}.lock"


class EngineLock:
    """The lock an engine holds on its identity while it lives (see the module docs)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.path = _lock_path(owner)
        self._fd: int | None = None
        with contextlib.suppress(OSError):  # no lock directory: the engine is never "proven dead"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_locks(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
            self._finalizer = weakref.finalize(self, _release, fd, str(self.path))

    def release(self, *, remove: bool = True) -> None:
        """Drop the lock (the engine is closing) and remove the lock file.

        ``remove=False`` leaves the file, unlocked, behind: the engine could not release
        every lease it holds (the store failed as it closed), and the file is the proof,
        for whoever finds one of those leases on this host, that its engine is dead (see
        :func:`owner_is_dead`); without it ``kaon resume`` would wait for the lease to
        expire."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if remove:
                self._finalizer()
            else:
                self._finalizer.detach()
                with contextlib.suppress(OSError):
                    os.close(fd)


def remove_stale_locks(folder: Path, older_than_s: float = STALE_LOCK_S) -> int:
    """Remove the lock files in ``folder`` of engines that died more than ``older_than_s``
    ago (the file is that old and no process holds its lock); how many went."""
    removed = 0
    limit = time.time() - older_than_s
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.endswith(".lock"):
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime > limit:
                    continue
                fd = os.open(entry.path, os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while held
                    os.unlink(entry.path)
                    removed += 1
                finally:
                    os.close(fd)
    return removed


def _release(fd: int, path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.close(fd)


def owner_is_dead(owner: str | None, *, forget: bool = True) -> bool:
    """True only with proof that the engine ``owner`` is gone: no owner at all, or its lock
    file on this host can be locked (its process died). False when nothing can be proven.
    With ``forget`` (an engine about to void the dead one's leases) a dead engine's lock file
    is removed; a mere reader (``kaon watch``) leaves it for that engine to find."""
    if not owner:
        return True
    if owner.split(":", 1)[0] != socket.gethostname():
        return False
    path = _lock_path(owner)
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # locked: the engine lives (maybe stopped, e.g. SIGSTOP: still alive)
    else:
        if forget:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return True
    finally:
        os.close(fd)


def release_dead_leases(store: StateStore, me: str) -> list[str]:
    """Void the leases of every engine proven dead on this host (see :func:`owner_is_dead`),
    so that a server's claim takes their runs at once instead of after their leases expire;
    returns the dead owners. ``me`` (the caller's own identity) is never checked."""
    dead = [owner for owner in store.lease_owners() if owner != me and owner_is_dead(owner)]
    for owner in dead:
        store.release_leases_of(owner)
    return dead

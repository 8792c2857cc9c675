"""A process's scratch space: one folder under the temporary folder, gone when it ends.

A step type that needs a folder beyond one attempt (the notebook steps' work folders, whose
files the runtime stores after the step returns; the Spark session's warehouse, logs and
local directory; a shell step's output files) takes it from :func:`scratch_folder`. Every
such folder of a process is inside the process's **root**, ``<TMPDIR>/kaon-<pid>-<random>``,
made with the first one. The root is removed at interpreter exit, and by
:func:`remove_scratch_folders`, which a worker calls before it leaves with ``os._exit``
(which skips ``atexit`` handlers).

A process killed outright (``kill -9``, the out-of-memory killer) removes nothing, so the
root holds a lock for its owner's life: an exclusive ``flock`` on the folder itself, taken
as it is made and released by the kernel when the process (and every process it forked that
still holds the descriptor) is gone. :func:`sweep_abandoned` removes the roots whose lock is
free: the process executor sweeps when it loses a worker, an engine's inline executor when
it starts, and each process when it makes its first root. A lock rather than the PID in
the name tells whether the owner lives: a process in another PID namespace sharing
``TMPDIR`` (another container, a sandbox) has a PID this one cannot see, and a PID can be
reused. A root is swept only once untouched for
:data:`SWEEP_GRACE_S` (its owner may be between making it and locking it), unless its owner is
known dead (``owner=``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import threading
import time

from kaon.errors import SystemFailure

SWEEP_GRACE_S = 10.0  # a root unlocked but touched more recently may be being made

_ROOT_NAME = re.compile(r"kaon-(\d+)-[a-z0-9_]+")  # mkdtemp's suffix: [a-z0-9_]

_lock = threading.Lock()
_root: tuple[str, int] | None = None  # this process's root and the descriptor locking it


def scratch_root() -> str:
    """This process's root (made, locked, and the abandoned roots swept, on first use)."""
    global _root
    with _lock:
        if _root is None:
            try:
                folder = tempfile.mkdtemp(prefix=f"kaon-{os.getpid()}-")
            except OSError as exc:
                raise unusable(exc) from exc
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX)
            _root = folder, fd
            sweep = True
        else:
            sweep = False
        folder = _root[0]
    if sweep:
        sweep_abandoned()
    return folder


def scratch_folder(prefix: str) -> str:
    """A new folder ``<root>/<prefix><random>``, removed when this process ends. Raises
    SystemFailure (see :func:`unusable`) when the temporary folder cannot hold it."""
    root = scratch_root()
    try:
        return tempfile.mkdtemp(prefix=prefix, dir=root)
    except OSError as exc:
        raise unusable(exc) from exc


def unusable(exc: OSError) -> SystemFailure:
    """The failure of a step that cannot make its scratch files (``exc``): the temporary folder
    is full, missing or not writable. A platform failure, the machine's and not the step's
    (the platform budget retries it), naming the folder and what to do."""
    why = exc.strerror or str(exc)
    return SystemFailure(
        f"cannot make a scratch file in the temporary folder {tempfile.gettempdir()} ({why}): "
        "free space there, or set TMPDIR to a folder this process can write"
    )


def remove_scratch_folders() -> None:
    """Remove this process's root and all in it (its next folder makes a new root). Call it
    after the processes that write there (kernels, a JVM) are stopped."""
    global _root
    with _lock:
        root, _root = _root, None
    if root is not None:
        shutil.rmtree(root[0], ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(root[1])


def sweep_abandoned(owner: int | None = None) -> list[str]:
    """Remove the roots in the temporary folder whose owner is gone (their lock is free and
    they were untouched for :data:`SWEEP_GRACE_S`); with ``owner``, only that dead process's
    roots, whatever their age. Returns the roots removed. Never raises: a folder that cannot
    be read or removed is left."""
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return []
    removed: list[str] = []
    now = time.time()
    mine = _root[0] if _root is not None else None
    for name in names:
        found = _ROOT_NAME.fullmatch(name)
        if found is None or (owner is not None and int(found.group(1)) != owner):
            continue
        path = os.path.join(tmp, name)
        if path != mine and _abandoned(path, now, grace=owner is None):
            removed.append(path)
    return removed


def _abandoned(path: str, now: float, *, grace: bool) -> bool:
    """Remove ``path`` if no process holds its lock (holding it meanwhile); True if removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False  # gone, not a folder, a link, not ours to read
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its owner lives
        if grace and now - os.fstat(fd).st_mtime < SWEEP_GRACE_S:
            return False
        shutil.rmtree(path, ignore_errors=True)
        return not os.path.exists(path)
    finally:
        os.close(fd)


def _forget_after_fork() -> None:
    """In a forked child: the parent's root is not the child's (it makes its own; the lock
    it inherited stays the parent's, which holds the same open file)."""
    global _lock, _root
    _lock = threading.Lock()  # another thread of the parent may have held it
    if _root is not None:
        with contextlib.suppress(OSError):
            os.close(_root[1])
    _root = None


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(remove_scratch_folders)

"""Finding and killing every process a worker started, however it detached (Linux ``/proc``).

A step may start processes of its own (``subprocess.Popen`` in a Python step, a daemon a
shell command leaves behind). They must die with the attempt's worker, not linger with PID 1
as parent, so that a resumed run never finds a second copy running. A worker is the leader
of its own process group; what it started is either in that group or, if it started a new
session, still its descendant through the parent links. Both are found here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import NoReturn

# Held by the thread ending this process in :func:`die`, until its ``os._exit``.
_ENDING = threading.Lock()
END_WAIT_S = 10.0  # how long a second caller of die() lets the first one clean up


def _process_table() -> dict[int, tuple[int, int]]:
    """``pid -> (parent pid, process group)`` for every visible process."""
    table: dict[int, tuple[int, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        table[int(name)] = (int(fields[1]), int(fields[2]))
    return table


def descendants_and_group(pid: int) -> set[int]:
    """Processes descended from ``pid``, plus the members of its process group when it leads
    one (``pid`` itself excluded)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    leader = table.get(pid)
    if leader is not None and leader[1] == pid:
        found.update(p for p, (_, group) in table.items() if group == pid)
    found.discard(pid)
    return found


def kill_descendants(pid: int | None = None) -> None:
    """SIGKILL every process :func:`descendants_and_group` finds for ``pid`` (default: this
    process). They are stopped first and looked for again, so that one forking meanwhile
    does not leave a child behind."""
    me = os.getpid() if pid is None else pid
    seen: set[int] = set()
    for _ in range(3):
        found = descendants_and_group(me) - seen
        if not found:
            break
        for target in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signal.SIGSTOP)
        seen |= found
    for target in seen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


def ending() -> bool:
    """Whether this process is ending (a thread of it is in :func:`die`)."""
    return _ENDING.locked()


def die(code: int) -> NoReturn:
    """End this worker process at once (``os._exit``) and leave nothing of its steps behind:
    the one way a worker of any executor (a process worker, a Ray worker running a cancelled
    attempt's Python code) ends without finishing its step. ``os._exit`` skips every
    ``finally`` and ``atexit`` handler, so what they would have done is done here: the
    containers of ``container`` steps are removed (detached, started first so the kills below
    cannot reach it), shell commands' process groups and every other descendant killed, and
    the step types' scratch folders removed.

    A process ends once: a second caller (the main thread whose pipe broke while the
    housekeeping thread ends the worker for its parent's death) waits for the first one's
    ``os._exit``, up to :data:`END_WAIT_S` (a cleanup stuck on a process that will not die
    does not keep the worker); its own would cut that cleanup short (a scratch root left half
    removed). A signal handler calling it on the ending thread checks :func:`ending` first."""
    if not _ENDING.acquire(blocking=False):
        time.sleep(END_WAIT_S)  # the thread ending the process ends this one with it
        os._exit(code)
    try:
        from kaon.steptypes.scratch import remove_scratch_folders
        from kaon.steptypes.shell import kill_live_process_groups

        container = sys.modules.get("kaon.steptypes.container")  # only when that type ran
        if container is not None:
            container.remove_live_containers()
        kill_live_process_groups()
        kill_descendants()  # what a Python step started (Popen), in this group or a new session
        remove_scratch_folders()
    finally:
        os._exit(code)


def _not_ending_in_child() -> None:
    """A forked child is not ending because a thread of its parent was."""
    global _ENDING
    _ENDING = threading.Lock()


os.register_at_fork(after_in_child=_not_ending_in_child)

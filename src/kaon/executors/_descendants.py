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

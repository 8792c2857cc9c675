"""What an engine killed by ``kill -9`` leaves running of its inline steps, stopped anyway.

The inline executor runs steps on the engine's own threads. A shell command runs in a
session of its own (so that a cancel or a timeout kills it whole) and a container under
Podman's monitor: neither dies with the engine's process. Killed by ``kill -9``, the engine
would leave them running, and ``kaon resume`` would start a second copy beside the first.

So the first such command starts a reaper: a small process of its own (the interpreter, no
Kaon import) that reads from a pipe what the engine starts and what ends (``g+ PGID``,
``g- PGID``, ``c+ NAME ARGV-JSON``, ``c- NAME``). When the pipe closes without ``bye`` (the
engine's process died: the kernel closes its end), it kills the process groups still running
and removes the containers still there, then exits. A clean shutdown says ``bye`` first. A
shell command's group is told before the command runs anything: it starts held at a gate
that the step opens only after the report (see :func:`kaon.steptypes.shell._gated`), and that
an engine killed before closes, so the command never runs.
Engines that never run a shell command or a container never start one.

A process executor's workers (``w+ PGID``) are told to it too: a worker stops its step and
exits by itself when its engine dies, but only when it gets the interpreter's lock, which a
step's C code may hold for ever (a catastrophic regex): that worker would run on, and a resumed
run beside it. The reaper kills the process groups of the workers still there
:data:`WORKER_GRACE_S` after the engine's death.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from typing import IO

# The step types whose commands outlive the engine's process (a session of their own: a
# command, a notebook's kernel; a container under Podman's monitor): the reaper is started
# before the first one is.
REAPED_STEP_TYPES = frozenset({"shell", "container", "r", "notebook"})

WORKER_GRACE_S = 2.0  # a live worker stops its steps itself within this once its engine died

# The reaper's program: the standard library only, so that it starts in milliseconds.
_PROGRAM = (
    f"WORKER_GRACE_S = {WORKER_GRACE_S}\n"
    + r"""
import json, os, signal, subprocess, sys
groups, containers, workers = set(), {}, set()
for line in sys.stdin:
    kind, _, rest = line.rstrip("\n").partition(" ")
    if kind == "bye":
        sys.exit(0)
    if kind == "g+":
        groups.add(int(rest))
    elif kind == "g-":
        groups.discard(int(rest))
    elif kind == "c+":
        name, _, argv = rest.partition(" ")
        containers[name] = json.loads(argv)
    elif kind == "c-":
        containers.pop(rest, None)
    elif kind == "w+":
        workers.add(int(rest))
    elif kind == "w-":
        workers.discard(int(rest))
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
for argv in containers.values():
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, check=False)
    except Exception:
        pass
if workers:
    import time
    time.sleep(WORKER_GRACE_S)
    for group in workers:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
"""
)


class Reaper:
    """The engine's side of the reaper: started with the first command it is told of."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._closed = False

    def group_changed(self, pgid: int, running: bool) -> None:
        """A shell command's process group started (``running``) or ended."""
        self._say(f"g{'+' if running else '-'} {pgid}", start=running)

    def worker_changed(self, pgid: int, running: bool) -> None:
        """A process executor's worker (the leader of process group ``pgid``) started
        (``running``) or ended."""
        self._say(f"w{'+' if running else '-'} {pgid}", start=running)

    def container_changed(self, name: str, remove_argv: list[str] | None) -> None:
        """A container started (with the command that removes it) or was removed (None)."""
        if remove_argv is None:
            self._say(f"c- {name}", start=False)
        else:
            self._say(f"c+ {name} {json.dumps(remove_argv)}", start=True)

    def close(self) -> None:
        """The engine shuts down cleanly: the reaper exits without stopping anything."""
        with self._lock:
            self._closed = True
            process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                _write(process.stdin, "bye")
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

    def prepare(self) -> None:
        """Start the reaper now, before a command that it must stop is started: started with
        the command's report instead, a ``kill -9`` of the engine while the reaper's own
        interpreter was still starting (tens of milliseconds) left the command running."""
        self._say("", start=True)

    def _say(self, line: str, *, start: bool) -> None:
        with self._lock:
            if self._closed:
                return
            if self._process is None:
                if not start:
                    return  # nothing was told to a reaper: nothing to take back
                self._process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _PROGRAM],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,  # a Ctrl-C of the engine's terminal is not for it
                    close_fds=True,
                )
            if line:
                with contextlib.suppress(OSError, ValueError):  # a reaper gone: best effort
                    _write(self._process.stdin, line)


def _write(stream: IO[str] | None, line: str) -> None:
    assert stream is not None
    stream.write(line + "\n")
    stream.flush()

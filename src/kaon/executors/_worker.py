"""The worker side of the ``process`` executor: a warm interpreter that runs attempts one by one.

Started by :class:`~kaon.executors.process.ProcessExecutor` as
``python -c "from kaon.executors._worker import main; main()" <fd> <parent pid>``, where
``<fd>`` is its end of a socket pair wrapped as a :class:`multiprocessing.connection.Connection`.

Messages from the parent: an init dict (``sys_path``), then one
:class:`~kaon.executors.base.TaskRequest` at a time, or ``None`` to stop. Messages to the
parent: ``("ready", pid)`` once, then ``("events", [event, ...])`` batches and
``("group", (pgid, running))`` when a shell command's process group starts or ends.

The worker dies with its parent: it exits on EOF of the connection while idle, and a
housekeeping thread checks ``os.getppid()`` every :data:`PARENT_CHECK_S` seconds so that a
parent killed with SIGKILL does not leave a step running. On SIGTERM (the parent cancelling an
attempt) and on parent death it kills its shell commands' process groups, and every other
process it started (its own process group and its descendants, see
:mod:`kaon.executors._descendants`), before exiting. It also stops its attempt, the same way,
when its engine's lease deadline passes (see :mod:`kaon.executors._lease_fence`), and exits
with :data:`~kaon.executors._lease_fence.LEASE_EXPIRED_EXIT`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from types import FrameType

from kaon.executors._lease_fence import LEASE_EXPIRED_EXIT, LeaseDeadline, Watchdog
from kaon.executors.base import TaskRequest
from kaon.model.events import ErrorInfo, ExecutorEvent, StepFailed, StepSucceeded

PARENT_CHECK_S = 0.2
FLUSH_DELAY_S = 0.005  # how long a non-final event may wait to share a message with others
MAX_BATCH = 256

RUNNING_IN_WORKER = False
"""True inside a worker process: a process executor refuses to start there (a user module that
runs a workflow at import time would otherwise spawn workers recursively)."""


def _die(code: int) -> None:
    from kaon.executors._descendants import kill_descendants
    from kaon.steptypes.shell import kill_live_process_groups

    kill_live_process_groups()
    kill_descendants()  # what a Python step started (Popen), in this group or a new session
    os._exit(code)


class Outbox:
    """Batches events to the parent: a final event, or a full batch, is sent at once; others
    within :data:`FLUSH_DELAY_S` by the housekeeping thread."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._pending: list[ExecutorEvent] = []
        self._wake = threading.Event()

    def add(self, event: ExecutorEvent) -> None:
        """Queue ``event`` for the parent (thread-safe)."""
        with self._lock:
            self._pending.append(event)
            count = len(self._pending)
        if isinstance(event, StepSucceeded | StepFailed) or count >= MAX_BATCH:
            self.flush()
        elif count == 1:
            self._wake.set()

    def flush(self) -> None:
        """Send everything queued, in order. Raises OSError when the parent is gone."""
        with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            self._conn.send(("events", batch))

    def send_now(self, message: tuple[str, object]) -> None:
        """Send a control message at once, after the events queued before it."""
        with self._lock:
            batch, self._pending = self._pending, []
            if batch:
                self._conn.send(("events", batch))
            self._conn.send(message)

    def group_changed(self, pgid: int, running: bool) -> None:
        """Tell the parent a shell command's process group started or ended."""
        self.send_now(("group", (pgid, running)))

    def housekeep(self, parent_pid: int) -> None:
        """Forever: flush late events, and exit when the parent has died."""
        while True:
            woke = self._wake.wait(PARENT_CHECK_S)
            if parent_pid and os.getppid() != parent_pid:
                _die(1)
            if woke:
                self._wake.clear()
                time.sleep(FLUSH_DELAY_S)
                try:
                    self.flush()
                except OSError:
                    _die(1)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _die(128 + signum)


def serve(conn: Connection, parent_pid: int, watchdog: Watchdog | None = None) -> None:
    """Run requests from ``conn`` until it closes or sends ``None``; with a ``watchdog``,
    only while the engine's lease deadline has not passed."""
    from kaon.executors.runtime import install_output_capture, run_task
    from kaon.steptypes.shell import set_process_group_observer

    outbox = Outbox(conn)
    set_process_group_observer(outbox.group_changed)
    threading.Thread(
        target=outbox.housekeep, args=(parent_pid,), name="kaon-worker-housekeeping", daemon=True
    ).start()
    install_output_capture()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if not isinstance(request, TaskRequest):
            break
        if watchdog is None:
            run_task(request, outbox.add)
        elif not watchdog.admits():
            outbox.add(_refused_late(request))
        else:
            watchdog.busy = True
            run_task(request, outbox.add)
            watchdog.busy = False
        try:
            outbox.flush()
        except OSError:
            break


def _refused_late(request: TaskRequest) -> StepFailed:
    message = (
        f"step {request.step_path} was not started: the engine's lease on run "
        f"{request.run_id} ran out before the worker received it"
    )
    return StepFailed(request.key, time.time(), ErrorInfo("LeaseExpired", message, platform=True))


def main() -> None:
    """Entry point of a worker process (see the module docstring)."""
    global RUNNING_IN_WORKER
    RUNNING_IN_WORKER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle
    signal.signal(signal.SIGTERM, _on_sigterm)
    fd, parent_pid = int(sys.argv[1]), int(sys.argv[2])  # 0: sandboxed, see process.py
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)
    conn = Connection(fd)
    init = conn.recv()
    sys.path[:] = list(init["sys_path"])
    if init.get("cwd"):
        with contextlib.suppress(OSError):  # hidden by the sandbox: stay in its scratch
            os.chdir(init["cwd"])
    # Preload what every attempt uses, so the first step is as fast as the rest.
    import kaon.artifacts
    import kaon.steptypes.python
    import kaon.steptypes.shell  # noqa: F401

    watchdog = None
    if init.get("lease_fd") is not None:
        watchdog = Watchdog(LeaseDeadline(int(init["lease_fd"])), lambda: _die(LEASE_EXPIRED_EXIT))
        watchdog.install()
    try:
        serve(conn, parent_pid, watchdog)
    finally:
        _die(0)

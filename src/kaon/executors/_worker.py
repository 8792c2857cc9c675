"""The worker side of the ``process`` executor: a warm interpreter that runs attempts one by one.

Started by :class:`~kaon.executors.process.ProcessExecutor` as
``python -c "from kaon.executors._worker import main; main()" <fd> <parent pid>``, where
``<fd>`` is its end of a socket pair wrapped as a :class:`multiprocessing.connection.Connection`.

Messages from the parent: an init dict (``sys_path``), then messages that each hold one or
more pickles back to back: a :class:`~kaon.executors.base.TaskRequest` to run (several may come
in one message: batched dispatch), ``("cancel", key)``, or ``None`` to stop. A receiver thread
queues the requests; the main thread runs them in order. Messages to the parent: ``("ready",
pid)`` once, then ``("events", [event, ...])`` batches, ``("group", (pgid, running))`` when a
shell command's process group starts or ends, ``("returned", [key, ...])`` when queued requests
are handed back (the attempt running has taken longer than :data:`GIVE_BACK_S`, so other
workers should run them), and ``("running", key)`` when a cancelled attempt is the one running
(the parent then terminates this worker).

Events are batched: a finished attempt's events are sent when nothing else is queued here, else
within :data:`FLUSH_DELAY_S` together with the next attempts' events, so a burst of short
attempts costs the parent one message (and the engine one commit) per batch, not per attempt.
An attempt with a timeout sends its ``StepStarted`` at once, from the thread about to run its
code: the timeout counts from it, and a step whose C code holds the GIL from its start would
keep it from the housekeeping thread.

Each attempt starts in the worker's own working directory and environment: a step's
``os.chdir`` or ``os.environ`` changes are undone after it (:class:`ProcessState`).

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
import io
import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from types import FrameType

from kaon.executors._affinity import Placement
from kaon.executors._lease_fence import LEASE_EXPIRED_EXIT, LeaseDeadline, Watchdog
from kaon.executors.base import TaskRequest
from kaon.model.events import AttemptKey, ErrorInfo, ExecutorEvent, StepFailed, StepStarted

PARENT_CHECK_S = 0.2
FLUSH_DELAY_S = 0.005  # how long an event may wait to share a message with others
MAX_BATCH = 256
GIVE_BACK_S = 0.05  # an attempt running longer hands the requests queued behind it back

RUNNING_IN_WORKER = False
"""True inside a worker process: a process executor refuses to start there (a user module that
runs a workflow at import time would otherwise spawn workers recursively)."""


def _die(code: int) -> None:
    from kaon.executors._descendants import die

    die(code)


def loads_all(data: bytes) -> list[object]:
    """The objects pickled back to back in one message."""
    stream = io.BytesIO(data)
    found: list[object] = []
    while stream.tell() < len(data):
        found.append(pickle.Unpickler(stream).load())
    return found


class Outbox:
    """Batches events to the parent: a full batch is sent at once, the rest by the serving loop
    when nothing is queued, or within :data:`FLUSH_DELAY_S` by the housekeeping thread."""

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
        if count >= MAX_BATCH:
            self.flush()
        elif count == 1:
            self._wake.set()

    def add_start_at_once(self, event: ExecutorEvent) -> None:
        """:meth:`add`, then send a ``StepStarted`` (and what was queued before it) now,
        from the calling thread. Raises OSError when the parent is gone."""
        self.add(event)
        if isinstance(event, StepStarted):
            self.flush()

    def flush(self) -> None:
        """Send everything queued, in order. Raises OSError when the parent is gone."""
        with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            self._send(("events", batch))

    def send_now(self, message: tuple[str, object]) -> None:
        """Send a control message at once, after the events queued before it."""
        with self._lock:
            batch, self._pending = self._pending, []
            if batch:
                self._send(("events", batch))
            self._send(message)

    def _send(self, message: tuple[str, object]) -> None:
        # pickle itself, not Connection.send: its ForkingPickler copies the reducer tables
        # for every message, and nothing sent here needs them
        self._conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def group_changed(self, pgid: int, running: bool) -> None:
        """Tell the parent a shell command's process group started or ended."""
        self.send_now(("group", (pgid, running)))

    def housekeep(self, parent_pid: int, inbox: Inbox) -> None:
        """Forever: flush late events, hand queued requests back when the attempt running is
        slow, and exit when the parent has died."""
        while True:
            woke = self._wake.wait(GIVE_BACK_S if inbox.backlog() else PARENT_CHECK_S)
            if parent_pid and os.getppid() != parent_pid:
                _die(1)
            returned = inbox.give_back(GIVE_BACK_S)
            if returned:
                try:
                    self.send_now(("returned", returned))
                except OSError:
                    _die(1)
            if woke:
                self._wake.clear()
                time.sleep(FLUSH_DELAY_S)
                try:
                    self.flush()
                except OSError:
                    _die(1)


class Inbox:
    """The requests sent to this worker, in order; filled by :meth:`receive` on its own thread
    so that a cancel or a hand-back can reach requests that wait behind a running attempt."""

    def __init__(self, conn: Connection, outbox: Outbox) -> None:
        self._conn = conn
        self._outbox = outbox
        self._cond = threading.Condition()
        self._queue: deque[TaskRequest] = deque()
        self._closed = False
        self._current: TaskRequest | None = None
        self._since = 0.0
        self.cpu: int | None = None  # the core to wait on, told by the parent (a chain's)

    def receive(self) -> None:
        """Forever: queue the parent's requests and apply its cancels, until it stops us."""
        placement = Placement()
        while True:
            placement.wait_on(self.cpu)
            try:
                messages = loads_all(self._conn.recv_bytes())
            except Exception:  # EOF, a closed socket or a garbled message: stop
                messages = [None]
            for message in messages:
                if isinstance(message, TaskRequest):
                    with self._cond:
                        self._queue.append(message)
                        self._cond.notify()
                elif isinstance(message, tuple) and message[0] == "cancel":
                    self._cancel(message[1])
                elif isinstance(message, tuple) and message[0] == "cpu":
                    self.cpu = message[1]
                else:
                    with self._cond:
                        self._closed = True
                        self._cond.notify()
                    return

    def next(self) -> TaskRequest | None:
        """The next request to run, waiting for one; None once the parent stopped us."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            self._current = self._queue.popleft()
            self._since = time.monotonic()
            return self._current

    def done(self) -> bool:
        """The current request finished; True when nothing else is queued."""
        with self._cond:
            self._current = None
            return not self._queue

    def backlog(self) -> bool:
        """True while an attempt runs with others queued behind it."""
        return self._current is not None and bool(self._queue)

    def give_back(self, after_s: float) -> list[AttemptKey]:
        """Drop and return the queued requests' keys when the running attempt started more than
        ``after_s`` seconds ago (they will never run here)."""
        with self._cond:
            if self._current is None or not self._queue:
                return []
            if time.monotonic() - self._since < after_s:
                return []
            keys = [request.key for request in self._queue]
            self._queue.clear()
            return keys

    def _cancel(self, key: AttemptKey) -> None:
        with self._cond:
            for request in self._queue:
                if request.key == key:
                    self._queue.remove(request)
                    return
            running = self._current is not None and self._current.key == key
        if running:  # only the parent can stop it: it terminates this worker
            with contextlib.suppress(OSError):
                self._outbox.send_now(("running", key))


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    from kaon.executors._descendants import ending

    if not ending():  # else this worker is ending already: let that finish its cleanup
        _die(128 + signum)


def _ignore_sigint(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C is the engine's to handle. Caught rather than ``SIG_IGN``, which every process
    a step starts would inherit through ``exec``."""


def _default_signals_in_child() -> None:
    """In a process a step forks (``os.fork``, multiprocessing's ``fork`` pools): the
    default handling of SIGINT and SIGTERM, not the worker's (whose SIGTERM handler would run
    the worker's exit routine in the child, and keep the child alive meanwhile)."""
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class ProcessState:
    """The worker's working directory and environment as they were before its first attempt,
    put back after every attempt: what a step does with ``os.chdir`` or ``os.environ`` must
    not reach the steps after it on this worker, of its run or any other. Cheap when nothing
    changed (one ``getcwd`` and one comparison of the environment's dict). Not seen: changes
    made around ``os.environ`` (``os.putenv``, ``setenv`` in C code)."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = os.environ
        self.env = dict(os.environ)
        # The dict behind os.environ (CPython; bytes to bytes): compared as is, without
        # decoding every variable.
        self.data: dict[bytes, bytes] | None = getattr(os.environ, "_data", None)
        self.raw = dict(self.data) if self.data is not None else None

    def restore(self) -> None:
        """Put the working directory and the environment back if a step changed them."""
        try:
            moved = os.getcwd() != self.cwd
        except OSError:  # the step removed its working directory
            moved = True
        if moved:
            with contextlib.suppress(OSError):
                os.chdir(self.cwd)
        if os.environ is not self.environ:  # replaced (os.environ = {...})
            os.environ = self.environ  # noqa: B003  (the original object, its variables)
        elif self.data is not None and self.data == self.raw:
            return
        current = dict(os.environ)
        if current == self.env:
            return
        for name in current.keys() - self.env.keys():
            with contextlib.suppress(KeyError, OSError):
                del os.environ[name]
        for name, value in self.env.items():
            if current.get(name) != value:
                with contextlib.suppress(ValueError, OSError):
                    os.environ[name] = value


def serve(conn: Connection, parent_pid: int, watchdog: Watchdog | None = None) -> None:
    """Run requests from ``conn`` until it closes or sends ``None``; with a ``watchdog``,
    only while the engine's lease deadline has not passed."""
    from kaon.executors.runtime import install_output_capture, run_task
    from kaon.steptypes.shell import set_process_group_observer

    outbox = Outbox(conn)
    inbox = Inbox(conn, outbox)
    set_process_group_observer(outbox.group_changed)
    threading.Thread(
        target=outbox.housekeep,
        args=(parent_pid, inbox),
        name="kaon-worker-housekeeping",
        daemon=True,
    ).start()
    install_output_capture()
    from kaon.executors import _fd_capture

    _fd_capture.install()  # what child processes and C code write: the attempt's log too
    conn.send(("ready", os.getpid()))
    threading.Thread(target=inbox.receive, name="kaon-worker-inbox", daemon=True).start()
    placement = Placement()  # on a chain's core while it waits (see kaon.executors._affinity)
    state = ProcessState()
    while True:
        placement.wait_on(inbox.cpu)
        request = inbox.next()
        placement.release()  # the step's code, and what it starts, may use every core
        if request is None:
            break
        # A timed attempt's start is sent at once: its timeout counts from it, and the
        # housekeeping thread that sends late events needs the GIL, which a step's C code may
        # hold from its first instruction (a regex, an extension's loop) for ever.
        emit = outbox.add if request.timeout_s is None else outbox.add_start_at_once
        if watchdog is None:
            run_task(request, emit)
        elif not watchdog.admits():
            outbox.add(_refused_late(request))
        else:
            watchdog.busy = True
            run_task(request, emit)
            watchdog.busy = False
        state.restore()  # the next attempt starts as this one did
        if inbox.done():  # nothing queued: report now rather than within FLUSH_DELAY_S
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
    signal.signal(signal.SIGINT, _ignore_sigint)  # Ctrl-C is the engine's to handle
    signal.signal(signal.SIGTERM, _on_sigterm)
    os.register_at_fork(after_in_child=_default_signals_in_child)
    fd, parent_pid = int(sys.argv[1]), int(sys.argv[2])  # 0: sandboxed, see process.py
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)
    conn = Connection(fd)
    init = conn.recv()
    sys.path[:] = list(init["sys_path"])
    if init.get("cwd"):
        with contextlib.suppress(OSError):  # hidden by the sandbox: stay in its scratch
            os.chdir(init["cwd"])
    # Preload what every attempt uses, so the first step is as fast as the rest: the
    # runtime, and the DSL a Python step's module imports (``@kaon.step``: ~35 ms).
    import kaon.artifacts
    import kaon.dsl.python
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

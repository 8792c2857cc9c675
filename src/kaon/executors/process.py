"""The ``process`` executor (the default): a pool of warm worker processes on this machine.

Each worker is a fresh interpreter (spawned, never forked: the engine has threads) that runs
one attempt at a time through :func:`~kaon.executors.runtime.run_task` and stays warm between
attempts, so a module a step imports is loaded once per worker. Workers are started with
``python -P -c ...`` rather than :mod:`multiprocessing`'s spawn so that the user's ``__main__``
script is never re-imported in them; the parent's ``sys.path`` and working directory are sent
over. Requests and events travel over one socket pair per worker
(:class:`multiprocessing.connection.Connection`); one reader thread in the parent waits on all
of them and delivers events to the sink.

* A worker that dies while running an attempt (segfault, ``os._exit``, OOM kill) yields
  ``StepFailed`` with ``platform=True`` and type ``WorkerLost``; a replacement is started.
* :meth:`ProcessExecutor.cancel` terminates the worker running the attempt (SIGTERM, which
  kills its shell commands, then SIGKILL of its process group after
  :data:`KILL_GRACE_S`) and starts a replacement. No event is delivered for the attempt after
  ``cancel`` returns, except one the reader thread was already delivering.
* Workers exit when the parent dies, even by SIGKILL (see :mod:`kaon.executors._worker`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any, ClassVar

from kaon.errors import ConfigurationError, InvalidActionError, SystemFailure
from kaon.executors._descendants import kill_descendants
from kaon.executors.admission import HostBudget
from kaon.executors.base import EventSink, Executor, TaskRequest
from kaon.executors.runtime import error_type_name
from kaon.executors.sandbox import SandboxSpec
from kaon.model.events import AttemptKey, ErrorInfo, ExecutorEvent, StepFailed, StepSucceeded

KILL_GRACE_S = 0.5  # between SIGTERM and SIGKILL of a cancelled attempt's worker
HEALTH_CHECK_S = 0.5  # how often the reader looks for workers that died without an EOF
MAX_START_FAILURES = 3  # workers in a row that die before ready: the pool is broken
_log = logging.getLogger(__name__)
_WORKER_CODE = "from kaon.executors._worker import main; main()"


@dataclass(eq=False)
class _Worker:
    """The parent's view of one worker process."""

    proc: subprocess.Popen[bytes]
    conn: Connection
    task: TaskRequest | None = None
    ready: bool = False
    retiring: bool = False
    kill_at: float = 0.0
    groups: set[int] = field(default_factory=set)  # process groups of its shell commands

    def kill_groups(self) -> None:
        """SIGKILL what the worker started (while it lives, every descendant; see
        :mod:`kaon.executors._descendants`), its own process group and its shell commands'."""
        if self.proc.poll() is None:
            kill_descendants(self.proc.pid)
        for pgid in [self.proc.pid, *self.groups]:
            _kill_group(pgid)

    @property
    def pid(self) -> int:
        return self.proc.pid


def _exit_description(code: int | None) -> str:
    if code is None:
        return "stopped responding"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        # Say what is known: the signal. A SIGKILL may come from an operator as well as from
        # the kernel's out-of-memory killer; guessing either misleads the other.
        return f"was killed by signal {-code} ({name})"
    return f"exited with status {code}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class ProcessExecutor(Executor):
    """Runs attempts in ``workers`` warm processes (default: the CPU count), one at a time each.

    Attempts of steps that ask for ``resources`` are admitted by them (:mod:`kaon.executors.
    admission`): ``budget`` is what the host offers (default: its CPUs and memory, no GPUs);
    one that asks for more than that fails at once (``Unschedulable``).

    With a ``sandbox``, each worker runs under bubblewrap as it says
    (:mod:`kaon.executors.sandbox`): it sees no state database, token or server environment.

    :meth:`start` blocks until every worker is ready, at most ``start_timeout_s`` seconds, and
    raises :class:`~kaon.errors.SystemFailure` if they cannot start. With ``wait_ready=False``
    it returns once the workers are spawned, so they start while the engine plans its first
    turn: attempts submitted meanwhile wait in the workers' pipes, and workers that cannot start
    (or are not ready in time) fail them as ``WorkerLost`` platform failures.
    """

    name: ClassVar[str] = "process"

    def __init__(
        self,
        workers: int | None = None,
        start_timeout_s: float = 60.0,
        sandbox: SandboxSpec | None = None,
        *,
        wait_ready: bool = True,
        budget: HostBudget | None = None,
    ) -> None:
        count = workers if workers is not None else (os.cpu_count() or 1)
        if count < 1:
            raise ConfigurationError(f"process executor: workers must be >= 1, got {count}")
        self._size = count
        self._sandbox = sandbox
        self._budget = budget or HostBudget()
        self._start_timeout_s = start_timeout_s
        self._wait_ready = wait_ready
        self._ready_by = 0.0
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []  # live, not retiring
        self._retiring: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._by_key: dict[AttemptKey, _Worker] = {}
        self._pending: OrderedDict[AttemptKey, bytes] = OrderedDict()
        self._requests: dict[AttemptKey, TaskRequest] = {}
        self._later: list[ExecutorEvent] = []
        self._sink: EventSink | None = None
        self._closed = False
        self._start_failures = 0
        self._broken = ""
        self._ready = threading.Event()
        self._wake_r, self._wake_w = Pipe(duplex=False)
        self._reader: threading.Thread | None = None

    @property
    def capacity(self) -> int:
        """How many attempts run at once: the number of worker processes."""
        return self._size

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring and tests)."""
        with self._lock:
            return [w.pid for w in self._workers]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, sink: EventSink) -> None:
        """Start the workers and the reader thread; wait until every worker is ready.

        Raises :class:`~kaon.errors.SystemFailure` when workers die before they are ready or
        are not ready within ``start_timeout_s``, and
        :class:`~kaon.errors.InvalidActionError` inside a worker process (no recursive pools).
        """
        from kaon.executors import _worker

        if _worker.RUNNING_IN_WORKER:
            raise InvalidActionError(
                "a process executor cannot start inside a Kaon worker process; does a step's "
                "module run a workflow when imported? Guard it with `if __name__ == '__main__':`"
            )
        if self._sink is not None:
            raise SystemFailure("process executor already started")
        self._sink = sink
        with self._lock:
            for _ in range(self._size):
                self._add_worker()
        self._ready_by = time.monotonic() + self._start_timeout_s
        self._reader = threading.Thread(
            target=self._read_loop, name="kaon-process-reader", daemon=True
        )
        self._reader.start()
        if not self._wait_ready:
            return
        if not self._ready.wait(self._start_timeout_s) or self._broken:
            self.shutdown()
            reason = self._broken or f"not ready within {self._start_timeout_s} s"
            raise SystemFailure(f"process executor: workers cannot start: {reason}")

    def shutdown(self) -> None:
        """Stop every worker: idle ones exit, busy ones are terminated. Drops queued attempts."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = self._workers + self._retiring
            self._pending.clear()
            self._by_key.clear()
        self._wake()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        for worker in workers:
            if worker.task is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
            with contextlib.suppress(OSError):
                worker.conn.close()  # an idle worker sees EOF and exits
        deadline = time.monotonic() + 2.0
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            worker.kill_groups()
            worker.proc.wait()
        self._wake_r.close()
        self._wake_w.close()

    # -- tasks -----------------------------------------------------------------------------

    def submit(self, request: TaskRequest) -> None:
        """Send ``request`` to an idle worker, or queue it until one is free. Never blocks.

        A request that cannot be pickled fails (not a platform failure) with its reason.
        """
        if self._sink is None:
            raise SystemFailure("process executor: submit() before start()")
        try:
            data = bytes(ForkingPickler.dumps(request))
        except Exception as exc:
            message = f"the request for step {request.step_path} cannot be sent to a worker: {exc}"
            self._deliver_later(
                StepFailed(request.key, time.time(), ErrorInfo(error_type_name(exc), message))
            )
            return
        refusal = self._budget.refusal(request.resources) if request.resources else None
        if refusal is not None:
            failure = ErrorInfo("Unschedulable", f"step {request.step_path}: {refusal}")
            self._deliver_later(StepFailed(request.key, time.time(), failure))
            return
        with self._lock:
            if self._closed:
                raise SystemFailure("process executor: submit() after shutdown()")
            if self._broken:
                self._later.append(self._broken_failure(request.key))
            else:
                self._requests[request.key] = request
                self._pending[request.key] = data
                self._dispatch()
        if self._later:
            self._wake()

    def cancel(self, key: AttemptKey) -> None:
        """Kill the attempt: drop it if queued, else terminate its worker and replace it."""
        with self._lock:
            self._requests.pop(key, None)
            if self._pending.pop(key, None) is not None:
                return
            worker = self._by_key.pop(key, None)
            if worker is None or self._closed:
                return
            self._retire(worker)
            self._add_worker()
            self._dispatch()
        self._wake()

    # -- inside the lock -------------------------------------------------------------------

    def _add_worker(self) -> None:
        parent_conn, child_conn = Pipe(duplex=True)
        fd = child_conn.fileno()
        sandbox = self._sandbox
        # In a sandbox the worker cannot see its parent (a new PID namespace): bwrap's
        # --die-with-parent ends it with the parent instead of the worker's own check.
        argv = [sys.executable, "-P", "-c", _WORKER_CODE, str(fd), str(os.getpid())]
        if sandbox is not None:
            argv = sandbox.argv([*argv[:-1], "0"], cwd=os.getcwd())
        proc = subprocess.Popen(
            argv,
            pass_fds=[fd],
            stdin=subprocess.DEVNULL,
            process_group=0,
            env=sandbox.environment() if sandbox is not None else None,
        )
        child_conn.close()
        worker = _Worker(proc, parent_conn)
        parent_conn.send({"sys_path": list(sys.path), "cwd": os.getcwd()})
        self._workers.append(worker)
        self._idle.append(worker)

    def _dispatch(self) -> None:
        """Start queued attempts on idle workers, oldest first; one whose resources are not
        free now waits, and younger ones that fit go first."""
        if not self._pending or not self._idle:
            return
        for key in list(self._pending):
            if not self._idle:
                return
            request = self._requests[key]
            if request.resources:
                if not self._budget.fits(request.resources):
                    continue
                self._budget.take(request.resources)
            data = self._pending.pop(key)
            worker = self._idle.pop()
            worker.task = self._requests.pop(key)
            self._by_key[key] = worker
            with contextlib.suppress(OSError):  # if the worker died, the reader reports it
                worker.conn.send_bytes(data)

    def _end_task(self, worker: _Worker) -> None:
        """The worker's attempt is over: give back what it held."""
        if worker.task is not None and worker.task.resources:
            self._budget.give_back(worker.task.resources)
        worker.task = None

    def _retire(self, worker: _Worker) -> None:
        worker.retiring = True
        self._end_task(worker)
        worker.kill_at = time.monotonic() + KILL_GRACE_S
        self._workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        self._retiring.append(worker)
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGTERM)

    def _broken_failure(self, key: AttemptKey) -> StepFailed:
        info = ErrorInfo(
            "WorkerLost", f"no worker process can start: {self._broken}", platform=True
        )
        return StepFailed(key, time.time(), info)

    # -- the reader thread -----------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"")

    def _deliver_later(self, event: ExecutorEvent) -> None:
        with self._lock:
            self._later.append(event)
        self._wake()

    def _read_loop(self) -> None:
        next_check = time.monotonic() + HEALTH_CHECK_S
        while not self._closed:
            with self._lock:
                conns: dict[Any, _Worker] = {w.conn: w for w in self._workers + self._retiring}
            try:
                ready = wait([self._wake_r, *conns], timeout=HEALTH_CHECK_S)
            except (OSError, ValueError):  # a connection was closed under us: shutting down
                if self._closed:
                    return
                continue
            for conn in ready:
                if conn is self._wake_r:
                    with contextlib.suppress(OSError, EOFError):
                        self._wake_r.recv_bytes()
                    continue
                self._receive(conns[conn])
            self._flush_later()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + HEALTH_CHECK_S
                self._health_check()

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._on_exit(worker)
            return
        except Exception:  # a garbled message: this worker cannot be trusted any more
            _log.exception("unreadable message from worker %d; killing it", worker.pid)
            self._on_exit(worker)
            return
        kind, body = message
        if kind == "events":
            self._on_events(worker, body)
        elif kind == "group":
            pgid, running = body
            with self._lock:
                (worker.groups.add if running else worker.groups.discard)(pgid)
        elif kind == "ready":
            self._on_ready(worker)

    def _on_ready(self, worker: _Worker) -> None:
        with self._lock:
            worker.ready = True
            self._start_failures = 0
            if all(w.ready for w in self._workers):
                self._ready.set()

    def _on_events(self, worker: _Worker, events: list[ExecutorEvent]) -> None:
        forward: list[ExecutorEvent] = []
        with self._lock:
            task = worker.task
            if task is None or worker.retiring:
                return
            for event in events:
                if event.key != task.key:
                    continue
                forward.append(event)
                if isinstance(event, StepSucceeded | StepFailed):
                    self._by_key.pop(task.key, None)
                    self._end_task(worker)
                    self._idle.append(worker)
                    self._dispatch()
                    break
        self._emit(forward)

    def _on_exit(self, worker: _Worker) -> None:
        worker.kill_groups()  # whatever the worker started dies with it
        code = worker.proc.wait()
        with contextlib.suppress(OSError):
            worker.conn.close()
        lost: list[ExecutorEvent] = []
        with self._lock:
            if worker.retiring:
                self._retiring.remove(worker)
                return
            if worker not in self._workers:
                return
            self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            task = worker.task
            self._end_task(worker)
            if task is not None:
                self._by_key.pop(task.key, None)
                message = (
                    f"worker process {worker.pid} {_exit_description(code)} "
                    f"while running step {task.step_path}"
                )
                lost.append(
                    StepFailed(
                        task.key, time.time(), ErrorInfo("WorkerLost", message, platform=True)
                    )
                )
            if not self._closed:
                self._replace_lost(worker, code)
        self._emit(lost)

    def _replace_lost(self, worker: _Worker, code: int | None) -> None:
        if not worker.ready:
            self._start_failures += 1
            if self._start_failures >= MAX_START_FAILURES:
                self._broken = f"worker {worker.pid} {_exit_description(code)} before it was ready"
                self._later.extend(self._broken_failure(key) for key in self._pending)
                self._pending.clear()
                self._ready.set()
                return
        self._add_worker()
        self._dispatch()

    def _health_check(self) -> None:
        now = time.monotonic()
        with self._lock:
            overdue = [w for w in self._retiring if w.kill_at <= now]
            silent = [w for w in self._workers if w.proc.poll() is not None]
            if not self._ready.is_set() and not self._wait_ready and now >= self._ready_by:
                self._not_ready_in_time()
        for worker in overdue:
            worker.kill_groups()
        for worker in silent:  # died, but a grandchild holds its socket open
            self._on_exit(worker)

    def _not_ready_in_time(self) -> None:
        """Workers started without waiting are still not ready: the pool is broken; fail what
        waits for them (inside the lock)."""
        self._broken = f"not ready within {self._start_timeout_s} s"
        self._later.extend(self._broken_failure(key) for key in self._pending)
        self._pending.clear()
        for worker in self._workers:
            if not worker.ready and worker.task is not None:
                self._by_key.pop(worker.task.key, None)
                self._later.append(self._broken_failure(worker.task.key))
                self._end_task(worker)
        self._ready.set()

    def _flush_later(self) -> None:
        with self._lock:
            later, self._later = self._later, []
        self._emit(later)

    def _emit(self, events: list[ExecutorEvent]) -> None:
        sink = self._sink
        if sink is None:
            return
        for event in events:
            try:
                sink(event)
            except Exception:  # the engine's problem; the reader must keep running
                _log.exception("event sink failed on %r", event)

"""The ``process`` executor (the default): a pool of warm worker processes on this machine.

Each worker is a fresh interpreter (spawned, never forked: the engine has threads) that runs
one attempt at a time through :func:`~kaon.executors.runtime.run_task` and stays warm between
attempts, so a module a step imports is loaded once per worker. Workers are started with
``python -P -c ...`` rather than :mod:`multiprocessing`'s spawn so that the user's ``__main__``
script is never re-imported in them; the parent's ``sys.path`` and working directory are sent
over. Requests and events travel over one socket pair per worker
(:class:`multiprocessing.connection.Connection`); one reader thread in the parent waits on all
of them and delivers events to the sink.

* Dispatch is batched: a worker is sent up to :data:`WORKER_DEPTH` attempts (several per
  message) and runs them in order, reporting their events in batches (see
  :mod:`kaon.executors._worker`), so that a fan-out of short steps costs one message, and one
  engine commit, per batch rather than per attempt. The executor therefore accepts
  :attr:`ProcessExecutor.prefetch` attempts beyond its capacity. An attempt's real start is its
  ``StepStarted`` event, sent by the worker when it begins. A worker whose attempt runs longer
  than :data:`~kaon.executors._worker.GIVE_BACK_S` hands the attempts queued behind it back,
  and gets no more until that attempt ends, so a long step never holds short ones hostage.
* A worker that dies while running an attempt (segfault, ``os._exit``, OOM kill) yields
  ``StepFailed`` with ``platform=True`` and type ``WorkerLost`` for that attempt alone; the
  attempts queued behind it run on other workers, and a replacement is started. When the
  parent cannot tell which of several attempts was running (the worker died before reporting
  it), they are sent again one per worker, so that only the culprit fails.
* :meth:`ProcessExecutor.cancel` terminates the worker running the attempt (SIGTERM, which
  kills its shell commands, then SIGKILL of its process group after
  :data:`KILL_GRACE_S`) and starts a replacement. No event is delivered for the attempt after
  ``cancel`` returns, except one the reader thread was already delivering.
* Workers exit when the parent dies, even by SIGKILL (see :mod:`kaon.executors._worker`);
  one whose step's C code holds the GIL (so that it cannot notice) is killed by the reaper
  (:mod:`kaon.executors._reaper`), started with the first worker.
* When an attempt submitted alone ends with nothing else in flight (a chain of steps), the
  reader thread runs the engine's next turn itself (``EventInbox.settle`` in
  :mod:`kaon.executors.base`) instead of waking the engine's thread: one thread hand-off
  fewer per step. Meanwhile the reader and that worker wait on one core, so that neither
  wakes the other across cores (:mod:`kaon.executors._affinity`); the step's own code runs
  free to use every core.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe
from typing import Any, ClassVar

from kaon.errors import ConfigurationError, InvalidActionError, SystemFailure
from kaon.executors import _affinity
from kaon.executors._descendants import kill_descendants
from kaon.executors._lease_fence import LEASE_EXPIRED_EXIT, LeaseDeadline
from kaon.executors._reaper import Reaper
from kaon.executors.admission import HostBudget
from kaon.executors.base import EventInbox, EventSink, Executor, TaskRequest
from kaon.executors.runtime import error_type_name
from kaon.executors.sandbox import SandboxSpec
from kaon.model.events import (
    AttemptKey,
    ErrorInfo,
    ExecutorEvent,
    StepFailed,
    StepStarted,
    StepSucceeded,
)
from kaon.steptypes.scratch import sweep_abandoned

KILL_GRACE_S = 0.5  # between SIGTERM and SIGKILL of a cancelled attempt's worker
SANDBOX_EXIT_S = 2.0  # for bubblewrap to pass on the status of a sandboxed worker that ended
HEALTH_CHECK_S = 0.5  # how often the reader looks for workers that died without an EOF
MAX_START_FAILURES = 3  # workers in a row that die before ready: the pool is broken
WORKER_DEPTH = 16  # attempts sent ahead to one worker (it runs them one by one)
_log = logging.getLogger(__name__)
_WORKER_CODE = "from kaon.executors._worker import main; main()"
READ_SIZE = 1 << 16  # bytes the reader takes from a worker's pipe at once
# multiprocessing.Connection's framing, which the workers send: a big-endian length, or -1
# and an 8-byte length for a message of 2 GiB or more.
_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")


def take_messages(buffer: bytearray) -> list[bytes]:
    """The whole messages at the head of ``buffer`` (bytes read from a worker's pipe), taken
    out of it; a message not wholly read yet stays for the next read."""
    found: list[bytes] = []
    start, end = 0, len(buffer)
    while end - start >= _LENGTH.size:
        (size,) = _LENGTH.unpack_from(buffer, start)
        head = _LENGTH.size
        if size == -1:
            if end - start < head + _LONG_LENGTH.size:
                break
            (size,) = _LONG_LENGTH.unpack_from(buffer, start + head)
            head += _LONG_LENGTH.size
        if end - start - head < size:
            break
        found.append(bytes(buffer[start + head : start + head + size]))
        start += head + size
    if start:
        del buffer[:start]
    return found


@dataclass(eq=False)
class _Worker:
    """The parent's view of one worker process."""

    proc: subprocess.Popen[bytes]
    conn: Connection
    # Attempts sent and not finished, in the order the worker runs them, with their pickles.
    tasks: OrderedDict[AttemptKey, tuple[TaskRequest, bytes]] = field(default_factory=OrderedDict)
    last_started: AttemptKey | None = None  # the latest StepStarted received from it
    slow: bool = False  # handed attempts back: gets no more until its running attempt ends
    solo: bool = False  # runs a suspect of a lost worker: gets nothing else meanwhile
    ready: bool = False
    retiring: bool = False
    kill_at: float = 0.0
    groups: set[int] = field(default_factory=set)  # process groups of its shell commands
    received: bytearray = field(default_factory=bytearray)  # read, not yet a whole message

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
    if code == LEASE_EXPIRED_EXIT:
        return "stopped its attempt: the engine's lease on the run ran out (engine paused?)"
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
    it returns once one worker is spawned, so it starts while the engine plans its first
    turn: attempts submitted meanwhile wait in the workers' pipes, and workers that cannot start
    (or are not ready in time) fail them as ``WorkerLost`` platform failures. The other workers
    are started as attempts come to run at the same time, one per attempt up to ``workers``.
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
        self._by_key: dict[AttemptKey, _Worker] = {}
        self._pending: OrderedDict[AttemptKey, tuple[TaskRequest, bytes]] = OrderedDict()
        self._suspects: set[AttemptKey] = set()  # maybe crashed a worker: sent alone
        self._later: list[ExecutorEvent] = []
        self._sink: EventSink | None = None
        self._closed = False
        self._start_failures = 0
        self._broken = ""
        self._ready = threading.Event()
        self._wake_r, self._wake_w = Pipe(duplex=False)
        self._reader: threading.Thread | None = None
        self._deadline = LeaseDeadline()  # the engine's lease deadline, shared with workers
        self._reaper = Reaper()  # kills a worker stuck in C code when this process dies
        self._solo: AttemptKey | None = None  # submitted alone, with nothing else to run
        # A chain's two ends wait on one core (see kaon.executors._affinity): the worker told
        # it, and that core.
        self._placed: tuple[_Worker, int] | None = None

    @property
    def capacity(self) -> int:
        """How many attempts run at once: the number of worker processes."""
        return self._size

    @property
    def prefetch(self) -> int:
        """Attempts accepted beyond the capacity: queued in the workers, ready to run."""
        return self._size * (WORKER_DEPTH - 1)

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
            # Waiting for the pool: every worker now. Not waiting (the CLI's ``kaon run``): one
            # now (or the one warm() spawned), the others as attempts come to run at once (see
            # _grow): a chain or a one-step run never pays for workers it cannot use.
            while len(self._workers) < (self._size if self._wait_ready else 1):
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

    def warm(self) -> None:
        """Spawn the first worker now, before :meth:`start`: a fresh interpreter takes about
        0.1 s to import what attempts need, time the caller spends loading the workflow and
        recording its run (``kaon run``). Its ready message waits in its pipe for the reader
        thread :meth:`start` begins; a worker that dies meanwhile is found then."""
        from kaon.executors import _worker

        if _worker.RUNNING_IN_WORKER:
            return  # start() explains why a worker cannot start a pool
        with self._lock:
            if not self._closed and not self._workers:
                self._add_worker()

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
            if worker.tasks:
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
        self._reaper.close()
        self._wake_r.close()
        self._wake_w.close()
        self._deadline.close()

    # -- tasks -----------------------------------------------------------------------------

    def submit(self, request: TaskRequest) -> None:
        """Send ``request`` to a worker, or queue it until one has room. Never blocks.

        A request that cannot be pickled fails (not a platform failure) with its reason.
        """
        self.submit_many([request])

    def submit_many(self, requests: list[TaskRequest]) -> None:
        """Submit ``requests`` in order, sending each worker its share in one message."""
        if self._sink is None:
            raise SystemFailure("process executor: submit() before start()")
        pickled: list[tuple[TaskRequest, bytes]] = []
        for request in requests:
            try:
                pickled.append((request, pickle.dumps(request, pickle.HIGHEST_PROTOCOL)))
            except Exception as exc:
                message = (
                    f"the request for step {request.step_path} cannot be sent to a worker: {exc}"
                )
                info = ErrorInfo(error_type_name(exc), message)
                self._deliver_later(StepFailed(request.key, time.time(), info))
        with self._lock:
            if self._closed:
                raise SystemFailure("process executor: submit() after shutdown()")
            idle = not self._pending and not any(w.tasks for w in self._workers)
            # A chain's next step (alone, with nothing else to run): when it ends, the reader
            # runs the engine's turn (see _on_events). A fan-out's ends wake the engine.
            self._solo = pickled[0][0].key if idle and len(pickled) == 1 else None
            for request, data in pickled:
                refusal = self._budget.refusal(request.resources) if request.resources else None
                if self._broken:
                    self._later.append(self._broken_failure(request.key))
                elif refusal is not None:
                    info = ErrorInfo("Unschedulable", f"step {request.step_path}: {refusal}")
                    self._later.append(StepFailed(request.key, time.time(), info))
                else:
                    self._pending[request.key] = (request, data)
            self._dispatch()
        if self._later:
            self._wake()

    def cancel(self, key: AttemptKey) -> None:
        """Kill the attempt: drop it if queued here or in its worker, else terminate the worker
        running it (the attempts queued behind it go to other workers) and replace it."""
        with self._lock:
            self._suspects.discard(key)
            if self._pending.pop(key, None) is not None:
                return
            worker = self._by_key.pop(key, None)
            if worker is None or self._closed:
                return
            first = next(iter(worker.tasks)) == key
            del worker.tasks[key]
            if first or worker.last_started == key:  # running, or may be: stop the worker
                self._retire(worker)
                self._add_worker()
                self._dispatch()
            else:  # queued in the worker: it drops it, or says it is running after all
                with contextlib.suppress(OSError):
                    worker.conn.send_bytes(pickle.dumps(("cancel", key), pickle.HIGHEST_PROTOCOL))
        self._wake()

    # -- inside the lock -------------------------------------------------------------------

    def fence(self, deadline: float | None) -> None:
        """Publish the lease deadline to every worker (see :mod:`kaon.executors._lease_fence`)."""
        self._deadline.set(deadline)

    def _add_worker(self) -> None:
        parent_conn, child_conn = Pipe(duplex=True)
        fd = child_conn.fileno()
        lease_fd = self._deadline.fd
        sandbox = self._sandbox
        # In a sandbox the worker cannot see its parent (a new PID namespace): bwrap's
        # --die-with-parent ends it with the parent instead of the worker's own check.
        argv = [sys.executable, "-P", "-c", _WORKER_CODE, str(fd), str(os.getpid())]
        if sandbox is not None:
            argv = sandbox.argv([*argv[:-1], "0"], cwd=os.getcwd())
        self._reaper.prepare()  # running before the worker is (see Reaper.prepare)
        proc = subprocess.Popen(
            argv,
            pass_fds=[fd, lease_fd],
            stdin=subprocess.DEVNULL,
            process_group=0,
            env=sandbox.environment() if sandbox is not None else None,
        )
        self._reaper.worker_changed(proc.pid, True)
        child_conn.close()
        worker = _Worker(proc, parent_conn)
        # A worker that died at once (a sandbox that cannot start) breaks the pipe: the health
        # check counts it as lost.
        with contextlib.suppress(OSError):
            parent_conn.send({"sys_path": list(sys.path), "cwd": os.getcwd(), "lease_fd": lease_fd})
        self._workers.append(worker)

    def _dispatch(self) -> None:
        """Send pending attempts to the least loaded workers with room, one message each,
        oldest first. Attempts that ask for ``resources`` hold them from the moment they are
        sent to a worker (queued there or running) until they end: one whose resources are not
        free now waits, and younger ones that fit go first."""
        if not self._pending:
            return  # a chain's step ended: nothing waits to be sent
        self._grow()
        batches: dict[_Worker, list[bytes]] = {}
        budget: HostBudget | None = None  # counted at the first attempt that needs it
        for key in list(self._pending):
            request = self._pending[key][0]
            if request.resources:
                if budget is None:
                    budget = self._held()
                if not budget.fits(request.resources):
                    continue
            worker = self._pick(key in self._suspects)
            if worker is None:
                break
            if request.resources:
                assert budget is not None
                budget.take(request.resources)
            request, data = self._pending.pop(key)
            worker.tasks[key] = (request, data)
            worker.solo = key in self._suspects
            self._by_key[key] = worker
            batches.setdefault(worker, []).append(data)
        if _affinity.ALL is not None and batches:
            self._place(batches)
        for worker, parts in batches.items():
            with contextlib.suppress(OSError):  # if the worker died, the reader reports it
                worker.conn.send_bytes(b"".join(parts))

    def _place(self, batches: dict[_Worker, list[bytes]]) -> None:
        """When the reader sends the one attempt in flight (it ran the turn of a chain's
        step, see :meth:`EventInbox.settle <kaon.executors.base.EventInbox.settle>`), it and
        that worker wait on the reader's core; otherwise on any core (see
        :mod:`kaon.executors._affinity`). The worker is told in front of its batch.

        Only the reader's sends count: a turn on the engine's thread is not a ping-pong
        between the reader and one worker (two chains side by side, say), and pinning there
        moved the reader back and forth."""
        placed: tuple[_Worker, int] | None = None
        if (
            len(self._by_key) == 1
            and not self._pending
            and threading.current_thread() is self._reader
        ):
            [worker] = batches
            if self._placed is not None and worker is self._placed[0]:
                return  # the chain goes on where it was
            cpu = _affinity.current_cpu()
            placed = (worker, cpu) if cpu is not None else None
        if self._placed is not None:  # another worker now, or none: let the last one go
            self._tell(self._placed[0], None, batches)
        if placed is not None:
            self._tell(*placed, batches)
        self._placed = placed

    @staticmethod
    def _tell(worker: _Worker, cpu: int | None, batches: dict[_Worker, list[bytes]]) -> None:
        message = pickle.dumps(("cpu", cpu), pickle.HIGHEST_PROTOCOL)
        if worker in batches:
            batches[worker].insert(0, message)
        else:
            with contextlib.suppress(OSError):  # a worker that died: the reader reports it
                worker.conn.send_bytes(message)

    def _held(self) -> HostBudget:
        """The pool's budget with the resources of every attempt its workers hold taken."""
        budget = self._budget
        budget.clear()
        for worker in self._workers:
            for task, _ in worker.tasks.values():
                if task.resources:
                    budget.take(task.resources)
        return budget

    def _grow(self) -> None:
        """Start workers, up to the pool's size, until there is one per attempt to run
        (queued here or held by a worker). A pool started without waiting begins with one."""
        if self._broken or self._closed or len(self._workers) >= self._size:
            return  # the whole pool runs: nothing to count on this path
        wanted = len(self._pending) + sum(len(w.tasks) for w in self._workers)
        while len(self._workers) < min(wanted, self._size):
            self._add_worker()

    def _pick(self, suspect: bool) -> _Worker | None:
        """The worker to send the next attempt to: the least loaded one with room. A slow
        worker, or one that runs a suspect, has room only when empty; a suspect needs an
        empty worker."""
        best: _Worker | None = None
        for worker in self._workers:
            load = len(worker.tasks)
            limit = 1 if (suspect or worker.slow or worker.solo) else WORKER_DEPTH
            if load < limit and (best is None or load < len(best.tasks)):
                best = worker
        return best

    def _requeue(self, items: list[tuple[AttemptKey, tuple[TaskRequest, bytes]]]) -> None:
        """Put attempts back at the head of the queue, in order (inside the lock)."""
        for key, item in reversed(items):
            self._by_key.pop(key, None)
            self._pending[key] = item
            self._pending.move_to_end(key, last=False)

    def _retire(self, worker: _Worker) -> None:
        """Terminate a worker; the attempts it still holds go back to the queue."""
        worker.retiring = True
        self._requeue(list(worker.tasks.items()))
        worker.tasks.clear()
        worker.kill_at = time.monotonic() + KILL_GRACE_S
        self._workers.remove(worker)
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
        """Receive the workers' messages until shutdown. The selector is kept while the
        pool stays the same (a chain wakes this thread once per step: building one per wait
        cost about 4 µs of every step) and made anew when a worker starts or goes."""
        next_check = time.monotonic() + HEALTH_CHECK_S
        selector: selectors.BaseSelector | None = None
        watched: list[_Worker] = []
        placement = _affinity.Placement()  # pinned while it waits on a chain's step
        try:
            while not self._closed:
                with self._lock:
                    pool = self._workers + self._retiring
                try:
                    if selector is None or pool != watched:
                        if selector is not None:
                            selector.close()
                        selector, watched = None, pool
                        selector = self._selector(pool)
                    placed = self._placed
                    placement.wait_on(placed[1] if placed is not None else None)
                    ready = selector.select(HEALTH_CHECK_S)
                    placement.release()  # what it runs (the engine's turn) may start threads
                except (OSError, ValueError):  # a connection was closed under us
                    if selector is not None:
                        selector.close()
                    selector = None  # the pool changed meanwhile: watch it anew
                    if self._closed:
                        return
                    continue
                for key, _ in ready:
                    worker: _Worker | None = key.data
                    if worker is None:
                        with contextlib.suppress(OSError, EOFError):
                            self._wake_r.recv_bytes()
                        continue
                    self._receive(worker)
                self._flush_later()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + HEALTH_CHECK_S
                    self._health_check()
        finally:
            if selector is not None:
                selector.close()

    def _selector(self, pool: list[_Worker]) -> selectors.BaseSelector:
        """A selector watching the wake-up pipe (data None) and every worker of ``pool``."""
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            for worker in pool:
                selector.register(worker.conn, selectors.EVENT_READ, worker)
        except BaseException:
            selector.close()
            raise
        return selector

    def _receive(self, worker: _Worker) -> None:
        """Read what the worker's pipe holds (one system call, however many messages: a
        multiprocessing ``recv`` made two per message) and handle each whole message."""
        try:
            data = os.read(worker.conn.fileno(), READ_SIZE)
        except OSError:
            data = b""
        if not data:  # the worker's end closed: it exited, or is about to
            self._on_exit(worker)
            return
        worker.received += data
        for frame in take_messages(worker.received):
            try:
                message = pickle.loads(frame)
                kind, body = message
            except Exception:  # a garbled message: this worker cannot be trusted any more
                _log.exception("unreadable message from worker %d; killing it", worker.pid)
                self._on_exit(worker)
                return
            self._handle(worker, kind, body)

    def _handle(self, worker: _Worker, kind: str, body: Any) -> None:
        if kind == "events":
            self._on_events(worker, body)
        elif kind == "group":
            pgid, running = body
            with self._lock:
                (worker.groups.add if running else worker.groups.discard)(pgid)
        elif kind == "ready":
            self._on_ready(worker)
        elif kind == "returned":
            self._on_returned(worker, body)
        elif kind == "running":
            self._on_cancelled_running(worker, body)

    def _on_returned(self, worker: _Worker, keys: list[AttemptKey]) -> None:
        """The worker handed back attempts queued behind a slow one: send them elsewhere."""
        with self._lock:
            if worker.retiring:
                return
            back = [(key, worker.tasks.pop(key)) for key in keys if key in worker.tasks]
            self._requeue(back)
            worker.slow = bool(worker.tasks)
            self._dispatch()

    def _on_cancelled_running(self, worker: _Worker, key: AttemptKey) -> None:
        """A cancelled attempt, believed queued, was running: terminate its worker."""
        with self._lock:
            if worker.retiring or key in worker.tasks or self._closed:
                return
            self._retire(worker)
            self._add_worker()
            self._dispatch()

    def _on_ready(self, worker: _Worker) -> None:
        with self._lock:
            worker.ready = True
            self._start_failures = 0
            if all(w.ready for w in self._workers):
                self._ready.set()

    def _on_events(self, worker: _Worker, events: list[ExecutorEvent]) -> None:
        forward: list[ExecutorEvent] = []
        finished = False
        with self._lock:
            if worker.retiring:
                return
            for event in events:
                if isinstance(event, StepStarted):
                    worker.last_started = event.key
                if event.key not in worker.tasks:
                    continue  # cancelled, or handed back
                forward.append(event)
                if isinstance(event, StepSucceeded | StepFailed):
                    del worker.tasks[event.key]
                    self._by_key.pop(event.key, None)
                    self._suspects.discard(event.key)
                    if event.key == worker.last_started:
                        worker.slow = False
                    worker.solo = False
                    finished = True
            if finished:
                self._dispatch()
            # A chain's step ended (submitted alone, and nothing else in flight): this thread
            # runs the engine's turn itself (see EventInbox.settle), sparing the hand-off
            # to the engine's thread and back.
            solo = self._solo is not None and any(e.key == self._solo for e in forward)
            alone = solo and not self._pending and not any(w.tasks for w in self._workers)
            if solo:
                self._solo = None
        if alone and isinstance(self._sink, EventInbox):
            self._sink.settle(forward)
        else:
            self._emit(forward)

    def _on_exit(self, worker: _Worker) -> None:
        if self._sandbox is not None:
            # The process is bubblewrap, which passes the worker's status on once the worker
            # has ended (the worker's PID namespace, and all it started, end with it): let it,
            # rather than kill it first and read its SIGKILL as the worker's end.
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=SANDBOX_EXIT_S)
        worker.kill_groups()  # whatever the worker started dies with it
        code = worker.proc.wait()
        self._reaper.worker_changed(worker.pid, False)
        if self._sandbox is None:  # a sandboxed worker's scratch was in its private /tmp
            sweep_abandoned(owner=worker.pid)  # what a worker killed outright left there
        if self._sandbox is not None and code > 128:
            code = 128 - code  # bubblewrap's 128 + N: the worker was killed by signal N
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
            culprit = self._blame(worker)
            if culprit is not None:
                message = (
                    f"worker process {worker.pid} {_exit_description(code)} "
                    f"while running step {culprit.step_path}"
                )
                lost.append(
                    StepFailed(
                        culprit.key, time.time(), ErrorInfo("WorkerLost", message, platform=True)
                    )
                )
            if not self._closed:
                self._replace_lost(worker, code)
        self._emit(lost)

    def _blame(self, worker: _Worker) -> TaskRequest | None:
        """Which attempt a lost worker was running, if the parent can tell; the others it held
        go back to the queue (inside the lock).

        A worker runs its attempts in order and reports events in order, but in batches: every
        attempt before the latest one reported started has finished, while that one and those
        after it may have run, finished unreported, crashed the worker or never started. A
        single candidate is the culprit; several are each sent again alone (suspects), so that
        only the culprit fails."""
        held = list(worker.tasks.items())
        worker.tasks.clear()
        for key, _ in held:
            self._by_key.pop(key, None)
        keys = [key for key, _ in held]
        first = keys.index(worker.last_started) if worker.last_started in keys else 0
        done, candidates = held[:first], held[first:]
        if len(candidates) == 1:
            self._requeue(done)
            self._suspects.discard(candidates[0][0])
            return candidates[0][1][0]
        self._suspects.update(key for key, _ in candidates)
        self._requeue(done + candidates)
        return None

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
            if not worker.ready:
                for key in worker.tasks:
                    self._by_key.pop(key, None)
                    self._later.append(self._broken_failure(key))
                worker.tasks.clear()
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

"""The ``inline`` executor: step attempts run in a pool of threads inside the engine's process.

The fastest executor (no serialization, no process hop), and the least isolated: a step that
crashes the interpreter takes the engine with it, and cancellation is cooperative. Cancelling
an attempt marks it cancelled: if it has not started it never runs; if it is running, every
event it reports from then on is dropped (no ``StepFailed`` follows), and a shell step's
command is killed. Python code already running keeps running until it returns; its thread
only then becomes free again, and until then it is not counted in :attr:`InlineExecutor.capacity`
(a timed-out attempt does not free its slot while its thread is still busy).

Hand-off: attempts wait in a backlog that busy threads drain before they go idle; each idle
thread waits on a lock of its own. A submit wakes one idle thread, the one that became idle
last, unless one woken already has not taken its attempt yet; a thread that takes an
attempt wakes the next idle one while more wait (a burst wakes threads one after another,
as a shared queue's waiters are; all of them at once would fight for the GIL). In a chain
of steps the same thread runs every step (its caches warm), and only it wakes: a queue
shared by every idle thread woke them in turn (measured on W1: 4.8 voluntary context
switches per step instead of 2.7).

Turns on the step's thread: when the engine's sink is an
:class:`~kaon.executors.base.EventInbox`, a thread reports its attempt's events quietly, and
when the attempt was submitted alone and ended with nothing else running or queued (a chain
of steps), it runs the engine's next turn itself (``EventInbox.settle``): the turn commits the
step's end, submits the next step, and the same thread runs it. No thread is woken per step
(measured on W1: 0.37 -> 0.26 ms of CPU per chain step). A fan-out's ends wake the engine's
thread instead, which takes many in one turn (one commit).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from typing import ClassVar

from kaon.errors import ConfigurationError, SystemFailure
from kaon.executors._reaper import REAPED_STEP_TYPES, Reaper
from kaon.executors.base import CancelFlag, EventInbox, EventSink, Executor, TaskRequest
from kaon.executors.runtime import run_task
from kaon.model.events import AttemptKey, ExecutorEvent
from kaon.steptypes._observers import observers
from kaon.steptypes.scratch import sweep_abandoned

PREFETCH_PER_THREAD = 4  # attempts queued per free thread (see InlineExecutor.prefetch)
STOP_WAIT_S = 5.0  # at shutdown, for the stopped attempts' commands and containers to be gone


def _wake_lock() -> threading.Lock:
    """An idle thread's wake-up: held while it waits, released once to wake it."""
    lock = threading.Lock()
    lock.acquire()
    return lock


class InlineExecutor(Executor):
    """Runs attempts with :func:`~kaon.executors.runtime.run_task` on ``workers`` threads.

    ``workers`` defaults to twice the CPU count; it is also the capacity.
    """

    name: ClassVar[str] = "inline"

    def __init__(self, workers: int | None = None) -> None:
        count = workers if workers is not None else (os.cpu_count() or 1) * 2
        if count < 1:
            raise ConfigurationError(f"inline executor: workers must be >= 1, got {count}")
        self._workers = count
        self._backlog: deque[TaskRequest] = deque()  # attempts no thread has taken yet
        self._idle: list[threading.Lock] = []  # idle threads' wake-ups; the last idle is last
        self._waking = False  # a woken thread has not taken an attempt yet
        self._settling = 0  # threads that ran the engine's turn and look at the backlog next
        self._solo: AttemptKey | None = None  # submitted alone, with nothing else to run
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._active: dict[AttemptKey, CancelFlag] = {}
        self._running: dict[AttemptKey, CancelFlag] = {}  # attempts a thread is running
        self._abandoned: set[AttemptKey] = set()  # cancelled, but a thread still runs them
        self._sink: EventSink | None = None
        self._reaper: Reaper | None = None  # stops this process's commands if it is killed

    @property
    def capacity(self) -> int:
        """How many attempts may run at once: the threads not still busy with a cancelled
        attempt (whose Python code cannot be stopped)."""
        return self._workers - len(self._abandoned)

    @property
    def in_engine_process(self) -> bool:
        """True: attempts run on the engine's threads."""
        return True

    @property
    def prefetch(self) -> int:
        """Attempts accepted beyond :attr:`capacity`, queued for the next free thread: the
        engine then starts (and commits) a fan-out's steps by the dozen, not one per turn. A
        queued attempt's timeout counts from its ``StepStarted``; none are queued once every
        thread is held by a cancelled attempt (capacity 0)."""
        return PREFETCH_PER_THREAD * self.capacity

    def start(self, sink: EventSink) -> None:
        """Start the threads; events go to ``sink`` from those threads."""
        if self._sink is not None:
            raise SystemFailure("inline executor already started")
        self._sink = sink
        if observers.group is None and observers.container is None:  # not a worker's
            self._reaper = Reaper()
            observers.group = self._reaper.group_changed
            observers.container = self._reaper.container_changed
            # What an engine killed outright left (its inline steps' scratch root): a run of
            # Python steps alone would never make a root of its own, and so never sweep.
            sweep_abandoned()
        for number in range(self._workers):
            thread = threading.Thread(
                target=self._serve, args=(_wake_lock(),), name=f"kaon-inline-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, request: TaskRequest) -> None:
        """Queue ``request`` for the next free thread (waking the one idle last). Never
        blocks."""
        if self._sink is None:
            raise SystemFailure("inline executor: submit() before start()")
        if self._reaper is not None and request.step_type in REAPED_STEP_TYPES:
            self._reaper.prepare()  # before the command exists (see Reaper.prepare)
        with self._lock:
            if not self._running and not self._backlog:
                self._solo = request.key  # a chain's next step: nothing else to run
            self._active[request.key] = CancelFlag()
            self._backlog.append(request)
            wake = self._wake_one()
        if wake is not None:
            wake.release()

    def submit_many(self, requests: list[TaskRequest]) -> None:
        """Queue ``requests`` in order (see :meth:`submit`)."""
        for request in requests:
            self.submit(request)
        if len(requests) > 1:
            with self._lock:
                self._solo = None  # a fan-out: its ends wake the engine, which batches them

    def _wake_one(self) -> threading.Lock | None:
        """(Holding the lock.) The wake-up of the idle thread to run the backlog: the last one
        idle, unless one woken before has not taken its attempt yet (it wakes the next)."""
        if self._waking or self._settling or not self._idle or not self._backlog:
            return None
        self._waking = True
        return self._idle.pop()

    def cancel(self, key: AttemptKey) -> None:
        """Drop the attempt's events from now on; it does not start if it has not yet."""
        with self._lock:
            flag = self._active.pop(key, None)
            if flag is not None and not flag.is_set() and self._running.get(key) is flag:
                self._abandoned.add(key)
        if flag is not None:
            flag.set()

    def shutdown(self) -> None:
        """Stop the threads once they finish their current attempt; queued attempts are dropped.

        Does not wait for running Python code (it cannot be stopped): its events are dropped.
        It does wait, up to :data:`STOP_WAIT_S`, while the stopped attempts' shell commands
        are killed and their containers removed by their steps: the engine's process often
        exits right after (``kaon kill``, a ``fail_fast`` failure), and a command runs in a
        session of its own, a container under Podman's monitor; neither would end with it.
        """
        with self._lock:
            flags = list(self._active.values())
            self._active.clear()
            self._backlog.clear()
            self._stopping = True  # a busy thread stops when its attempt returns
            idle, self._idle = self._idle, []
            running = bool(self._running)
        for flag in flags:
            flag.set()
        for wake in idle:
            wake.release()
        self._threads.clear()
        if running:
            _wait_for_commands(time.monotonic() + STOP_WAIT_S)
        reaper, self._reaper = self._reaper, None
        if reaper is not None:  # a clean end: nothing for it to stop
            if observers.group == reaper.group_changed:
                observers.group = None
            if observers.container == reaper.container_changed:
                observers.container = None
            reaper.close()

    def _next(self, wake: threading.Lock, settled: bool = False) -> TaskRequest | None:
        """The thread's next attempt, the oldest queued (waiting idle, on ``wake``, until
        there is one); None when the executor shuts down. ``settled``: the thread ran the
        engine's turn after its last attempt (see _serve)."""
        woken = False
        while True:
            with self._lock:
                if settled:
                    settled = False
                    self._settling -= 1
                if woken:
                    self._waking = False
                if self._stopping:
                    return None
                if self._backlog:
                    request = self._backlog.popleft()
                    more = self._wake_one()
                    break
                self._idle.append(wake)
            wake.acquire()
            woken = True
        if more is not None:
            more.release()
        return request

    def _serve(self, wake: threading.Lock) -> None:
        sink = self._sink
        assert sink is not None
        inbox = sink if isinstance(sink, EventInbox) else None
        quiet = sink if inbox is None else inbox.report
        settled = False
        while True:
            request = self._next(wake, settled)
            settled = False
            if request is None:
                return
            with self._lock:
                flag = self._active.get(request.key)
                if flag is None or flag.is_set():
                    continue  # cancelled before it started
                self._running[request.key] = flag

            def emit(event: ExecutorEvent, flag: CancelFlag = flag) -> None:
                if not flag.is_set():
                    quiet(event)

            run_task(request, emit, cancel=flag)
            with self._lock:
                del self._running[request.key]
                self._abandoned.discard(request.key)
                if self._active.get(request.key) is flag:
                    del self._active[request.key]
                # A chain's step (submitted alone, and still alone: nothing else running
                # or queued): this thread runs the engine's turn itself and looks at the
                # backlog next; the first attempt that turn submits is its own, no idle
                # thread is woken for it. Otherwise (a fan-out) the engine's thread is
                # woken, and takes the ends of several attempts in one turn (one commit).
                solo = self._solo == request.key
                if solo:
                    self._solo = None
                alone = solo and inbox is not None and not self._running and not self._backlog
                if alone:
                    self._settling += 1
            if alone:
                assert inbox is not None
                inbox.settle()  # the engine's turn, on this thread when the engine is free
                settled = True
            elif inbox is not None:
                inbox.ring()


def _wait_for_commands(deadline: float) -> None:
    """Wait until no shell command or container of this process is left (their steps, told
    to stop, kill and remove them), or until ``deadline``."""
    from kaon.steptypes.shell import live_process_groups

    while time.monotonic() < deadline:
        container = sys.modules.get("kaon.steptypes.container")  # only if that type ran
        if not live_process_groups() and (container is None or not container.live_containers()):
            return
        time.sleep(0.02)

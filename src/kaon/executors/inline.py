"""The ``inline`` executor: step attempts run in a pool of threads inside the engine's process.

The fastest executor (no serialization, no process hop), and the least isolated: a step that
crashes the interpreter takes the engine with it, and cancellation is cooperative. Cancelling
an attempt marks it cancelled: if it has not started it never runs; if it is running, every
event it reports from then on is dropped (no ``StepFailed`` follows), and a shell step's
command is killed. Python code already running keeps running until it returns; its thread
only then becomes free again, and until then it is not counted in :attr:`InlineExecutor.capacity`
(a timed-out attempt does not free its slot while its thread is still busy).

Hand-off: an attempt goes straight to the thread that became idle last (each idle thread
waits on a lock of its own), or to a backlog that threads drain before they go idle again.
Only that one thread wakes, and in a chain of steps it is the same thread every time (its
caches warm); a queue shared by every idle thread woke about twice as many threads per step
(measured: 4.8 context switches per chain step instead of 2.7).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import ClassVar

from kaon.errors import ConfigurationError, SystemFailure
from kaon.executors.base import EventSink, Executor, TaskRequest
from kaon.executors.runtime import run_task
from kaon.model.events import AttemptKey, ExecutorEvent

PREFETCH_PER_THREAD = 4  # attempts queued per free thread (see InlineExecutor.prefetch)


class _Slot:
    """One thread's hand-off: the attempt given to it while it was idle (None: stop)."""

    __slots__ = ("request", "wake")

    def __init__(self) -> None:
        self.request: TaskRequest | None = None
        self.wake = threading.Lock()  # held while the thread waits; released once per hand-off
        self.wake.acquire()


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
        self._backlog: deque[TaskRequest] = deque()  # submitted while no thread was idle
        self._idle: list[_Slot] = []  # threads waiting for an attempt; the last idle is last
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._active: dict[AttemptKey, threading.Event] = {}
        self._running: dict[AttemptKey, threading.Event] = {}  # attempts a thread is running
        self._abandoned: set[AttemptKey] = set()  # cancelled, but a thread still runs them
        self._sink: EventSink | None = None

    @property
    def capacity(self) -> int:
        """How many attempts may run at once: the threads not still busy with a cancelled
        attempt (whose Python code cannot be stopped)."""
        return self._workers - len(self._abandoned)

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
        for number in range(self._workers):
            thread = threading.Thread(
                target=self._serve, args=(_Slot(),), name=f"kaon-inline-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, request: TaskRequest) -> None:
        """Give ``request`` to the thread that became idle last, else queue it for the next
        free thread. Never blocks."""
        if self._sink is None:
            raise SystemFailure("inline executor: submit() before start()")
        slot = None
        with self._lock:
            self._active[request.key] = threading.Event()
            if self._idle:
                slot = self._idle.pop()
                slot.request = request
            else:
                self._backlog.append(request)
        if slot is not None:
            slot.wake.release()  # wakes that thread only

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

        Does not wait for running steps: their events are dropped.
        """
        with self._lock:
            flags = list(self._active.values())
            self._active.clear()
            self._backlog.clear()
            self._stopping = True  # a busy thread stops when its attempt returns
            idle, self._idle = self._idle, []
        for flag in flags:
            flag.set()
        for slot in idle:
            slot.request = None
            slot.wake.release()
        self._threads.clear()

    def _next(self, slot: _Slot) -> TaskRequest | None:
        """The thread's next attempt: the oldest queued one, else one handed to it once it
        is idle; None when the executor shuts down."""
        with self._lock:
            if self._stopping:
                return None
            if self._backlog:
                return self._backlog.popleft()
            self._idle.append(slot)
        slot.wake.acquire()
        request, slot.request = slot.request, None
        return request

    def _serve(self, slot: _Slot) -> None:
        sink = self._sink
        assert sink is not None
        while True:
            request = self._next(slot)
            if request is None:
                return
            with self._lock:
                flag = self._active.get(request.key)
                if flag is None or flag.is_set():
                    continue  # cancelled before it started
                self._running[request.key] = flag

            def emit(event: ExecutorEvent, flag: threading.Event = flag) -> None:
                if not flag.is_set():
                    sink(event)

            run_task(request, emit, cancel=flag)
            with self._lock:
                del self._running[request.key]
                self._abandoned.discard(request.key)
                if self._active.get(request.key) is flag:
                    del self._active[request.key]

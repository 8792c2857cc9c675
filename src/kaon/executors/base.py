"""The executor interface: where step attempts run.

An executor receives :class:`TaskRequest` objects, runs each through the step runtime
(:func:`kaon.executors.runtime.run_task`) somewhere (a thread, a warm worker process, a Ray
cluster), and reports what happens as :mod:`kaon.model.events` through the sink it was
started with. It never writes state. Every executor passes the shared contract suite in
``tests/contract/test_executor_contract.py``.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kaon.model.events import AttemptKey, ExecutorEvent
from kaon.model.pickling import by_fields
from kaon.model.values import ValueRef

EventSink = Callable[[ExecutorEvent], None]

MAX_EVENTS_PER_TURN = 5000  # events one engine turn takes; more wait for the next turn


class EventInbox:
    """The engine's end of its executor's events: one FIFO, drained by whichever thread runs
    the engine's turn, and a bell the engine's thread waits on.

    Calling the inbox (it is an :data:`EventSink`) delivers an event and rings the bell.
    An executor whose attempts run on threads of the engine's process may do better (see
    :class:`kaon.executors.inline.InlineExecutor`): :meth:`report` events quietly (the
    engine's thread looks at least every ``quiet_wait_s`` while attempts run), then, once an
    attempt has ended and the thread is free, :meth:`settle`: the engine's next turn runs on
    that thread if no other thread is running one, else the bell rings. A chain of short steps
    then runs on one thread, without two thread hand-offs per step (measured on W1: each
    hand-off is a futex wake-up of a thread on the other core).
    """

    def __init__(self, drive: Callable[[], bool] | None = None, quiet_wait_s: float = 0.05):
        self._items: deque[ExecutorEvent] = deque()
        self._bell: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._drive = drive
        self.quiet_wait_s = quiet_wait_s
        self.quiet = False  # whether events were ever reported quietly (the wait is capped)

    def __call__(self, event: ExecutorEvent) -> None:
        """Deliver ``event`` and wake the engine (thread-safe)."""
        self._items.append(event)
        self._bell.put(None)

    def report(self, event: ExecutorEvent) -> None:
        """Deliver ``event`` without waking the engine; it is taken by the next turn, at most
        ``quiet_wait_s`` after it while attempts run (thread-safe)."""
        self.quiet = True
        self._items.append(event)

    def settle(self, events: Iterable[ExecutorEvent] = ()) -> None:
        """Deliver ``events``; the calling thread's attempt ended and it is free: run the
        engine's turn here if the engine is free (it then takes the events delivered), else
        wake the engine. Nothing is left waiting quietly either way."""
        self._items.extend(events)
        if self._drive is None or not self._drive():
            self._bell.put(None)

    def ring(self) -> None:
        """Wake the engine's thread (thread- and signal-safe)."""
        self._bell.put(None)

    def wait(self, timeout: float) -> None:
        """Wait (the engine's thread) until the bell rings, at most ``timeout`` seconds; at
        once when events are waiting."""
        bell = self._bell
        if not self._items and timeout > 0:
            try:
                bell.get(timeout=timeout)
            except queue.Empty:
                return
        while True:  # one ring is enough: the others are for the same events
            try:
                bell.get_nowait()
            except queue.Empty:
                return

    def take(self) -> list[ExecutorEvent]:
        """The events delivered so far, oldest first, at most :data:`MAX_EVENTS_PER_TURN`
        (by the thread running the engine's turn)."""
        items = self._items
        taken: list[ExecutorEvent] = []
        append, pop = taken.append, items.popleft
        try:
            while len(taken) < MAX_EVENTS_PER_TURN:
                append(pop())
        except IndexError:
            pass
        return taken

    @property
    def waiting(self) -> bool:
        """Whether events wait to be taken."""
        return bool(self._items)


class CancelFlag:
    """Whether an attempt was cancelled: the part of :class:`threading.Event` that step types
    use through ``ctx.extra["cancel_event"]`` (``is_set``, ``wait``, ``set``).

    The inline executor makes one per attempt, the Ray batch runner one per batch. A
    :class:`threading.Event` costs a lock and a condition (about 3 % of a chain step's turn on
    the inline executor), while almost every attempt is only ever asked ``is_set``: the event
    is made when someone first waits.
    """

    __slots__ = ("_event", "_set")
    _making = threading.Lock()

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        """True once the attempt is cancelled."""
        return self._set

    def set(self) -> None:
        """Cancel (thread-safe); wakes whoever waits."""
        self._set = True
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until cancelled, at most ``timeout`` seconds; True when cancelled."""
        if self._set:
            return True
        with CancelFlag._making:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self._set:  # set() may have looked before the event existed
            event.set()
        return event.wait(timeout)


@by_fields
@dataclass(frozen=True, slots=True)
class TaskRequest:
    """Everything a worker needs to run one attempt of a task step.

        ``inputs`` are references resolved by the worker through the artifact store at
        ``artifact_url``; ``params`` are the run's bound parameters; ``item``/``index`` are set
        inside a foreach body and ``iteration`` inside a loop body. ``resources`` is the step's
    normalized resource request (``cpus``, ``memory`` in bytes, ``gpus``, ``custom``; see
    :mod:`kaon.model.resources`), empty when the step asks for none.
    """

    key: AttemptKey
    step_path: str
    step_type: str
    config: Mapping[str, Any]
    inputs: Mapping[str, ValueRef]
    params: Mapping[str, Any]
    artifact_url: str
    workflow: str = ""
    item: Any = None
    index: int | None = None
    iteration: int | None = None
    timeout_s: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The run this attempt belongs to."""
        return self.key[0]

    @property
    def attempt(self) -> int:
        """The 1-based attempt number."""
        return self.key[2]


class Executor(ABC):
    """Runs task attempts and reports events. Thread-safe: the engine calls it from one thread,
    while events may be delivered from others."""

    name: ClassVar[str]

    def warm(self) -> None:
        """Begin booting what the first attempt needs (a worker process), before
        :meth:`start`, so that it boots while the caller loads a workflow and records its run.
        Optional; :meth:`shutdown` stops what it started even if :meth:`start` never came.
        The default does nothing."""
        return

    @abstractmethod
    def start(self, sink: EventSink) -> None:
        """Get ready to run tasks (start workers); events go to ``sink`` from any thread."""

    @abstractmethod
    def submit(self, request: TaskRequest) -> None:
        """Start running ``request``. Never blocks on the task itself.

        Exactly one of ``StepSucceeded`` / ``StepFailed`` will follow for its key, unless it is
        cancelled, in which case a ``StepFailed`` may or may not follow.
        """

    def submit_many(self, requests: list[TaskRequest]) -> None:
        """Submit several requests, in order (an executor may send them together)."""
        for request in requests:
            self.submit(request)

    @abstractmethod
    def cancel(self, key: AttemptKey) -> None:
        """Stop the attempt if it is running (best effort for threads; a kill for processes)."""

    def reattach(self, key: AttemptKey) -> bool:
        """Take back attempt ``key``, started by an earlier engine (before a restart).

        True when the attempt still runs here (or ended and its end is still known): its
        events follow on the sink as if this executor had started it. False when this
        executor cannot tell (the default: its workers died with the earlier engine); the
        engine then records the attempt as lost and retries it by policy.
        """
        return False

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many attempts may run at once."""

    def fence(self, deadline: float | None) -> None:
        """Stop every running attempt once ``time.monotonic()`` passes ``deadline`` unless a
        later call moves it (None: no deadline), even if the engine is not heard from again:
        the engine's lease runs out then (see :mod:`kaon.executors._lease_fence`). Executors
        whose attempts run inside the engine's process (threads) need not: they stop with it.
        """
        return  # nothing to stop outside the engine's process

    @property
    def in_engine_process(self) -> bool:
        """Whether its attempts run inside the engine's process (threads), where a step that
        crashes, exits or exhausts memory stops the engine with it."""
        return False

    @property
    def prefetch(self) -> int:
        """How many attempts it accepts beyond :attr:`capacity`, queued where they will run so
        that workers never wait for the engine (their real start is their ``StepStarted``)."""
        return 0

    @abstractmethod
    def shutdown(self) -> None:
        """Stop workers. Running attempts are abandoned (the engine records them as lost)."""

"""The worker side of the ``ray`` executor: a batch of attempts inside one Ray task (no Ray
import here).

:func:`run_batch` runs the requests of one batch, in order, through
:func:`~kaon.executors.runtime.run_task` in a thread of the Ray worker, while the task's own
thread watches them. A batch of short attempts sends nothing while it runs: it returns every
attempt's events as the task's value (one Ray task and one message for many sweep items).

An attempt that runs longer than :data:`STREAM_DELAY_S` turns the batch into a single-attempt
task: the task *reports* (and waits for the supervisor to hold it) the events of the attempts
already finished, hands back the attempts still queued behind it (the supervisor runs them in
tasks of their own, so none waits on a long attempt) and names the running one; from then on
that attempt's events (started, log lines, metrics, progress) are pushed every
:data:`STREAM_DELAY_S`. Before the task returns, its last events but the end are pushed and
waited for, so the supervisor always holds them before it sees the task end: events of an
attempt arrive in order. The end (``StepSucceeded``/``StepFailed``) of an attempt that streamed
is always the task's value.

Cancellation (``ray.cancel``) raises ``KeyboardInterrupt`` in the task's thread: the running
attempt is told to stop (a shell step kills its command's process group) and no further one
starts. If it has not stopped within :data:`CANCEL_GRACE_S` (Python code running in a thread
cannot be stopped otherwise), every process it started is killed and the worker process exits
(Ray replaces it). The supervisor cancels a batch's task only when every attempt left in it is
cancelled, or when the attempt to cancel is the one running and streaming (then nothing else is
left in the batch).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence

from kaon.executors.base import CancelFlag, TaskRequest
from kaon.model.events import AttemptKey, ExecutorEvent, StepFailed, StepSucceeded

STREAM_DELAY_S = 0.05
CANCEL_GRACE_S = 0.5  # how long a cancelled attempt may take to stop before its worker exits

Ended = list[tuple[AttemptKey, list[ExecutorEvent]]]  # attempts' events, in order of their runs
Push = Callable[[AttemptKey, list[ExecutorEvent]], None]
# finished attempts, handed back keys, the attempt now streaming and its events so far
Report = Callable[[Ended, list[AttemptKey], AttemptKey, list[ExecutorEvent]], None]


def is_final(event: ExecutorEvent) -> bool:
    """Whether ``event`` ends its attempt."""
    return isinstance(event, StepSucceeded | StepFailed)


class _Batch:
    """What the runner thread and the task's thread share (under ``lock``)."""

    def __init__(self, requests: Sequence[TaskRequest]) -> None:
        self.lock = threading.Lock()
        self.queue = collections.deque(requests)
        self.finished: Ended = []
        self.current: AttemptKey | None = None
        self.since = 0.0
        self.events: list[ExecutorEvent] = []
        self.streaming = False
        self.stopped = False

    def add(self, event: ExecutorEvent) -> None:
        with self.lock:
            self.events.append(event)

    def take(self) -> list[ExecutorEvent]:
        with self.lock:
            events, self.events = self.events, []
            return events

    def take_streamable(self) -> list[ExecutorEvent]:
        """The events so far but an end (which is always the task's value)."""
        with self.lock:
            events = [e for e in self.events if not is_final(e)]
            self.events = [e for e in self.events if is_final(e)]
            return events

    def next(self) -> TaskRequest | None:
        with self.lock:
            if self.stopped or not self.queue:
                return None
            request = self.queue.popleft()
            self.current, self.since = request.key, time.monotonic()
            return request

    def ended(self, key: AttemptKey) -> None:
        with self.lock:
            if not self.streaming:  # a streaming attempt's events are the task thread's
                self.finished.append((key, self.events))
                self.events, self.current = [], None

    def start_streaming(self) -> tuple[Ended, list[AttemptKey], AttemptKey] | None:
        """When the running attempt has run for :data:`STREAM_DELAY_S`: stream it alone."""
        with self.lock:
            if self.current is None or time.monotonic() - self.since < STREAM_DELAY_S:
                return None
            self.streaming = True
            handback = [request.key for request in self.queue]
            self.queue.clear()
            finished, self.finished = self.finished, []
            return finished, handback, self.current


def run_batch(requests: Sequence[TaskRequest], push: Push, report: Report) -> Ended:
    """Run ``requests`` in order (see the module docstring); the events not yet sent.

    ``push`` sends without waiting; ``report`` returns once the supervisor holds it.
    """
    from kaon.executors.runtime import run_task

    state = _Batch(requests)
    cancel = CancelFlag()
    done = threading.Event()

    def runner() -> None:
        try:
            while (request := state.next()) is not None:
                run_task(request, state.add, cancel=cancel)
                state.ended(request.key)
        finally:
            done.set()

    thread = threading.Thread(target=runner, name="kaon-ray-attempts", daemon=True)
    thread.start()
    try:
        while not done.wait(STREAM_DELAY_S):
            if not state.streaming:
                started = state.start_streaming()
                if started is not None:
                    finished, handback, key = started
                    report(finished, handback, key, state.take_streamable())
                continue
            batch = state.take_streamable()
            if batch and state.current is not None:
                push(state.current, batch)
    except KeyboardInterrupt:  # ray.cancel: stop everything the batch runs
        with state.lock:
            state.stopped = True
        cancel.set()  # a shell step kills its command and returns
        if done.wait(CANCEL_GRACE_S):
            raise  # it stopped: the worker stays warm; Ray records the task cancelled
        _die()  # Python code still runs: only the worker's end stops it
    if not state.streaming:
        return state.finished
    assert state.current is not None
    rest = state.take()
    report([], [], state.current, [e for e in rest if not is_final(e)])  # a barrier, even empty
    # The end is the task's value, never a push: the supervisor keeps it for re-attachment.
    return [(state.current, [e for e in rest if is_final(e)])]


def _die() -> None:
    from kaon.executors._descendants import die

    die(1)

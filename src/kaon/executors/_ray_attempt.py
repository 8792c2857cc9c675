"""The worker side of the ``ray`` executor: one attempt inside one Ray task (no Ray import here).

:func:`run_attempt` runs the request through :func:`~kaon.executors.runtime.run_task` in a
thread of the Ray worker while the task's own thread streams events: events an attempt reports
while it runs (started, log lines, metrics, progress) are pushed to the supervisor actor every
:data:`STREAM_DELAY_S`; an attempt that ends sooner sends nothing while it runs and returns its
whole event list as the task's value (a tiny sweep item costs no extra message). When events
were streamed, the rest but the end are pushed and *waited for* before the task returns, so the
supervisor always holds them before it sees the task end: events of an attempt arrive in
order. The end (``StepSucceeded``/``StepFailed``) is always the task's value.

Cancellation (``ray.cancel``) raises ``KeyboardInterrupt`` in the task's thread: the attempt is
told to stop (a shell step kills its command's process group). If it has not stopped within
:data:`CANCEL_GRACE_S` (Python code running in a thread cannot be stopped otherwise), every
process it started is killed and the worker process exits (Ray replaces it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from kaon.executors.base import TaskRequest
from kaon.model.events import ExecutorEvent, StepFailed, StepSucceeded

STREAM_DELAY_S = 0.05
CANCEL_GRACE_S = 0.5  # how long a cancelled attempt may take to stop before its worker exits

Push = Callable[[list[ExecutorEvent]], None]


class _Events:
    """The attempt's events, in order, and how far they have been pushed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[ExecutorEvent] = []
        self.streamed = False

    def add(self, event: ExecutorEvent) -> None:
        with self.lock:
            self.items.append(event)

    def take(self) -> list[ExecutorEvent]:
        with self.lock:
            items, self.items = self.items, []
            return items


def run_attempt(request: TaskRequest, push: Push, push_and_wait: Push) -> list[ExecutorEvent]:
    """Run ``request``; stream its events through ``push`` while it runs; the events left.

    ``push`` sends without waiting; ``push_and_wait`` returns once the supervisor holds them.
    """
    from kaon.executors.runtime import run_task

    events = _Events()
    cancel = threading.Event()
    done = threading.Event()

    def attempt() -> None:
        try:
            run_task(request, events.add, cancel=cancel)
        finally:
            done.set()

    runner = threading.Thread(target=attempt, name="kaon-ray-attempt", daemon=True)
    runner.start()
    try:
        while not done.wait(STREAM_DELAY_S):
            batch = events.take()
            if batch:
                events.streamed = True
                push(batch)
    except KeyboardInterrupt:  # ray.cancel: stop everything the attempt runs
        cancel.set()  # a shell step kills its command and returns
        if done.wait(CANCEL_GRACE_S):
            raise  # it stopped: the worker stays warm; Ray records the task cancelled
        _die()  # Python code still runs: only the worker's end stops it
    rest = events.take()
    if not events.streamed:
        return rest
    others: list[ExecutorEvent] = [e for e in rest if not isinstance(e, StepSucceeded | StepFailed)]
    push_and_wait(others)  # even none: a barrier behind the pushes made without waiting
    # The end is the task's value, never a push: the supervisor keeps it for re-attachment.
    return [e for e in rest if isinstance(e, StepSucceeded | StepFailed)]


def _die() -> None:
    from kaon.executors._descendants import kill_descendants
    from kaon.steptypes.shell import kill_live_process_groups

    kill_live_process_groups()
    kill_descendants()
    os._exit(1)

"""The executor interface: where step attempts run.

An executor receives :class:`TaskRequest` objects, runs each through the step runtime
(:func:`kaon.executors.runtime.run_task`) somewhere (a thread, a warm worker process, a Ray
cluster), and reports what happens as :mod:`kaon.model.events` through the sink it was
started with. It never writes state. Every executor passes the shared contract suite in
``tests/contract/test_executor_contract.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kaon.model.events import AttemptKey, ExecutorEvent
from kaon.model.values import ValueRef

EventSink = Callable[[ExecutorEvent], None]


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
    def prefetch(self) -> int:
        """How many attempts it accepts beyond :attr:`capacity`, queued where they will run so
        that workers never wait for the engine (their real start is their ``StepStarted``)."""
        return 0

    @abstractmethod
    def shutdown(self) -> None:
        """Stop workers. Running attempts are abandoned (the engine records them as lost)."""

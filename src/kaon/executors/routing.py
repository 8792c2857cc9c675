"""An executor that sends each step type to the executor that should run it.

A sandboxed server runs step code in sandboxed worker processes, but a ``container`` step
cannot start Podman inside that sandbox (and does not need to: its code runs in the
container). The server therefore routes ``container`` steps to an executor outside the
sandbox, where only Kaon's own code runs (it builds the ``podman run`` command line), and
everything else to the sandboxed pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import ClassVar

from kaon.executors.base import EventSink, Executor, TaskRequest
from kaon.model.events import AttemptKey, ErrorInfo, ExecutorEvent, StepFailed, StepSucceeded

Guard = Callable[[TaskRequest], str | None]


class RoutingExecutor(Executor):
    """Runs a request on ``routes[request.step_type]``, or on ``default``.

    ``guard``, when given, may refuse a routed request: it returns a reason, and the attempt
    fails with it (type ``Refused``, not a platform failure) without running.
    """

    name: ClassVar[str] = "routing"

    def __init__(
        self, default: Executor, routes: Mapping[str, Executor], guard: Guard | None = None
    ) -> None:
        self.default = default
        self.routes = dict(routes)
        self._guard = guard
        self._lock = threading.Lock()
        self._owner: dict[AttemptKey, Executor] = {}
        self._sink: EventSink | None = None

    @property
    def capacity(self) -> int:
        """The sum of the executors' capacities."""
        return self.default.capacity + sum(e.capacity for e in self._distinct_routes())

    @property
    def in_engine_process(self) -> bool:
        """Whether any of the executors runs attempts in the engine's process."""
        return any(e.in_engine_process for e in (self.default, *self._distinct_routes()))

    @property
    def prefetch(self) -> int:
        """The sum of the executors' prefetch."""
        return self.default.prefetch + sum(e.prefetch for e in self._distinct_routes())

    def _distinct_routes(self) -> list[Executor]:
        found: list[Executor] = []
        for executor in self.routes.values():
            if executor is not self.default and all(executor is not f for f in found):
                found.append(executor)
        return found

    def warm(self) -> None:
        """Warm the default executor (see :meth:`Executor.warm`)."""
        self.default.warm()

    def start(self, sink: EventSink) -> None:
        """Start every executor; their events go to ``sink``."""
        self._sink = sink

        def forward(event: ExecutorEvent) -> None:
            if isinstance(event, StepSucceeded | StepFailed):
                with self._lock:
                    self._owner.pop(event.key, None)
            sink(event)

        self.default.start(forward)
        for executor in self._distinct_routes():
            executor.start(forward)

    def submit(self, request: TaskRequest) -> None:
        """Submit ``request`` to the executor of its step type (or refuse it, see guard)."""
        self.submit_many([request])

    def submit_many(self, requests: list[TaskRequest]) -> None:
        """Submit each request to the executor of its step type, each executor's together."""
        shares: dict[int, tuple[Executor, list[TaskRequest]]] = {}
        for request in requests:
            executor = self.routes.get(request.step_type, self.default)
            if executor is not self.default and self._guard is not None:
                reason = self._guard(request)
                if reason is not None:
                    assert self._sink is not None
                    self._sink(StepFailed(request.key, time.time(), ErrorInfo("Refused", reason)))
                    continue
            with self._lock:
                self._owner[request.key] = executor
            shares.setdefault(id(executor), (executor, []))[1].append(request)
        for executor, share in shares.values():
            executor.submit_many(share)

    def cancel(self, key: AttemptKey) -> None:
        """Cancel on the executor running ``key``."""
        with self._lock:
            executor = self._owner.pop(key, None)
        if executor is not None:
            executor.cancel(key)

    def fence(self, deadline: float | None) -> None:
        """Publish the lease deadline to every executor."""
        for executor in [self.default, *self._distinct_routes()]:
            executor.fence(deadline)

    def shutdown(self) -> None:
        """Shut every executor down."""
        for executor in [self.default, *self._distinct_routes()]:
            executor.shutdown()

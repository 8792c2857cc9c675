"""An executor that adds variables to every attempt's environment, around another executor.

The server wraps its executor in one so that each step attempt gets its run's API token and
the server's URL (``KAON_RUN_TOKEN``, ``KAON_TOKEN``, ``KAON_URL``; see
:mod:`kaon.service.run_tokens`) without the engine knowing about tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import ClassVar

from kaon.executors.base import EventSink, Executor, TaskRequest
from kaon.model.events import AttemptKey

EnvFor = Callable[[TaskRequest], Mapping[str, str]]


class EnvAddingExecutor(Executor):
    """Delegates to ``inner``; each request's ``env`` gets what ``env_for(request)`` gives
    (the request's own entries of the same names are replaced)."""

    name: ClassVar[str] = "env-adding"

    def __init__(self, inner: Executor, env_for: EnvFor) -> None:
        self.inner = inner
        self._env_for = env_for

    @property
    def capacity(self) -> int:
        """The inner executor's capacity."""
        return self.inner.capacity

    @property
    def in_engine_process(self) -> bool:
        """Whether the inner executor runs attempts in the engine's process."""
        return self.inner.in_engine_process

    @property
    def prefetch(self) -> int:
        """The inner executor's prefetch."""
        return self.inner.prefetch

    def start(self, sink: EventSink) -> None:
        """Start the inner executor."""
        self.inner.start(sink)

    def submit(self, request: TaskRequest) -> None:
        """Submit ``request`` with the added variables to the inner executor."""
        env = {**request.env, **self._env_for(request)}
        self.inner.submit(dataclasses.replace(request, env=env))

    def submit_many(self, requests: list[TaskRequest]) -> None:
        """Submit ``requests`` with the added variables to the inner executor, together."""
        self.inner.submit_many(
            [dataclasses.replace(r, env={**r.env, **self._env_for(r)}) for r in requests]
        )

    def cancel(self, key: AttemptKey) -> None:
        """Cancel on the inner executor."""
        self.inner.cancel(key)

    def fence(self, deadline: float | None) -> None:
        """Publish the lease deadline to the inner executor."""
        self.inner.fence(deadline)

    def shutdown(self) -> None:
        """Shut the inner executor down."""
        self.inner.shutdown()

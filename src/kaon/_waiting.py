"""Waiting for a run to stop (finish, or pause at a breakpoint): what the local and remote
run handles share (:class:`kaon.client.RunHandle`, :class:`kaon.remote_run.RemoteRunHandle`)."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod

from kaon.model.status import RunStatus


class WaitsForRun(ABC):
    """``wait`` and ``wait_async`` over a handle's :attr:`status`."""

    id: str

    @property
    @abstractmethod
    def status(self) -> str:
        """The run's current status."""

    @abstractmethod
    def _check_driver(self) -> None:
        """Raise what stopped the engine this handle started, if it did."""

    def wait(self, timeout: float | None = None, *, poll_s: float = 0.05) -> str:
        """Block until the run finishes or pauses at a breakpoint; returns its status.

        Raises :class:`TimeoutError` after ``timeout`` seconds, and re-raises what stopped
        the engine this handle started (a store outage, a bug) if it ended before the run.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self._stopped()
            if status is not None:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.id} is still {self.status} after {timeout:g}s")
            time.sleep(poll_s)

    async def wait_async(self, timeout: float | None = None, *, poll_s: float = 0.05) -> str:
        """:meth:`wait` for asyncio code: polls without blocking the event loop (each poll
        is one store read or HTTP call)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self._stopped()
            if status is not None:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.id} is still {self.status} after {timeout:g}s")
            await asyncio.sleep(poll_s)

    def _stopped(self) -> str | None:
        status = RunStatus(self.status)
        if status.is_terminal or status is RunStatus.PAUSED:
            return status.value
        self._check_driver()
        return None

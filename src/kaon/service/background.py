"""Driving a run in a background thread of this process (``kaon.start``).

The thread opens its own :class:`~kaon.service.local.LocalService` (its own store connection)
and drives the run with the same engine as ``kaon run``; the caller keeps its own service for
reads and commands, which reach the engine through command rows like those of another
process. Stopping the driver leaves the run resumable, as Ctrl-C does for ``kaon run``.
"""

from __future__ import annotations

import threading

from kaon.engine.engine import Engine
from kaon.model.status import RunStatus
from kaon.service.settings import Settings


class BackgroundRun:
    """One run driven to its end by an engine in a daemon thread."""

    def __init__(self, settings: Settings, run_id: str) -> None:
        self.settings = settings
        self.run_id = run_id
        self.status: RunStatus | None = None  # set when the engine returns
        self.error: BaseException | None = None  # what ended the thread, if not the run
        self._engine: Engine | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drive, name=f"kaon-run-{run_id}", daemon=True)

    def start(self) -> BackgroundRun:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """True while the engine thread drives the run."""
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (at most ``timeout`` s); True when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the engine after its current turn (the run stays resumable) and wait."""
        self._stop.set()
        if self._engine is not None:
            self._engine.stop()
        self.join(timeout)

    def _on_engine(self, engine: Engine) -> None:
        self._engine = engine
        if self._stop.is_set():
            engine.stop()

    def _drive(self) -> None:
        from kaon.service.local import LocalService

        try:
            with LocalService(self.settings) as service:
                self.status = service.execute(self.run_id, on_engine=self._on_engine)
        except BaseException as error:  # reported to the handle's caller by wait()
            self.error = error

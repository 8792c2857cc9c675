"""``kaon server``: serves the HTTP API, drives runs and fires triggers.

Three parts share one store, each in a process of its own, so that a busy engine (a
thousand runs held, a backlog draining) never delays an API request by holding Python's GIL:

* uvicorn serves :func:`kaon.api.app.create_app` on ``host:port`` (the main process, which
  also supervises the two others);
* the engine process: an :class:`~kaon.engine.engine.Engine` in ``serve`` mode claims pending
  runs and runs whose engine died (recovery on start), admitting them through the
  run-strategy module ``kaon.triggers.strategies.admit``;
* the trigger process: ``kaon.triggers.service.TriggerService.run_forever`` (cron, signal
  and event triggers, alerts).

The part processes die with the main process (``PR_SET_PDEATHSIG``) and send it their
telemetry (engine turn times, trigger lags) for ``/metrics``. When a part dies, the server
logs why and stops with exit code 1 (a supervisor restarts it).

SIGTERM or SIGINT: stop accepting requests, end event streams, stop the trigger loop and the
engine (its in-flight steps are left for the next engine to resume: it releases its leases),
then exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from multiprocessing import connection
from types import FrameType
from typing import Any, TextIO

import uvicorn

from kaon.api.app import build_services, create_app, stop_streams
from kaon.api.deps import METRICS_PUBLIC, Services
from kaon.server_parts import (
    TRIGGER_CLOCK,
    Part,
    ServerOptions,
    start_parts,
    stop_parts,
    trigger_clock,
)
from kaon.service import telemetry
from kaon.service.settings import Settings

__all__ = ["KaonServer", "ServerOptions", "bootstrap", "serve"]

log = logging.getLogger("kaon.server")


def bootstrap(services: Services, name: str, out: TextIO) -> str | None:
    """Create an admin token called ``name`` when no token exists yet; write it to ``out``.

    Returns the secret (``None`` when tokens already exist)."""
    secret = services.auth.create_first_admin(name)
    if secret is None:
        return None
    out.write(f"admin token {name!r} (shown once): {secret}\n")
    out.flush()
    return secret


class _Server(uvicorn.Server):
    """uvicorn that also ends event streams and calls back when asked to exit."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


class KaonServer:
    """The server's parts and their lifecycle (``run`` blocks until SIGTERM/SIGINT)."""

    def __init__(
        self, settings: Settings, options: ServerOptions, out: TextIO, parts: list[Part]
    ) -> None:
        self.settings = settings
        self.options = options
        self.out = out
        self.parts = parts
        self.services = build_services(settings)
        self.services.extras[METRICS_PUBLIC] = options.metrics_public
        self.services.extras[TRIGGER_CLOCK] = trigger_clock()
        self.app = create_app(self.services)
        self.stop_event = threading.Event()
        self.failed = False
        self._server: _Server | None = None
        self._watcher: threading.Thread | None = None

    def run(self) -> int:
        """Serve until asked to stop; returns the exit code (0 after a clean shutdown)."""
        if self.options.bootstrap_token:
            bootstrap(self.services, self.options.bootstrap_token, self.out)
        try:
            engine = next(part for part in self.parts if part.name == "engine").process
            self.services.extras["engine_alive"] = engine.is_alive
            self._watcher = threading.Thread(target=self._watch, name="kaon-parts", daemon=True)
            self._watcher.start()
            config = uvicorn.Config(
                self.app,
                host=self.options.host,
                port=self.options.port,
                log_level=self.options.log_level,
                timeout_graceful_shutdown=3,
                access_log=False,
            )
            self._server = _Server(config, self._stopping)
            # uvicorn re-raises the signal that stopped it once it is done: let it land here
            # (a no-op) instead of killing the process before the parts have stopped.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._on_signal)
            log.info("serving on http://%s:%d", self.options.host, self.options.port)
            if not self.stop_event.is_set():
                self._server.run()
        finally:
            self._shutdown()
        return 1 if self.failed else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping()
        if self._server is not None:
            self._server.should_exit = True

    def _stopping(self) -> None:
        stop_streams(self.app)
        self.stop_event.set()

    def _watch(self) -> None:
        """Take the parts' telemetry; if a part dies, log it and stop the server (a
        supervisor restarts it)."""
        by_handle: dict[Any, Part] = {}
        for part in self.parts:
            by_handle[part.conn] = part
            by_handle[part.process.sentinel] = part
        while by_handle:
            try:
                ready = connection.wait(list(by_handle), timeout=1.0)
            except (OSError, ValueError):  # a pipe closed by the shutdown: nothing to watch
                return
            for handle in ready:
                part = by_handle[handle]
                if handle is part.conn:
                    try:
                        kind, body = part.conn.recv()
                    except (EOFError, OSError):
                        del by_handle[handle]
                        continue
                    if kind == "telemetry":
                        telemetry.absorb(part.name, body)
                    continue
                del by_handle[handle]
                part.reap(5)  # its exit code
                if not self.stop_event.is_set():
                    log.error(
                        "the %s process exited with code %s; stopping the server",
                        part.name,
                        part.process.exitcode,
                    )
                    self.failed = True
                    self._stopping()
                    if self._server is not None:
                        self._server.should_exit = True

    def _shutdown(self) -> None:
        self._stopping()
        for part in self.parts:
            part.stop()
        for part in self.parts:
            part.join(timeout=30)
        if self._watcher is not None:  # it ends once every part's pipe and process ended
            self._watcher.join(timeout=5)
        for part in self.parts:  # not before: the watcher reads them
            part.close()
        self.services.runs.close()
        log.info("stopped")


def serve(settings: Settings, options: ServerOptions, out: TextIO) -> int:
    """Run ``kaon server`` in this process until SIGTERM/SIGINT; returns the exit code."""
    from kaon.log_config import configure_logging

    level = configure_logging(default="info")
    parts = start_parts(settings, options, level)
    try:
        server = KaonServer(settings, options, out, parts)
    except BaseException:
        stop_parts(parts)
        raise
    return server.run()

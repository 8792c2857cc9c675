"""``kaon server``: one process that serves the HTTP API, drives runs and fires triggers.

Three parts share one store:

* uvicorn serves :func:`kaon.api.app.create_app` on ``host:port`` (the main thread);
* an :class:`~kaon.engine.engine.Engine` in ``serve`` mode claims pending runs and runs whose
  engine died (recovery on start), admitting them through the run-strategy module
  ``kaon.triggers.strategies.admit`` when it exists;
* the trigger loop ``kaon.triggers.service.TriggerService.run_forever`` when it exists.

SIGTERM or SIGINT: stop accepting requests, end event streams, stop the trigger loop and the
engine (its in-flight steps are left for the next engine to resume: it releases its leases),
then exit 0.
"""

from __future__ import annotations

import functools
import importlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

import uvicorn

from kaon.api.app import build_services, create_app, stop_streams
from kaon.api.deps import METRICS_PUBLIC, Services
from kaon.engine.engine import Engine
from kaon.executors.base import Executor, TaskRequest
from kaon.executors.with_env import EnvAddingExecutor
from kaon.service import telemetry
from kaon.service.sandboxing import create_step_executor
from kaon.service.settings import Settings
from kaon.store.base import RunRecord, StateStore

log = logging.getLogger("kaon.server")


@dataclass(frozen=True)
class ServerOptions:
    """How to serve: address, bootstrap token name, engine claim interval, lease length (a
    replica that stops renewing loses its runs to another this long after its last renewal,
    by the database's clock) and how many runs the engine holds at once."""

    host: str = "127.0.0.1"
    port: int = 8420
    bootstrap_token: str | None = None
    claim_every_s: float = 0.1
    log_level: str = "warning"
    lease_ttl_s: float = 30.0
    max_runs: int = 1000  # runs the engine holds at once (more wait, oldest first)
    metrics_public: bool = False  # serve /metrics without a token (a private network)


def bootstrap(services: Services, name: str, out: TextIO) -> str | None:
    """Create an admin token called ``name`` when no token exists yet; write it to ``out``.

    Returns the secret (``None`` when tokens already exist)."""
    if services.auth.has_tokens():
        return None
    _, secret = services.auth.create_token(name, "admin", ["*"], by="server")
    out.write(f"admin token {name!r} (shown once): {secret}\n")
    out.flush()
    return secret


def _optional(module: str, attribute: str) -> Any:
    """``module.attribute`` if the module (the trigger engineer's) exists, else None."""
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        log.info("%s not found: running without it", module)
        return None
    return getattr(found, attribute, None)


def admission(store: StateStore) -> Callable[[RunRecord], bool] | None:
    """The run strategies' admission callback bound to ``store``, when they exist."""
    admit = _optional("kaon.triggers.strategies", "admit")
    return None if admit is None else functools.partial(admit, store)


def trigger_service(services: Services) -> Any:
    """The trigger engineer's ``TriggerService`` over the registry, or None when absent.

    It gets a :class:`~kaon.triggers.catalog.RegistryCatalog`, the clock of
    ``clock_from_env`` (``KAON_FAKE_CLOCK_FILE`` in tests), an alert service and the
    server's executor name.
    """
    cls = _optional("kaon.triggers.service", "TriggerService")
    if cls is None:
        return None
    from kaon.store.triggers import SQLTriggerStore
    from kaon.triggers.alerts import AlertService
    from kaon.triggers.catalog import RegistryCatalog
    from kaon.triggers.service import clock_from_env

    store = services.store
    triggers = SQLTriggerStore(store)
    alerts = AlertService(store, triggers)
    services.extras["alerts"] = alerts
    return cls(
        store,
        RegistryCatalog(store),
        clock=clock_from_env(),
        alerts=alerts,
        executor=services.settings.executor,
        triggers=triggers,
    )


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

    def __init__(self, settings: Settings, options: ServerOptions, out: TextIO) -> None:
        self.settings = settings
        self.options = options
        self.out = out
        self.services = build_services(settings)
        self.services.extras[METRICS_PUBLIC] = options.metrics_public
        self.app = create_app(self.services)
        self.stop_event = threading.Event()
        self.engine: Engine | None = None
        self.threads: list[threading.Thread] = []
        self.failed = False
        self._server: _Server | None = None

    def run(self) -> int:
        """Serve until asked to stop; returns the exit code (0 after a clean shutdown)."""
        if self.options.bootstrap_token:
            bootstrap(self.services, self.options.bootstrap_token, self.out)
        try:
            self._start_engine()
            self._start_triggers()
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
            # (a no-op) instead of killing the process before the engine has stopped.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._on_signal)
            log.info("serving on http://%s:%d", self.options.host, self.options.port)
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

    def _start_engine(self) -> None:
        settings = self.settings
        executor = self._step_env(create_step_executor(settings, sandbox_default="auto"))
        engine = Engine(
            self.services.store,
            executor,
            self.services.runs.artifacts,
            lease_ttl=self.options.lease_ttl_s,
            owner_group_of=self.services.registry.owner_group,
            on_turn=telemetry.record_engine_turn,
        )
        self.engine = engine
        admit = admission(self.services.store)
        thread = threading.Thread(
            target=self._guarded,
            args=(
                "engine",
                lambda: engine.serve(
                    admit=admit,
                    claim_every_s=self.options.claim_every_s,
                    max_runs=self.options.max_runs,
                ),
            ),
            name="kaon-engine",
            daemon=True,
        )
        self.services.extras["engine"] = engine
        self.services.extras["engine_alive"] = thread.is_alive
        thread.start()
        self.threads.append(thread)

    def _step_env(self, executor: Executor) -> Executor:
        """``executor``, giving each attempt its run's token and this server's URL."""
        tokens = self.services.auth.run_tokens
        if tokens is None:
            return executor
        host = self.options.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        url = f"http://{'[' + host + ']' if ':' in host else host}:{self.options.port}"

        def env_for(request: TaskRequest) -> dict[str, str]:
            token = tokens.mint(request.run_id)
            return {"KAON_URL": url, "KAON_RUN_TOKEN": token, "KAON_TOKEN": token}

        return EnvAddingExecutor(executor, env_for)

    def _start_triggers(self) -> None:
        triggers = trigger_service(self.services)
        if triggers is None:
            return
        self.services.extras["triggers"] = triggers
        thread = threading.Thread(
            target=self._guarded,
            args=("trigger loop", lambda: triggers.run_forever(self.stop_event)),
            name="kaon-triggers",
            daemon=True,
        )
        thread.start()
        self.threads.append(thread)

    def _guarded(self, what: str, body: Callable[[], None]) -> None:
        """Run a part; if it dies, log why and stop the server (a supervisor restarts it)."""
        try:
            body()
        except BaseException:
            if self.stop_event.is_set():
                return
            log.exception("the %s died; stopping the server", what)
            self.failed = True
            self.stop_event.set()
            if self._server is not None:
                self._server.should_exit = True

    def _shutdown(self) -> None:
        self.stop_event.set()
        stop_streams(self.app)
        if self.engine is not None:
            self.engine.stop()
        for thread in self.threads:
            thread.join(timeout=30)
        if self.engine is not None:
            self.engine.close()
        alerts = self.services.extras.get("alerts")
        if alerts is not None:
            alerts.close()
        self.services.runs.close()
        log.info("stopped")


def serve(settings: Settings, options: ServerOptions, out: TextIO) -> int:
    """Run ``kaon server`` in this process until SIGTERM/SIGINT; returns the exit code."""
    from kaon.log_config import configure_logging

    configure_logging(default="info")
    return KaonServer(settings, options, out).run()

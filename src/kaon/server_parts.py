"""The parts of ``kaon server`` besides the API, each run in a process of its own.

* ``engine``: an :class:`~kaon.engine.engine.Engine` in ``serve`` mode, admitting runs
  through the run strategies (:func:`kaon.triggers.strategies.admit`);
* ``triggers``: the :class:`~kaon.triggers.service.TriggerService` (cron, signal and event
  triggers) and its alerts.

:func:`start_parts` first creates or migrates the store's schema and closes every
connection, then forks the parts (on Linux; elsewhere they are spawned): a fork costs
nothing to start (the modules are loaded already) and inherits no connection and no thread.
Each part builds its own services over the same settings, dies with the main process
(``PR_SET_PDEATHSIG``, and the end of its pipe), stops on SIGTERM or SIGINT, and sends the
main process its telemetry every :data:`REPORT_S` seconds through the pipe (see
:mod:`kaon.service.telemetry`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import logging
import math
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from kaon.api.app import build_services
from kaon.api.deps import Services
from kaon.engine import stop_signals
from kaon.engine.engine import Engine
from kaon.executors.base import Executor, TaskRequest
from kaon.executors.with_env import EnvAddingExecutor
from kaon.service import telemetry
from kaon.service.fingerprint_sandbox import IsolatedFingerprints
from kaon.service.sandboxing import create_step_executor
from kaon.service.settings import Settings
from kaon.store.base import RunRecord, StateStore

if TYPE_CHECKING:
    from kaon.store.sql import SQLStore

log = logging.getLogger("kaon.server")

PARTS = ("engine", "triggers")
REPORT_S = 0.5  # how often a part sends its telemetry
PROPERTIES_TTL_S = 1.0  # how long the engine's admission trusts a workflow's properties
TRIGGER_CLOCK = "trigger_clock"  # services.extras key: the clock the triggers run on
_PR_SET_PDEATHSIG = 1
_LINUX = sys.platform.startswith("linux")


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
    retention_s: float | None = None  # delete finished runs older than this (None: keep all)
    retention_keep_last: int = 0  # ... but the newest N finished runs of each workflow


class _Admission:
    """The run strategies' admission callback over a SQL store (see :func:`admission`)."""

    def __init__(self, store: SQLStore) -> None:
        from kaon.store.registry import SQLRegistryStore
        from kaon.store.triggers import SQLTriggerStore

        self.store = store
        self.registry = SQLRegistryStore(store)
        self.triggers = SQLTriggerStore(store)
        self.known: dict[str, dict[str, Any]] = {}
        self.read_at = -math.inf  # when the properties' signature was last asked
        self.signature: Any = None
        self.changes_at = -math.inf  # when changes() last asked
        self.last_changes: object = None

    def __call__(self, run: RunRecord) -> bool:
        from kaon.triggers.strategies import admit

        return admit(self.store, run, properties=self.properties)

    def properties(self, _store: StateStore, name: str) -> dict[str, Any]:
        """A workflow's properties as last read (a workflow not in the registry, a run made
        by `kaon run`: the defaults). The signature is asked when a run is, at most once per
        :data:`PROPERTIES_TTL_S`: an idle server's first run after a change sees it."""
        from kaon.triggers.strategies import DEFAULT_PROPERTIES

        now = time.monotonic()
        if now - self.read_at > PROPERTIES_TTL_S:
            signature = self.registry.signature()
            if signature != self.signature:
                self.known.clear()
                for workflow in self.registry.list_workflows(limit=sys.maxsize):
                    self.known[workflow.name] = {
                        **DEFAULT_PROPERTIES,
                        **(workflow.properties or {}),
                    }
                self.signature = signature
            self.read_at = now
        return self.known.get(name, DEFAULT_PROPERTIES)

    def changes(self) -> object:
        """See :class:`kaon.engine.refusals.AdmissionChanges`: the registry's signature and
        the last unblock, asked at most once per :data:`PROPERTIES_TTL_S` (apart from the
        properties' own, so that asking does not make the properties older)."""
        from kaon.triggers.strategies import UNBLOCKED_PREFIX

        now = time.monotonic()
        if now - self.changes_at > PROPERTIES_TTL_S:
            unblocked = self.triggers.last_state_change(UNBLOCKED_PREFIX)
            self.last_changes = (self.registry.signature(), unblocked)
            self.changes_at = now
        return self.last_changes


def admission(store: StateStore) -> Callable[[RunRecord], bool]:
    """The run strategies' admission callback bound to ``store``. The workflows' properties
    (their strategies) are read together, in one query, and read again only when the
    registry's signature (one aggregate, asked at most once per :data:`PROPERTIES_TTL_S`)
    says a workflow changed: a claiming pass that looks at the queue heads of thousands of
    workflows reads none of them one by one (it read each one's row again every second).
    Over a SQL store it also says when the properties or an unblock changed
    (:class:`kaon.engine.refusals.AdmissionChanges`), so that the engine asks again about
    the queue heads it remembers refused."""
    from kaon.store.sql import SQLStore
    from kaon.triggers.strategies import admit, workflow_properties

    if not isinstance(store, SQLStore):
        return functools.partial(admit, store, properties=workflow_properties)
    return _Admission(store)


def trigger_service(services: Services, options: ServerOptions | None = None) -> Any:
    """The :class:`~kaon.triggers.service.TriggerService` over the registry, with a
    :class:`~kaon.triggers.catalog.RegistryCatalog`, the clock of ``clock_from_env``
    (``KAON_FAKE_CLOCK_FILE`` in tests), an alert service (``services.extras["alerts"]``),
    the server's executor name and its retention policy (``options.retention_s``)."""
    from kaon.store.triggers import SQLTriggerStore
    from kaon.triggers.alerts import AlertService
    from kaon.triggers.catalog import RegistryCatalog
    from kaon.triggers.retention import RetentionPolicy
    from kaon.triggers.service import TriggerService, clock_from_env

    policy = None
    if options is not None and options.retention_s is not None:
        policy = RetentionPolicy(options.retention_s, options.retention_keep_last)

    store = services.store
    triggers = SQLTriggerStore(store)
    alerts = AlertService(store, triggers)
    services.extras["alerts"] = alerts
    return TriggerService(
        store,
        RegistryCatalog(store),
        clock=clock_from_env(),
        alerts=alerts,
        executor=services.settings.executor,
        triggers=triggers,
        retention=policy,
    )


def trigger_clock() -> Callable[[], float]:
    """The clock the trigger process runs on (so the API shows the same due times)."""
    from kaon.triggers.service import clock_from_env

    return clock_from_env()


def step_env(services: Services, options: ServerOptions, executor: Executor) -> Executor:
    """``executor``, giving each attempt its run's token and this server's URL."""
    tokens = services.auth.run_tokens
    if tokens is None:
        return executor
    host = options.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    url = f"http://{'[' + host + ']' if ':' in host else host}:{options.port}"

    def env_for(request: TaskRequest) -> dict[str, str]:
        token = tokens.mint(request.run_id)
        return {"KAON_URL": url, "KAON_RUN_TOKEN": token, "KAON_TOKEN": token}

    return EnvAddingExecutor(executor, env_for)


def build_engine(services: Services, options: ServerOptions) -> Engine:
    """The server's engine over ``services``: the settings' executor (sandboxed when
    bubblewrap is there), run tokens for steps, the server's lease length. Cache keys'
    code fingerprints are made in a sandboxed child, as pushed files are evaluated: the
    engine's process never imports pushed code."""
    executor = create_step_executor(services.settings, sandbox_default="auto")
    # The child runs on the engine's thread, which renews the leases between turns: it may
    # take a third of a lease at most (a module slower to import runs uncached, said in
    # the run's cache event), never long enough for the engine's leases to lapse.
    limits = services.registry.sandbox
    limits = dataclasses.replace(
        limits, timeout_s=min(limits.timeout_s, max(options.lease_ttl_s / 3, 5.0))
    )
    return Engine(
        services.store,
        step_env(services, options, executor),
        services.runs.artifacts,
        fingerprint=IsolatedFingerprints(limits),
        lease_ttl=options.lease_ttl_s,
        owner_group_of=services.registry.owner_group,
        on_turn=telemetry.record_engine_turn,
        localize=services.runs.localize,
    )


@dataclass
class Part:
    """A part's process, seen from the main process.

    Two threads reap parts (the server's watcher, when a part ends on its own, and its
    shutdown): they take turns (:meth:`reap`), since of two threads waiting on one child at
    once, one can find it gone before the other has recorded its exit code, and take it
    for still running.
    """

    name: str
    process: BaseProcess
    conn: Connection
    _reaping: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def start(cls, name: str, settings: Settings, options: ServerOptions, level: str) -> Part:
        """Start part ``name`` (one of :data:`PARTS`) in a new process (see the module)."""
        fork = multiprocessing.get_context("fork") if _LINUX else None
        context = fork or multiprocessing.get_context("spawn")
        here, there = context.Pipe()
        process = context.Process(
            target=part_main,
            args=(name, settings, options, level, there, os.getpid()),
            name=f"kaon-{name}",
        )  # not a daemon: the engine starts worker processes of its own
        process.start()
        there.close()
        return cls(name, process, here)

    def stop(self) -> None:
        """Ask the part to stop (SIGTERM): the engine releases its leases first."""
        with contextlib.suppress(OSError, ValueError):
            self.process.terminate()

    def reap(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the part to end and collect its exit code;
        True once it has ended."""
        with self._reaping:
            self.process.join(timeout)
            return self.process.exitcode is not None

    def join(self, timeout: float) -> None:
        """Wait for the part to end; kill it after ``timeout`` seconds."""
        if not self.reap(timeout):
            log.warning("the %s did not stop within %.0fs; killing it", self.name, timeout)
            with self._reaping:
                self.process.kill()
            self.reap(5)

    def close(self) -> None:
        """Close the main process's end of the part's pipe (once nothing reads it)."""
        with contextlib.suppress(OSError):
            self.conn.close()


def start_parts(settings: Settings, options: ServerOptions, level: str) -> list[Part]:
    """Create or migrate the store's schema, then start every part (see the module)."""
    from kaon.store import open_store

    open_store(settings.store_url, create=settings.create_store).close()  # before any part opens it
    started: list[Part] = []
    try:
        for name in PARTS:
            started.append(Part.start(name, settings, options, level))
    except BaseException:
        stop_parts(started)
        raise
    return started


def stop_parts(parts: list[Part], timeout: float = 30) -> None:
    """Stop every part, wait for each (killing it after ``timeout`` seconds), close its pipe."""
    for part in parts:
        part.stop()
    for part in parts:
        part.join(timeout)
        part.close()


def part_main(
    name: str, settings: Settings, options: ServerOptions, level: str, conn: Connection, parent: int
) -> None:
    """A part's process: run it until SIGTERM/SIGINT, the main process's death or the end
    of its pipe; exit 1 when it fails (the main process then stops the server)."""
    _die_with(parent)
    from kaon.log_config import choose_level, configure_logging

    choose_level(level)
    configure_logging(default="info")
    stop = threading.Event()
    halts: list[Callable[[], None]] = [stop.set]

    def halt() -> None:
        for step in halts:
            step()

    halt_on_signals(halt)
    reporter = threading.Thread(target=_report, args=(conn, stop, halt), daemon=True)
    try:
        services = build_services(settings)
        try:
            reporter.start()
            if name == "engine":
                _run_engine(services, options, stop, halts)
            else:
                _run_triggers(services, options, stop)
        finally:
            services.runs.close()
    except BaseException:
        if not stop.is_set():
            log.exception("the %s died", name)
            sys.exit(1)
    finally:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("telemetry", telemetry.snapshot()))


def halt_on_signals(halt: Callable[[], None]) -> None:
    """Run ``halt`` on a thread of its own at the first SIGTERM or SIGINT.

    A signal handler runs on the main thread wherever it was interrupted, possibly holding a
    lock that ``halt`` takes: a part's main thread waits on its stop event, and the event's
    ``set`` takes the lock its ``wait`` holds, so halting in the handler could deadlock the
    part. The handler only queues the signal (``SimpleQueue.put`` is reentrant).
    """
    signalled: queue.SimpleQueue[int] = queue.SimpleQueue()

    def wait_then_halt() -> None:
        signalled.get()
        halt()

    threading.Thread(target=wait_then_halt, name="kaon-halt", daemon=True).start()
    # A process a step forks (the inline executor) gets the default handling instead: it
    # has no halting thread, and would ignore them.
    stop_signals.install(lambda signum, _frame: signalled.put(signum))


def _run_engine(
    services: Services, options: ServerOptions, stop: threading.Event, halts: list[Any]
) -> None:
    engine = build_engine(services, options)
    halts.append(engine.stop)  # thread- and signal-safe
    if stop.is_set():
        return
    try:
        engine.serve(
            admit=admission(services.store),
            claim_every_s=options.claim_every_s,
            max_runs=options.max_runs,
        )
    finally:
        engine.close()


def _run_triggers(services: Services, options: ServerOptions, stop: threading.Event) -> None:
    service = trigger_service(services, options)
    try:
        service.run_forever(stop)
    finally:
        services.extras["alerts"].close()


def _report(conn: Connection, stop: threading.Event, halt: Callable[[], None]) -> None:
    """Send this part's telemetry when it changed; halt when the main process is gone."""
    last: telemetry.Snapshot | None = None
    while not stop.is_set():
        try:
            if conn.poll(REPORT_S):
                conn.recv()  # the main process sends nothing: this is its end closing
            found = telemetry.snapshot()
            if found != last:
                conn.send(("telemetry", found))
                last = found
        except (EOFError, OSError):
            halt()
            return


def _die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when the main process dies (Linux)."""
    if _LINUX:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)

"""The ``ray`` executor: attempts run in Ray tasks on a cluster (``pip install 'kaon[ray]'``).

This module and :mod:`kaon.executors._ray_supervisor` are the only ones of Kaon that import
Ray (its typing is incomplete; the few ignores are there). The pieces:

* **The supervisor** (:mod:`kaon.executors._ray_supervisor`), a detached, named Ray actor,
  submits the attempts' tasks and owns them, so they outlive the engine's process: after an
  engine restart, :meth:`RayExecutor.reattach` takes attempts back instead of having them
  marked lost. Attempts sent together that ask for the same resources run in *batches*, several
  per Ray task, in order; one that runs long has the others handed back to tasks of their own.
* **The task** gets the step's code as the content-addressed bundle of its workflow version
  (:mod:`kaon.executors.code_bundle`), put in the object store once per version by the
  supervisor and written once per node, never a path on the engine's disk; it runs the
  requests through :mod:`kaon.executors._ray_attempt`. Inputs and outputs go through the
  artifact store, as on every executor.
* **The engine side** (:class:`RayExecutor`) keeps at most ``workers`` attempts in flight,
  sends new ones in batches (one actor call per engine turn), maps a step's ``resources`` to
  Ray's (``num_cpus``, ``memory``, ``num_gpus``, ``resources``), and reads events on one thread.

Cancellation and time-outs ``ray.cancel`` the task (a ``KeyboardInterrupt`` in it: its shell
commands and processes are killed and the worker exits; a forced cancel follows after
:data:`~kaon.executors._ray_supervisor.FORCE_AFTER_S` if it still runs). A task whose worker or
node dies is reported as a platform failure (``WorkerLost``) of the attempt that was running,
retried by the step's platform retry policy; Ray's own retries are off (``max_retries=0``), so
a retry is always Kaon's, recorded as an attempt.

Connecting: ``address`` (``--ray-address``, ``KAON_RAY_ADDRESS``) names a running cluster
(``host:port`` of its head, or ``ray://...``); without one, a local cluster is started on
demand on 127.0.0.1 and stopped with the executor. A cluster with token authentication (Ray
2.60+ ``RAY_AUTH_MODE=token``) is reached with its token: ``token`` (``KAON_RAY_TOKEN``, or a
file named by ``KAON_RAY_TOKEN_FILE``), handed to Ray as ``RAY_AUTH_TOKEN``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import ray  # type: ignore[import-untyped,unused-ignore]

from kaon.errors import ConfigurationError, DefinitionError, SystemFailure
from kaon.executors._ray_supervisor import NAMESPACE, Item, SupervisorActor, lost, unpack
from kaon.executors.base import EventSink, Executor, TaskRequest
from kaon.executors.code_bundle import BundleCache, CodeBundle
from kaon.model.events import AttemptKey, ErrorInfo, ExecutorEvent, StepFailed, StepSucceeded
from kaon.steptypes.registry import get_step_type

DRAIN_WAIT_S = 0.5
CANCEL_WAIT_S = 1.5  # at shutdown, for the last cancels to reach the supervisor
RECOVER_PING_S = 10.0  # for a new supervisor to answer after the last one died
MIN_IN_FLIGHT = 64  # default capacity floor: tiny attempts need many in flight to keep up
NODES_FRESH_S = 10.0  # how long the engine trusts its view of the cluster's nodes
_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
_log = logging.getLogger(__name__)


def _pack_request(request: TaskRequest) -> bytes:
    return pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)


def _final(event: ExecutorEvent) -> bool:
    return isinstance(event, StepSucceeded | StepFailed)


def ray_options(resources: Mapping[str, Any]) -> dict[str, Any]:
    """Ray task options for a step's normalized ``resources`` (see
    :mod:`kaon.model.resources`): one CPU by default, as Ray's own default."""
    options: dict[str, Any] = {"num_cpus": float(resources.get("cpus", 1.0))}
    if resources.get("memory"):
        options["memory"] = int(resources["memory"])
    if resources.get("gpus"):
        options["num_gpus"] = float(resources["gpus"])
    custom = resources.get("custom")
    if custom:
        options["resources"] = {str(k): float(v) for k, v in dict(custom).items()}
    return options


def _resources(request: TaskRequest) -> Mapping[str, Any]:
    """What the attempt asks for: its step's ``resources``, else what its step type says a
    step with its config needs (a Spark step's ``local[4]`` driver takes 4 CPUs)."""
    if request.resources:
        return request.resources
    try:
        return get_step_type(request.step_type).resources(request.config)
    except Exception:  # an unknown step type fails on the worker, with its own message
        return {}


def _token(given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("KAON_RAY_TOKEN"):
        return os.environ["KAON_RAY_TOKEN"]
    path = os.environ.get("KAON_RAY_TOKEN_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise ConfigurationError(f"KAON_RAY_TOKEN_FILE={path!r}: {exc.strerror}") from None
    return None


def _use_token(token: str) -> None:
    """Have this process's Ray client send ``token``. Ray reads its auth settings from the
    environment once and caches them: refresh both (the same calls Ray's own tests make)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = token
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    with contextlib.suppress(Exception):  # private API: an older Ray reads the env lazily
        from ray._raylet import (  # type: ignore[attr-defined,unused-ignore]
            AuthenticationTokenLoader,
            Config,
        )

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


class RayExecutor(Executor):
    """Runs attempts as Ray tasks; at most ``workers`` in flight (default: four per CPU of the
    cluster, at least :data:`MIN_IN_FLIGHT`; Ray queues them on the nodes). See the module
    docstring for connecting and the supervisor ``name``."""

    name: ClassVar[str] = "ray"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        token: str | None = None,
        name: str = "kaon",
        start_timeout_s: float = 120.0,
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigurationError(f"ray executor: workers must be >= 1, got {workers}")
        self._workers = workers
        self._address = address or os.environ.get("KAON_RAY_ADDRESS") or None
        self._endpoint = _endpoint(self._address)
        self._token = token
        self._actor_name = f"kaon-supervisor-{name}"
        self._start_timeout_s = start_timeout_s
        self.owner = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._outgoing: list[Item] = []
        self._waiting: collections.OrderedDict[AttemptKey, TaskRequest] = collections.OrderedDict()
        self._cancel_sent: Any = None  # the last cancel sent: awaited at shutdown
        self._lost = False  # the supervisor died and no new one answers yet
        self._bundle_files: dict[str, Mapping[str, bytes]] = {}  # every bundle sent, by digest
        self._inflight: set[AttemptKey] = set()
        self._cancelled: set[AttemptKey] = set()
        self._cancels: list[AttemptKey] = []
        self._sent_bundles: set[str] = set()
        self._new_bundles: dict[str, Mapping[str, bytes]] = {}
        self._bundles = BundleCache()
        self._sink: EventSink | None = None
        self._supervisor: Any = None
        self._started_cluster = False
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._nodes: list[dict[str, float]] = []
        self._nodes_at = -NODES_FRESH_S
        self._deadline: float | None = None  # the engine's lease deadline (see fence)
        self._reachable = False  # the address was checked (see _check_reachable)

    @property
    def capacity(self) -> int:
        """How many attempts may be in flight at once."""
        return self._workers or 1

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, sink: EventSink) -> None:
        """Connect (or start a local cluster), find or create the supervisor, start reading.

        Raises :class:`~kaon.errors.SystemFailure` when the cluster cannot be reached.
        """
        if self._sink is not None:
            raise SystemFailure("ray executor already started")
        self._connect()
        self._supervisor = self._find_supervisor()
        try:
            ray.get(self._supervisor.ping.remote(), timeout=self._start_timeout_s)
        except Exception as exc:
            raise SystemFailure(f"ray executor: the supervisor actor cannot start: {exc}") from exc
        if self._workers is None:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call]
            self._workers = max(MIN_IN_FLIGHT, int(cpus * 4))
        self._sink = sink
        loops = ((self._read_loop, "reader"), (self._send_loop, "sender"), (self._watch, "fence"))
        for target, label in loops:
            thread = threading.Thread(target=target, name=f"kaon-ray-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def warm(self) -> None:
        """Check that the cluster's address answers, before a run is recorded for it (``kaon
        run`` calls this first): ``ray.init`` would wait for an unreachable one for ever."""
        self._check_reachable()

    def _check_reachable(self) -> None:
        """Refuse an address where no Ray head answers (``ray.init`` would wait for ever):
        nothing listening, or something that is not the head's GCS (a dashboard, a worker's
        port, any other server): a bounded handshake with the GCS, once per executor."""
        if self._endpoint is None or self._reachable:
            return
        host, port = self._endpoint
        try:
            socket.create_connection((host, port), timeout=CONNECT_CHECK_S).close()
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ConfigurationError(
                f"{ADDRESS_SETTING}: nothing answers at {self._address} ({reason}): start the "
                "cluster (ray start --head) or give its address"
            ) from None
        if not self._address or not self._address.strip().startswith("ray://"):
            token = _token(self._token)
            if token:
                _use_token(token)
            _check_gcs(self._address or f"{host}:{port}")
        self._reachable = True

    def _connect(self) -> None:
        self._check_reachable()
        token = _token(self._token)
        if token:
            _use_token(token)
        if ray.is_initialized():
            return
        options: dict[str, Any] = {
            "namespace": NAMESPACE,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if self._address:
            options["address"] = self._address
        else:
            options.update(include_dashboard=False, _node_ip_address="127.0.0.1")
            self._started_cluster = True
        kept = _signal_handlers()
        try:
            ray.init(**options)
        except Exception as exc:
            where = self._address or "a local cluster"
            raise SystemFailure(f"ray executor: cannot connect to {where}: {exc}") from exc
        finally:
            _restore_signal_handlers(kept)

    def shutdown(self) -> None:
        """Stop reading and sending. Attempts still running on the cluster keep running
        (their supervisor owns them): a later engine may re-attach to them. A cluster this
        executor started is stopped, and its attempts with it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=DRAIN_WAIT_S * 4)
        if self._started_cluster:
            ray.shutdown()

    # -- tasks -----------------------------------------------------------------------------

    def submit(self, request: TaskRequest) -> None:
        """Send ``request`` to the cluster (batched with others), or hold it while
        ``workers`` attempts are in flight. Never blocks on the task."""
        self.submit_many([request])

    def submit_many(self, requests: list[TaskRequest]) -> None:
        """Send ``requests`` together (one message to the supervisor), holding those beyond
        ``workers`` in flight."""
        if self._sink is None:
            raise SystemFailure("ray executor: submit() before start()")
        with self._lock:
            if self._closed:
                raise SystemFailure("ray executor: submit() after shutdown()")
            with self._bundles.turn():
                for request in requests:
                    if len(self._inflight) < self.capacity:
                        self._send(request)
                    else:
                        self._waiting[request.key] = request

    def fence(self, deadline: float | None) -> None:
        """Publish the engine's lease deadline: no attempt is sent after it, and a watchdog
        thread of this executor cancels the Ray tasks in flight once it passes unrenewed (the
        engine alive but cut off from the store). A frozen engine process cannot cancel
        them; the process executor's workers fence themselves (see
        :mod:`kaon.executors._lease_fence`)."""
        with self._lock:
            self._deadline = deadline

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _watch(self) -> None:
        while not self._closed:
            time.sleep(0.1)
            with self._lock:
                doomed = list(self._inflight) if self._expired() else []
            for key in doomed:
                self.cancel(key)
            if doomed:
                message = "the engine's lease on the run ran out; its Ray task was cancelled"
                info = ErrorInfo("LeaseExpired", message, platform=True)
                self._emit([StepFailed(key, time.time(), info) for key in doomed])

    def _send(self, request: TaskRequest) -> None:
        """Queue ``request`` for the sender thread (inside the lock)."""
        if self._expired():
            message = (
                f"step {request.step_path} was not started: the engine's lease on run "
                f"{request.run_id} ran out"
            )
            info = ErrorInfo("LeaseExpired", message, platform=True)
            self._fail_soon(StepFailed(request.key, time.time(), info))
            return
        resources = _resources(request)
        refusal = self._infeasible(resources) if resources else None
        if refusal is not None:
            info = ErrorInfo("Unschedulable", f"step {request.step_path}: {refusal}")
            self._fail_soon(StepFailed(request.key, time.time(), info))
            return
        try:
            bundle = self._bundles.for_request(request)
        except DefinitionError as exc:
            message = f"the code of step {request.step_path} cannot be sent: {exc}"
            self._fail_soon(StepFailed(request.key, time.time(), ErrorInfo("BundleError", message)))
            return
        try:
            item = self._item(request, bundle, ray_options(resources))
        except Exception as exc:  # the request cannot be pickled: the step's, not ours
            message = f"the request for step {request.step_path} cannot be sent: {exc}"
            self._fail_soon(
                StepFailed(request.key, time.time(), ErrorInfo("PicklingError", message))
            )
            return
        self._inflight.add(request.key)
        self._outgoing.append(item)
        self._wake.notify_all()

    def _fail_soon(self, failure: StepFailed) -> None:
        """Deliver ``failure`` from another thread (the caller holds the lock)."""
        threading.Thread(target=self._emit, args=([failure],), daemon=True).start()

    def _infeasible(self, resources: Mapping[str, Any]) -> str | None:
        """Why no node of the cluster could ever run a task asking for ``resources`` (Ray
        would hold it forever), or None. The nodes are looked at every
        :data:`NODES_FRESH_S` seconds at most."""
        now = time.monotonic()
        if now - self._nodes_at > NODES_FRESH_S:
            try:
                nodes = ray.nodes()  # type: ignore[no-untyped-call,unused-ignore]
            except Exception:
                return None  # cannot tell: let Ray decide
            self._nodes = [dict(n.get("Resources") or {}) for n in nodes if n.get("Alive")]
            self._nodes_at = now
        wanted = {_RAY_NAMES[k]: v for k, v in ray_options(resources).items() if k in _RAY_NAMES}
        wanted.update(ray_options(resources).get("resources", {}))
        if any(all(node.get(k, 0.0) >= v for k, v in wanted.items()) for node in self._nodes):
            return None
        asked = ", ".join(f"{k}={_amount(k, v)}" for k, v in sorted(wanted.items()))
        return f"no node of the Ray cluster offers {asked}"

    def _item(self, request: TaskRequest, bundle: CodeBundle | None, options: Any) -> Item:
        packed = _pack_request(request)
        if bundle is None:
            return (request.key, packed, None, "", options)
        if bundle.digest not in self._sent_bundles:
            self._sent_bundles.add(bundle.digest)
            self._new_bundles[bundle.digest] = bundle.files  # goes with this batch
            self._bundle_files[bundle.digest] = bundle.files  # for a new supervisor
        return (request.key, packed, bundle.digest, bundle.folder, options)

    def cancel(self, key: AttemptKey) -> None:
        """Kill the attempt: drop it if not yet sent, else cancel its Ray task. No event of
        it is delivered after this returns."""
        with self._lock:
            if self._waiting.pop(key, None) is not None:
                return
            if key not in self._inflight:
                return
            self._inflight.discard(key)
            self._cancelled.add(key)
            kept = [item for item in self._outgoing if item[0] != key]
            if len(kept) == len(self._outgoing):
                self._cancels.append(key)
            self._outgoing = kept
            self._fill()
            self._wake.notify_all()

    def reattach(self, key: AttemptKey) -> bool:
        """Take back an attempt an earlier engine started; True when the supervisor still runs
        it (or holds its end): its events follow on the sink."""
        if self._supervisor is None:
            return False
        with self._lock:  # before asking: its end may be delivered before the answer
            self._inflight.add(key)
        try:
            found = ray.get(self._supervisor.reattach.remote(self.owner, [key]), timeout=30)
        except Exception:
            _log.exception("ray executor: cannot ask the supervisor about %s", key)
            found = []
        if key in found:
            return True
        with self._lock:
            self._inflight.discard(key)
        return False

    def _fill(self) -> None:
        """Send held requests while there is room (inside the lock)."""
        with self._bundles.turn():
            while self._waiting and len(self._inflight) < self.capacity:
                _, request = self._waiting.popitem(last=False)
                self._send(request)

    # -- threads ---------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                # While the supervisor is being replaced, new attempts wait here for it.
                while not self._closed and (self._lost or not (self._outgoing or self._cancels)):
                    self._wake.wait()
                closed = self._closed
                if closed:
                    # New attempts are dropped (the run is resumed later), cancels are not:
                    # an engine that kills a run and then shuts down (``kaon kill``, fail_fast,
                    # a run timeout) must stop its tasks on the cluster, which outlives it.
                    last, self._cancels = self._cancels, []
            if closed:
                self._send_last_cancels(last)
                return
            with self._lock:
                items, self._outgoing = self._outgoing, []
                cancels, self._cancels = self._cancels, []
                bundles, self._new_bundles = self._new_bundles, {}
            try:
                if items:
                    self._supervisor.submit.remote(self.owner, items, bundles)
                if cancels:
                    self._cancel_sent = self._supervisor.cancel.remote(cancels)
            except Exception as exc:  # the cluster is gone: fail what was sent
                self._emit([lost(item[0], exc) for item in items])

    def _send_last_cancels(self, cancels: list[AttemptKey]) -> None:
        """Deliver the cancels still queued at shutdown, and wait (briefly) until the
        supervisor has them: the process may exit right after."""
        pending = [self._cancel_sent] if self._cancel_sent is not None else []
        if cancels:
            pending.append(self._supervisor.cancel.remote(cancels))
        if not pending:
            return
        try:
            ray.get(pending, timeout=CANCEL_WAIT_S)
        except Exception:
            _log.warning("ray executor: %d cancels may not have reached the cluster", len(cancels))

    def _read_loop(self) -> None:
        while not self._closed:
            try:
                blobs = ray.get(self._supervisor.drain.remote(self.owner, DRAIN_WAIT_S))
                events = [event for blob in blobs for event in unpack(blob)]
            except Exception as exc:
                if self._closed:
                    return
                self._supervisor_lost(exc)
                if not self._recover():
                    return
                continue
            self._emit(self._accept(events))

    def _accept(self, events: Sequence[ExecutorEvent]) -> list[ExecutorEvent]:
        forward = []
        with self._lock:
            for event in events:
                if event.key in self._cancelled:
                    if _final(event):
                        self._cancelled.discard(event.key)
                    continue
                if _final(event):
                    if event.key not in self._inflight:
                        continue  # a repeat of an end already delivered
                    self._inflight.discard(event.key)
                forward.append(event)
            self._fill()
        return forward

    def _find_supervisor(self) -> Any:
        """The cluster's supervisor actor: the running one, or a new one."""
        return SupervisorActor.options(
            name=self._actor_name,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=10_000,
            max_restarts=0,
        ).remote()

    def _supervisor_lost(self, exc: BaseException) -> None:
        _log.error("ray executor: the supervisor actor is lost: %s", exc)
        with self._lock:
            self._lost = True  # new attempts wait until a new supervisor answers
            keys = list(self._inflight) + list(self._waiting)
            self._inflight.clear()
            self._waiting.clear()
        self._emit([lost(key, exc) for key in keys])

    def _recover(self) -> bool:
        """Start a new supervisor after the last one died (its attempts were reported lost;
        the engine retries them as platform failures), retrying with backoff while this
        executor is open; True once one answers."""
        delay = 0.5
        while not self._closed:
            try:
                supervisor = self._find_supervisor()
                ray.get(supervisor.ping.remote(), timeout=RECOVER_PING_S)
            except Exception as exc:
                _log.warning("ray executor: no supervisor yet (%s); again in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            with self._lock:
                self._supervisor = supervisor
                # The new supervisor holds none of the code: the waiting attempts' bundles go
                # with them, and any other is sent again with its next attempt.
                digests = {item[2] for item in self._outgoing if item[2] is not None}
                self._sent_bundles = {d for d in digests if d in self._bundle_files}
                self._new_bundles = {d: self._bundle_files[d] for d in self._sent_bundles}
                self._cancels.clear()  # the attempts they named died with the old one
                self._lost = False
                self._wake.notify_all()
            _log.warning("ray executor: a new supervisor actor took over")
            return True
        return False

    def _emit(self, events: list[ExecutorEvent]) -> None:
        sink = self._sink
        if sink is None:
            return
        for event in events:
            try:
                sink(event)
            except Exception:
                _log.exception("event sink failed on %r", event)


ADDRESS_SETTING = "--ray-address / KAON_RAY_ADDRESS"
CONNECT_CHECK_S = 5.0
GCS_CHECK_S = 15.0  # for a head's GCS to answer Ray's handshake (well under 1 s when it is one)


def _check_gcs(address: str) -> None:
    """Raise ConfigurationError unless a Ray head's GCS answers at ``address`` within
    :data:`GCS_CHECK_S`. A port that accepts connections but is not a GCS (the dashboard's
    8265, a raylet's port, any other server) has ``ray.init`` wait for ever; Ray's own GCS
    client gives up after about 40 s, so it is made in a thread and waited for here."""
    answer: list[BaseException | None] = []

    def handshake() -> None:
        from ray._raylet import GcsClient  # type: ignore[attr-defined,unused-ignore]

        try:
            GcsClient(address=address)
            answer.append(None)
        except Exception as exc:  # reported to the caller
            answer.append(exc)

    thread = threading.Thread(target=handshake, name="kaon-ray-gcs-check", daemon=True)
    thread.start()
    thread.join(GCS_CHECK_S)
    if not answer:
        raise ConfigurationError(
            f"{ADDRESS_SETTING}: something answers at {address}, but not a Ray cluster's head "
            f"(no answer to Ray's handshake within {GCS_CHECK_S:g} s): give the head's GCS "
            "port (the one `ray start --head` prints, 6379 by default), not the dashboard's "
            "or another service's"
        )
    error = answer[0]
    if error is not None:
        detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise ConfigurationError(
            f"{ADDRESS_SETTING}: the Ray cluster at {address} refuses Kaon's client: "
            f"{type(error).__name__}: {detail}"
        ) from None


_ADDRESS = re.compile(r"(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


def _endpoint(address: str | None) -> tuple[str, int] | None:
    """The host and port an address names (``HOST:PORT`` or ``ray://HOST:PORT``), None for
    ``auto`` / ``local`` / no address. Raises ConfigurationError for anything else."""
    if address is None or address in ("auto", "local"):
        return None
    match = _ADDRESS.fullmatch(address.strip())
    port = int(match.group(2)) if match else 0
    if match is None or not 0 < port < 65536:
        raise ConfigurationError(
            f"{ADDRESS_SETTING}: {address!r} is not a cluster address: use HOST:PORT (the head's "
            "GCS port, 127.0.0.1:6379), ray://HOST:PORT or auto"
        )
    return match.group(1).strip("[]"), port


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _signal_handlers() -> dict[signal.Signals, Any]:
    """The process's handlers of the stop signals (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}


def _restore_signal_handlers(kept: dict[signal.Signals, Any]) -> None:
    """Put back the handlers ``ray.init`` replaced with its own (which dumps a stack and
    exits 15 on SIGTERM): ``kaon run`` stops cleanly, its run left to ``kaon resume``."""
    for sig, handler in kept.items():
        if handler is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)


def _amount(resource: str, value: float) -> str:
    """A resource amount as people read it: memory in MiB/GiB, the rest as numbers."""
    if resource in ("memory", "object_store_memory") and value >= 1024**2:
        mib = value / 1024**2
        return f"{mib / 1024:.4g} GiB" if mib >= 1024 else f"{mib:.4g} MiB"
    return f"{value:g}"

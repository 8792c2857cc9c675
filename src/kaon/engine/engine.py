"""The engine loop: apply executor events, commit, then act.

One thread drives every run the engine holds. Each turn it

1. waits for executor events (or the next timer),
2. applies them to the runs' in-memory state, fires due timers and users' commands,
3. lets the runs decide what is ready and builds the attempts to start,
4. commits everything decided in this turn as **one** write batch, and only then
5. tells the executor to start and cancel attempts, and notifies listeners.

Because step 5 follows step 4, a crash at any instant loses nothing that was acted on: on
resume, attempts recorded as running are marked lost and retried under the platform budget.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable

import psutil

from kaon.artifacts.base import ArtifactStore
from kaon.engine.context import EngineContext, Outbox
from kaon.engine.memo import Fingerprint
from kaon.engine.runstate import RunState
from kaon.errors import InvalidActionError, KaonError, LeaseError
from kaon.executors.base import Executor
from kaon.model.codec import workflow_from_dict
from kaon.model.events import (
    ExecutorEvent,
    LogLine,
    LogStored,
    MetricReported,
    ProgressReported,
    SignalEmitted,
    StepFailed,
    StepStarted,
    StepSucceeded,
)
from kaon.model.status import RunStatus
from kaon.store.base import (
    EventRecord,
    LogRecord,
    MetricRecord,
    RunRecord,
    SignalRecord,
    StateStore,
    WriteBatch,
)

Listener = Callable[[list[EventRecord]], None]
SOFT_DELAY_S = 0.05  # how long reports that nothing acts on may wait to be committed


def _only_reports(batch: WriteBatch) -> bool:
    """True when a batch holds nothing but reports: attempts' start times and workers, log
    lines, metrics and progress. Delaying those commits loses no decision."""
    decisive = (
        batch.definitions
        or batch.runs
        or batch.run_updates
        or batch.step_runs
        or batch.step_run_updates
        or batch.attempts
        or batch.commands
        or batch.commands_done
        or batch.cache_entries
        or batch.artifacts
        or batch.signals
    )
    return not decisive and all(e.kind == "progress" for e in batch.events)


GC_THRESHOLD = (50_000, 20, 100)
_gc_tuned = False


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for an engine's heap.

    The engine keeps many small, long-lived objects (nodes, frames, references) and creates
    many short-lived ones per turn; with Python's default thresholds, collections of the older
    generations take a large share of a foreach's time (measured: a 10,000-item cached rerun
    goes from 1.56 s to 1.11 s). Objects alive at start-up are frozen out of collection, and
    the youngest generation is collected every 50,000 allocations instead of 700. Done once
    per process.
    """
    global _gc_tuned
    if not _gc_tuned:
        _gc_tuned = True
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)


def default_owner() -> str:
    """An engine identity: ``host:pid:nonce``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    if not owner:
        return True
    parts = owner.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    return pid != os.getpid() and not psutil.pid_exists(pid)


class Engine:
    """Drives runs to completion against a store, an executor and an artifact store."""

    def __init__(
        self,
        store: StateStore,
        executor: Executor,
        artifacts: ArtifactStore,
        *,
        owner: str | None = None,
        lease_ttl: float = 30.0,
        command_poll_s: float = 0.2,
        clock: Callable[[], float] = time.time,
        fingerprint: Fingerprint | None = None,
        tune_collector: bool = True,
    ) -> None:
        self.ctx = EngineContext(store, artifacts, clock, fingerprint)
        self.store = store
        self.executor = executor
        self.artifacts = artifacts
        self.owner = owner or default_owner()
        self.lease_ttl = lease_ttl
        self.command_poll_s = command_poll_s
        self.runs: dict[str, RunState] = {}
        self._events: queue.SimpleQueue[ExecutorEvent] = queue.SimpleQueue()
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._started = False
        self._next_poll = 0.0
        self._next_renew = 0.0
        self._soft_since: float | None = None  # when uncommitted reports started waiting
        self._tune_collector = tune_collector

    # -- public API --------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with each committed batch of events (in the engine thread)."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start the executor's workers (and tune the garbage collector, see :func:`tune_gc`,
        unless the engine was made with ``tune_collector=False``)."""
        if self._tune_collector:
            tune_gc()
        if not self._started:
            self.executor.start(self._events.put)
            self._started = True

    def add_run(self, run_id: str) -> RunState:
        """Take the lease on a run and load it. Raises LeaseError, InvalidActionError."""
        record = self.store.get_run(run_id)
        if record.status.is_terminal:
            raise InvalidActionError(
                f"run {run_id} is {record.status.value}; use restart to run it again"
            )
        now = self.ctx.clock()
        if not self.store.acquire_lease(run_id, self.owner, now + self.lease_ttl, now):
            if not owner_is_dead(record.owner):
                raise LeaseError(
                    f"run {run_id} is being run by {record.owner} (lease until "
                    f"{time.ctime(record.lease_until or 0)}); kill it or wait"
                )
            # The holder died on this host: its lease is void.
            stale = (record.lease_until or now) + 1.0
            if not self.store.acquire_lease(run_id, self.owner, stale + self.lease_ttl, stale):
                raise LeaseError(f"run {run_id} was taken over by another engine")
        record = self.store.get_run(run_id)
        spec = workflow_from_dict(self.store.get_definition(record.definition_hash).spec)
        state = RunState(record, spec, self.ctx)
        self.runs[run_id] = state
        state.start()
        return state

    def run_until_done(self, run_id: str) -> RunStatus:
        """Drive ``run_id`` (and any other held run) until it finishes or :meth:`stop` is called.

        Returns the run's status: terminal, or RUNNING when stopped early.
        """
        self.start()
        state = self.runs.get(run_id) or self.add_run(run_id)
        while not self._stop.is_set():
            self.turn()
            if state.finished and run_id not in self.runs:
                break
        return state.status

    def serve(
        self,
        *,
        admit: Callable[[RunRecord], bool] | None = None,
        claim_every_s: float = 0.25,
        max_runs: int = 1000,
    ) -> None:
        """Drive every run that needs an engine until :meth:`stop`: the server's loop.

        Every ``claim_every_s`` it claims pending runs, and running runs whose engine died
        (lease expired, or holder gone from this host), that ``admit`` accepts (the run
        strategy's say; default: all), up to ``max_runs`` held at once.
        """
        self.start()
        next_claim = 0.0
        while not self._stop.is_set():
            now = self.ctx.clock()
            if now >= next_claim:
                next_claim = now + claim_every_s
                self._claim(admit, max_runs, now)
            self.turn(max_wait=claim_every_s)

    def _claim(self, admit: Callable[[RunRecord], bool] | None, max_runs: int, now: float) -> None:
        room = max_runs - len(self.runs)
        if room <= 0:
            return
        candidates = self.store.list_runs(
            statuses=[RunStatus.PENDING, RunStatus.RUNNING], limit=room * 2
        )
        for record in sorted(candidates, key=lambda r: r.created_at):
            if record.id in self.runs or room <= 0:
                continue
            orphaned = record.owner is None or (record.lease_until or 0) < now
            if not orphaned and not owner_is_dead(record.owner):
                continue
            if admit is not None and not admit(record):
                continue
            try:
                self.add_run(record.id)
                room -= 1
            except (LeaseError, InvalidActionError):
                continue

    def stop(self) -> None:
        """Ask the loop to exit after the current turn (thread- and signal-safe)."""
        self._stop.set()
        self._events.put(_WAKE)

    def close(self) -> None:
        """Release leases of unfinished runs and stop the executor."""
        for run_id in list(self.runs):
            with contextlib.suppress(KaonError):
                self.store.release_lease(run_id, self.owner)
        self.runs.clear()
        if self._started:
            self.executor.shutdown()
            self._started = False

    # -- the loop ----------------------------------------------------------------------------

    def turn(self, max_wait: float = 1.0) -> None:
        """One turn: wait (at most ``max_wait``), apply, decide, commit, act."""
        for event in self._drain(min(self._wait_time(), max_wait)):
            self._apply(event)
        now = self.ctx.clock()
        timers = self.ctx.timers
        while timers and timers[0].at <= now:
            timer = heapq.heappop(timers)
            state = self.runs.get(timer.run_id)
            if state is not None:
                state.timer_fired(timer)
        if now >= self._next_poll:
            self._next_poll = now + self.command_poll_s
            self._poll_commands()
        if now >= self._next_renew:
            self._next_renew = now + self.lease_ttl / 3
            self._renew_leases(now)
        self._advance()
        finished = [s for s in self.runs.values() if s.finished]
        for state in finished:
            self.ctx.batch.update_run(state.id, owner=None, lease_until=None)
        self._commit_and_act()
        for state in finished:
            self.runs.pop(state.id, None)

    def _wait_time(self) -> float:
        if any(s.work or s.frames_done for s in self.runs.values()):
            return 0.0
        now = self.ctx.clock()
        wake = min(self._next_poll, self._next_renew)
        if self._soft_since is not None:
            wake = min(wake, self._soft_since + SOFT_DELAY_S)
        if self.ctx.timers:
            wake = min(wake, self.ctx.timers[0].at)
        return max(0.0, min(wake - now, 1.0))

    def _drain(self, timeout: float) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        try:
            first = self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
        except queue.Empty:
            return events
        if first is not _WAKE:
            events.append(first)
        while len(events) < 5000:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event is not _WAKE:
                events.append(event)
        return events

    def _apply(self, event: ExecutorEvent) -> None:
        run_id, step_run_id, attempt = event.key
        state = self.runs.get(run_id)
        if state is None:
            return
        batch = self.ctx.batch
        if isinstance(event, StepSucceeded):
            state.attempt_succeeded(event.key, event.at, dict(event.outputs))
        elif isinstance(event, StepFailed):
            state.attempt_failed(event.key, event.at, event.error, event.outputs)
        elif isinstance(event, LogLine):
            batch.logs.append(
                LogRecord(run_id, step_run_id, attempt, event.at, event.stream, event.text)
            )
        elif isinstance(event, LogStored):
            state.attempt_log_stored(event.key, event.at, event.ref)
        elif isinstance(event, MetricReported):
            batch.metrics.append(
                MetricRecord(
                    run_id, step_run_id, attempt, event.name, event.value, event.at, event.step
                )
            )
        elif isinstance(event, ProgressReported):
            data = {"fraction": event.fraction, "message": event.message, "attempt": attempt}
            batch.events.append(EventRecord(run_id, "progress", event.at, data, step_run_id))
        elif isinstance(event, StepStarted):
            state.attempt_started(event.key, event.at, event.worker)
        elif isinstance(event, SignalEmitted):
            batch.signals.append(
                SignalRecord(event.name, dict(event.params), event.at, "step", run_id)
            )

    def _advance(self) -> None:
        free = self.executor.capacity - sum(len(s.inflight) for s in self.runs.values())
        url = self.artifacts.url
        busy = True
        while busy:
            busy = False
            for state in self.runs.values():
                state.process()
            for state in self.runs.values():
                while free > 0:
                    request = state.next_request(url)
                    if request is None:
                        break
                    self.ctx.outbox.submit.append(request)
                    free -= 1
                if (state.work or state.frames_done) and not state.finished:
                    busy = True

    def _commit_and_act(self) -> None:
        batch, outbox = self.ctx.batch, self.ctx.outbox
        if not batch and not outbox.submit and not outbox.cancel:
            return
        now = self.ctx.clock()
        if not outbox.submit and not outbox.cancel and _only_reports(batch):
            # Nothing will be acted on: reports (attempt started, logs, metrics, progress)
            # may wait for the next decisive change, at most SOFT_DELAY_S.
            if self._soft_since is None:
                self._soft_since = now
            if now - self._soft_since < SOFT_DELAY_S:
                return
        self._soft_since = None
        self.ctx.batch, self.ctx.outbox = WriteBatch(), Outbox()
        if batch:
            self.store.write(batch)
        if batch.events:
            for listener in self._listeners:
                listener(batch.events)
        for key in outbox.cancel:
            self.executor.cancel(key)
        for request in outbox.submit:
            self.executor.submit(request)

    def _poll_commands(self) -> None:
        now = self.ctx.clock()
        for state in list(self.runs.values()):
            if state.waiting:
                since = state.record.created_at
                state.deliver_signals(
                    self.store.signals(after_id=state.signal_cursor, since=since, limit=500)
                )
            for command in self.store.pending_commands(state.id):
                assert command.id is not None
                self.ctx.batch.commands_done[command.id] = now
                self._execute_command(state, command.kind, command.payload, command.by)

    def _execute_command(
        self, state: RunState, kind: str, payload: dict[str, object], by: str
    ) -> None:
        try:
            if kind == "kill":
                state.abort(RunStatus.CANCELLED, f"killed by {by or 'a user'}")
            elif kind == "cancel":
                state.cancel_step(str(payload.get("path", "")), by)
            elif kind == "skip":
                path = str(payload.get("path", ""))
                state.skip(path, payload.get("output"), has_output="output" in payload)
            else:
                raise InvalidActionError(f"unknown command {kind!r}")
        except KaonError as exc:
            self.ctx.batch.events.append(
                EventRecord(state.id, "command_rejected", self.ctx.clock(), {"error": str(exc)})
            )

    def _renew_leases(self, now: float) -> None:
        for run_id in list(self.runs):
            if not self.store.acquire_lease(run_id, self.owner, now + self.lease_ttl, now):
                # Another engine took the run over: stop driving it, write nothing more.
                state = self.runs.pop(run_id)
                for key in list(state.inflight):
                    self.executor.cancel(key)


class _Wake:
    """A no-op event that wakes the loop (used by stop)."""

    key = ("", 0, 0)


_WAKE: ExecutorEvent = _Wake()  # type: ignore[assignment]

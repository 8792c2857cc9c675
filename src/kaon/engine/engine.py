"""The engine loop: apply executor events, commit, then act.

One turn at a time drives every run the engine holds: on the engine's thread, or, when a
chain's step ends with nothing else in flight, on the executor's thread that learns of it
(the inline thread that ran it, the process executor's reader; see
:class:`~kaon.executors.base.EventInbox`): a chain of short steps then costs no thread
hand-off per step. Each turn it

1. waits for executor events (or the next timer),
2. applies them to the runs' in-memory state, fires due timers and users' commands,
3. lets the runs decide what is ready and builds the attempts to start,
4. commits everything decided in this turn as **one** write batch, and only then
5. tells the executor to start and cancel attempts, and notifies listeners.

Because step 5 follows step 4, a crash at any instant loses nothing that was acted on: on
resume, attempts recorded as running are marked lost and retried under the platform budget.

Runs are isolated from each other and from the engine (see :meth:`Engine.quarantine`): an
error confined to one run fails that run, with the reason on the run, and the engine goes on.
Every write is fenced by the lease epochs the engine holds (:class:`~kaon.store.base.Fence`):
an engine that lost a run to another stops that run's attempts and lets it go.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kaon.artifacts.base import ArtifactStore
from kaon.engine import operations
from kaon.engine.context import EngineContext, Outbox
from kaon.engine.liveness import EngineLock, new_owner, owner_is_dead, release_dead_leases
from kaon.engine.memo import Fingerprint
from kaon.engine.nodes import Node
from kaon.engine.outages import ArtifactOutages
from kaon.engine.refusals import AdmissionChanges, RefusalMemory
from kaon.engine.runstate import RunState
from kaon.engine.tenancy import Tenancy, uses_tenancy
from kaon.errors import (
    ArtifactUnavailableError,
    FencingError,
    InvalidActionError,
    KaonError,
    LeaseError,
    StoreError,
    StoreUnavailableError,
)
from kaon.executors.base import EventInbox, Executor, TaskRequest
from kaon.model.events import (
    MAX_METRIC_NAME_CHARS,
    MAX_PROGRESS_MESSAGE_CHARS,
    AttemptKey,
    ErrorInfo,
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
from kaon.model.params import json_problem
from kaon.model.spec_cache import SPECS
from kaon.model.specs import WorkflowSpec, signal_name_problem
from kaon.model.status import RunStatus
from kaon.model.text import bounded_text, exception_text, holds_nul, readable_text
from kaon.store.base import (
    ClaimKey,
    CommandRecord,
    EventRecord,
    Fence,
    LogRecord,
    MetricRecord,
    RunRecord,
    SignalRecord,
    StateStore,
    WriteBatch,
    claim_key,
)

__all__ = ["Engine", "Listener", "default_owner", "owner_is_dead", "tune_gc"]

FENCE_FRACTION = 0.75
"""Of the lease: when no renewal succeeded for this long, the executor's workers stop their
attempts (renewals come every third of it; the last quarter leaves time for the kill before
another engine may take over)."""
log = logging.getLogger("kaon.engine")
Listener = Callable[[list[EventRecord]], None]
QUARANTINED = "quarantined"  # prefix of the error of a run failed by isolation
# A store error's "store postgresql+psycopg://user@host:port/db: " (a run's readers and its
# alerts see its error; the server's log has the whole of it).
_STORE_WHERE = re.compile(r"\bstore [a-z0-9+]+://\S*: ")
RETRY_MAX_S = 2.0  # longest pause between retries of a write while the store is unavailable
DEAD_CHECK_S = 1.0  # how often serve() checks whether the engines holding leases are alive
# Claimable runs per page, and pages at most, that a claiming pass reads to find each owner
# group's oldest run (each page skips the workflows already seen; see _claim_fair_share).
FAIR_PAGE = 50
FAIR_PAGES = 8
SOFT_DELAY_S = 0.05  # how long reports that nothing acts on may wait to be committed
# A turn on an executor's thread wakes the engine's thread when it moved the next deadline
# earlier than the thread's wake-up by more than this: the same deadline found again, read a
# few microseconds later on the engine's clock, is no reason (it was a wake-up per chain step).
EARLIER_WAKE_S = 0.001


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
    """An engine identity: ``host:pid:nonce`` (see :mod:`kaon.engine.liveness`)."""
    return new_owner()


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
        owner_group_of: Callable[[str], str | None] | None = None,
        on_turn: Callable[[float], None] | None = None,
        localize: Callable[[WorkflowSpec], WorkflowSpec] | None = None,
    ) -> None:
        self.ctx = EngineContext(store, artifacts, clock, fingerprint)
        # A server's: a stored definition's portable code paths made this replica's own
        # (kaon.service.bundle_files), once per definition.
        self.localize = localize
        self._local_specs: dict[str, WorkflowSpec] = {}
        # A workflow's owner group, to deliver a scoped signal only where it may go (server).
        self.owner_group_of = owner_group_of
        self.on_turn = on_turn  # told how long each turn that did work took (its wait excluded)
        self.store = store
        self.executor = executor
        self.artifacts = artifacts
        self.owner = owner or default_owner()
        self.lease_ttl = lease_ttl
        self.command_poll_s = command_poll_s
        self.runs: dict[str, RunState] = {}
        self.epochs: dict[str, int] = {}  # the lease epoch held on each run
        # When each held lease was last written (time.monotonic() before the write): the
        # workers' deadline follows the oldest (see _publish_fence).
        self._renewed: dict[str, float] = {}
        self._fence: float | None = None
        self._fence_stale = False  # a run was let go since the fence was last published
        # Runs something happened to since they were last advanced (events, timers, commands,
        # signals, a start), or whose ready steps wait for room: a turn looks at these only,
        # so its cost follows the activity, not the number of runs held (see _advance).
        self._touched: set[str] = set()
        self._busy: set[str] = set()  # runs with attempts in flight
        self.lost: dict[str, KaonError] = {}  # runs let go (fenced out) or quarantined, why
        self.outages = ArtifactOutages()  # runs let go after an artifact store failure
        self.refusals = RefusalMemory()  # queue heads the run strategies refused lately
        self._lock = EngineLock(self.owner)
        self._leases_left = False  # a lease this engine let go of could not be released
        # Executor events; a turn runs on the engine's thread, or on an executor's thread
        # that has just finished an attempt (see EventInbox.settle), one at a time.
        self._inbox = EventInbox(self._drive, quiet_wait_s=SOFT_DELAY_S)
        self._turn_lock = threading.RLock()
        self._looping = 0  # loops (run_until_done, serve) driving: only then may others
        self._sleep_until = 0.0  # when the engine's thread, waiting, wakes (monotonic)
        self._failure: BaseException | None = None  # raised by a turn on another thread
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._next_dead_check = 0.0  # when serve() next looks for dead engines' leases
        self._started = False
        self._next_poll = 0.0
        self._next_renew = time.monotonic() + lease_ttl / 3
        self._soft_since: float | None = None  # when uncommitted reports started waiting
        self._tune_collector = tune_collector
        self.ctx.reattach = self._reattach
        self.ctx.steps_in_engine_process = executor.in_engine_process
        # Pools, permits, priorities, fair share: idle (and free) unless configured or used.
        self.tenancy = Tenancy(store, self.owner, owner_group_of, time.monotonic)
        self._tenant_specs: dict[str, bool] = {}  # definition hash -> uses_tenancy(spec)

    def _reattach(self, key: AttemptKey) -> bool:
        """Ask the executor (started first: a run may be loaded before the engine starts)
        to take back an attempt that was running when the previous engine stopped."""
        self.start()
        return self.executor.reattach(key)

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
            self.executor.start(self._inbox)
            self._started = True

    def add_run(self, run_id: str) -> RunState:
        """Take over the lease on a run (a new lease epoch) and load it.

        Raises LeaseError when another live engine holds it, InvalidActionError for a
        finished run. A run that cannot be loaded (its spec, its rows) is quarantined (failed
        with the reason, see :meth:`quarantine`) and the error is raised.
        """
        held = self.runs.get(run_id)
        if held is not None:
            return held
        record = self.store.get_run(run_id)
        if record.status.is_terminal:
            raise InvalidActionError(
                f"run {run_id} is {record.status.value}; use restart to run it again"
            )
        mark = time.monotonic()
        epoch = self.store.acquire_lease(run_id, self.owner, self.lease_ttl)
        if epoch is None and record.owner == self.owner:
            # This engine's own lease, which letting the run go could not release (the
            # store failing then, see _let_go_for_now): it is still this engine's to take.
            epoch = self.store.acquire_lease(
                run_id, self.owner, self.lease_ttl, steal_from=self.owner
            )
        if epoch is None and record.owner and owner_is_dead(record.owner):
            # Proof that the holder died (see kaon.engine.liveness): its lease is void.
            epoch = self.store.acquire_lease(
                run_id, self.owner, self.lease_ttl, steal_from=record.owner
            )
        if epoch is None:
            holder = self.store.get_run(run_id)
            raise LeaseError(
                f"run {run_id} is being run by {holder.owner} (its lease has not expired); "
                "kill it or wait"
            )
        try:
            return self._load(self.store.get_run(run_id), epoch, mark)
        finally:
            self._publish_fence()

    def _add_runs(self, records: list[RunRecord]) -> int:
        """Take over many claimable runs at once: their leases in one transaction, their
        largest step run ids in one query, then load each (see :meth:`add_run`). A run
        another engine took meanwhile is skipped. Returns how many runs were added."""
        mark = time.monotonic()
        taken = self.store.acquire_leases([r.id for r in records], self.owner, self.lease_ttl)
        largest = self.store.max_step_run_ids([record.id for record, _ in taken])
        added = 0
        try:
            for record, epoch in taken:
                try:
                    self._load(record, epoch, mark, largest.get(record.id, 0))
                    added += 1
                except StoreUnavailableError:
                    raise
                except Exception:  # quarantined by _load: the run failed, not the engine
                    continue
        finally:
            self._publish_fence()
        return added

    def _load(
        self, record: RunRecord, epoch: int, mark: float, last_row_id: int | None = None
    ) -> RunState:
        """Hold ``record`` (its lease taken at ``epoch``) and rebuild its state; a run that
        cannot be loaded is quarantined and the error raised (see :meth:`add_run`)."""
        run_id = record.id
        self.epochs[run_id] = epoch
        self._renewed[run_id] = mark
        self.lost.pop(run_id, None)
        try:
            spec = self._spec(record.definition_hash)
            state = RunState(record, spec, self.ctx, last_row_id=last_row_id)
            # Before its first steps are probed: the group names the run's cache keys.
            state.tenant_group = self.tenancy.group(record.workflow)
            self.runs[run_id] = state
            self._touched.add(run_id)
            state.start()
            self._admit_run(state)
        except StoreUnavailableError:
            self._forget(run_id)
            with contextlib.suppress(KaonError):
                self.store.release_lease(run_id, self.owner, epoch)
            raise
        except Exception as exc:
            self.epochs[run_id] = epoch
            self.quarantine(run_id, exc)
            raise
        return state

    def _admit_run(self, state: RunState) -> None:
        """Tell admission of a run just loaded (and reconcile the holds it had)."""
        tenancy = self.tenancy
        tenancy.refresh()
        flagged = self._tenant_specs.get(state.record.definition_hash)
        if flagged is None:
            flagged = self._tenant_specs[state.record.definition_hash] = uses_tenancy(state.spec)
        tenancy.track(state, flagged)
        tenancy.reconcile(state)

    def _spec(self, definition_hash: str) -> WorkflowSpec:
        """The workflow spec stored under a hash, parsed once per process (definitions are
        immutable and content-addressed; a backlog of runs shares a few, and a run made in
        this process left its spec there: see :mod:`kaon.model.spec_cache`), its code paths
        made this replica's (see :attr:`localize`)."""
        spec = SPECS.decoded(
            definition_hash, lambda: self.store.get_definition(definition_hash).spec
        )
        if self.localize is None:
            return spec
        found = self._local_specs.get(definition_hash)
        if found is None:
            if len(self._local_specs) >= SPECS.size:
                self._local_specs.clear()
            found = self._local_specs[definition_hash] = self.localize(spec)
        return found

    def run_until_done(self, run_id: str) -> RunStatus:
        """Drive ``run_id`` (and any other held run) until it finishes or :meth:`stop` is called.

        Returns the run's status: terminal (FAILED when quarantined), or RUNNING when
        stopped early. Raises FencingError when another engine took the run over.
        """
        self.start()
        state = self.runs.get(run_id) or self.add_run(run_id)
        with self._looping_now():
            return self._run_until_done(run_id, state)

    def _run_until_done(self, run_id: str, state: RunState) -> RunStatus:
        while not self._stop.is_set():
            try:
                self.turn()
            except StoreUnavailableError:
                if self._stop.is_set():  # stopped while the store was failing: as any stop
                    break
                raise
            if run_id not in self.runs:
                lost = self.lost.get(run_id)
                if isinstance(lost, FencingError):
                    raise lost
                if state.finished or lost is not None:
                    break
                if self.outages.waiting(run_id, time.monotonic()):
                    continue  # let go after an artifact store failure: not yet
                # Let go after a store outage: load it again from the store.
                with contextlib.suppress(StoreUnavailableError):
                    state = self.add_run(run_id)
        return RunStatus.FAILED if run_id in self.lost else state.status

    def serve(
        self,
        *,
        admit: Callable[[RunRecord], bool] | None = None,
        claim_every_s: float = 0.25,
        max_runs: int = 1000,
    ) -> None:
        """Drive every run that needs an engine until :meth:`stop`: the server's loop.

        Every ``claim_every_s`` it claims runs no engine holds (pending, or running with an
        expired lease), higher run priority first, then the oldest
        (:func:`~kaon.store.base.claim_key`), that ``admit`` accepts (the run strategy's say;
        default: all), up to ``max_runs`` held at once. Runs of one workflow are admitted in
        that order: once ``admit`` refuses a pending run, the runs after it of its workflow
        wait for the next pass. While the store is unavailable it retries with backoff.
        """
        self.start()
        next_claim = 0.0
        pause = 0.0
        with self._looping_now():
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_claim:
                    next_claim = now + claim_every_s
                    try:
                        with self._turn_lock:
                            self._claim(admit, max_runs)
                        pause = 0.0
                    except StoreUnavailableError as error:
                        pause = min(RETRY_MAX_S, max(0.05, pause * 2))
                        next_claim = now + pause
                        log.warning("claiming runs failed, retrying in %.2fs: %s", pause, error)
                try:
                    self.turn(max_wait=claim_every_s)
                except StoreUnavailableError:
                    if not self._stop.is_set():
                        raise

    @contextlib.contextmanager
    def _looping_now(self) -> Iterator[None]:
        """While inside, an executor's thread may run a turn (see :meth:`_drive`)."""
        with self._turn_lock:
            self._looping += 1
        try:
            yield
        finally:
            with self._turn_lock:
                self._looping -= 1

    def _claim(self, admit: Callable[[RunRecord], bool] | None, max_runs: int) -> None:
        room = max_runs - len(self.runs)
        now = time.monotonic()
        if room > 0 and now >= self._next_dead_check:
            # An engine killed with -9 (or the OOM killer) released nothing: its runs would
            # wait out their leases (30 s by default) unless its lock file proves it dead.
            self._next_dead_check = now + DEAD_CHECK_S
            for owner in release_dead_leases(self.store, self.owner):
                log.info("engine %s is dead: taking over its runs", owner)
                self.refusals.clear()  # their runs ended nothing: their places are free
        if room > 0 and self.owner_group_of is not None:
            room -= self._claim_fair_share(admit, room)
        after: ClaimKey | None = None
        self.refusals.sweep(now)
        if isinstance(admit, AdmissionChanges):
            self.refusals.follow(admit.changes())
        # Workflows whose queue head (first waiting run) was refused: lately (remembered,
        # see kaon.engine.refusals), or in this pass.
        waiting = self.refusals.waiting(now)
        page_size = max(2 * room, 50)
        while room > 0:
            page = self.store.claimable_runs(
                limit=page_size, after=after, skip_workflows=sorted(waiting)
            )
            chosen: list[RunRecord] = []
            for record in page:
                if len(chosen) >= room:
                    break
                after = claim_key(record)
                if record.id in self.runs or record.workflow in waiting:
                    continue
                if self.outages.waiting(record.id, time.monotonic()):
                    continue  # let go after an artifact store failure: not yet
                if not self._admitted_head(admit, record, now):
                    if record.status is RunStatus.PENDING:
                        waiting.add(record.workflow)
                    continue
                chosen.append(record)
            room -= self._add_runs(chosen)
            if len(page) < page_size and (not page or after == claim_key(page[-1])):
                return

    def _claim_fair_share(self, admit: Callable[[RunRecord], bool] | None, room: int) -> int:
        """Before the claim in claiming order: the first claimable run of each owner group
        (:func:`~kaon.store.base.claim_key`), higher run priority first, then the groups
        holding the fewest runs here, so one group's backlog filling the engine (``max_runs``)
        does not keep another group's runs unclaimed until it drains. Reads at most
        :data:`FAIR_PAGES` pages, each skipping the workflows already seen (the first run of a
        workflow seen is its queue's head: run strategies queue in the same order).
        Returns how many runs were added."""
        heads: dict[str, RunRecord] = {}  # owner group -> its oldest claimable run seen
        seen = self.refusals.waiting(time.monotonic())  # refused lately: not read again
        for _page in range(FAIR_PAGES):
            page = self.store.claimable_runs(limit=FAIR_PAGE, skip_workflows=sorted(seen))
            for record in page:
                if record.workflow in seen:
                    continue
                seen.add(record.workflow)
                if record.id in self.runs:
                    continue
                heads.setdefault(self.tenancy.group(record.workflow), record)
            if len(page) < FAIR_PAGE:
                break
        if len(heads) < 2:
            return 0  # one group: the claiming order is fair
        held: dict[str, int] = {}
        for state in self.runs.values():
            held[state.tenant_group] = held.get(state.tenant_group, 0) + 1
        # Run priority first, then the group holding the fewest runs, then the oldest run.
        order = sorted(
            heads.items(),
            key=lambda gr: (-gr[1].priority, held.get(gr[0], 0), claim_key(gr[1])),
        )
        chosen: list[RunRecord] = []
        for _group, record in order:
            if len(chosen) >= room:
                break
            if self.outages.waiting(record.id, time.monotonic()):
                continue
            if self._admitted_head(admit, record, time.monotonic()):
                chosen.append(record)
        return self._add_runs(chosen) if chosen else 0

    def _admitted_head(
        self, admit: Callable[[RunRecord], bool] | None, record: RunRecord, now: float
    ) -> bool:
        """:meth:`_admitted`, but a pending head refused lately is refused again without
        asking (see :mod:`kaon.engine.refusals`), and a refusal is remembered."""
        if admit is None:
            return True
        pending = record.status is RunStatus.PENDING
        if pending and self.refusals.remembered(record.workflow, record.id, now):
            return False
        if self._admitted(admit, record):
            return True
        if pending:
            self.refusals.refused(record.workflow, record.id, now)
        return False

    @staticmethod
    def _admitted(admit: Callable[[RunRecord], bool] | None, record: RunRecord) -> bool:
        """The run strategy's say on one run; an error in it only postpones that run."""
        if admit is None:
            return True
        try:
            return admit(record)
        except StoreUnavailableError:
            raise
        except Exception:
            log.exception("admission of run %s failed; it waits", record.id)
            return False

    def stop(self) -> None:
        """Ask the loop to exit after the current turn (thread- and signal-safe)."""
        self._stop.set()
        self._inbox.ring()

    def close(self) -> None:
        """Release leases of unfinished runs and stop the executor."""
        with self._turn_lock:  # no turn runs on an executor's thread meanwhile, or after
            self._close()

    def _close(self) -> None:
        released = True
        for run_id in list(self.runs):
            try:
                self.store.release_lease(run_id, self.owner, self.epochs.get(run_id))
            except KaonError as error:
                released = False
                log.warning("run %s: its lease could not be released: %s", run_id, error)
        self.runs.clear()
        self.epochs.clear()
        self._renewed.clear()
        self._touched.clear()
        self._busy.clear()
        if self._started:
            self.executor.shutdown()
            self._started = False
        # A lease left behind is proven dead by the lock file: keep it (see EngineLock).
        self._lock.release(remove=released and not self._leases_left)

    # -- isolation and fencing ------------------------------------------------------------

    def quarantine(self, run_id: str, error: BaseException) -> None:
        """Fail one run because of an error confined to it (its spec cannot load, a row only
        it writes is rejected, a bug while deciding it), never the engine or other runs.

        Its attempts are cancelled, what this turn decided for it is dropped, and the run is
        recorded as failed with the reason (``quarantined: ...``) in its own fenced write, so
        no engine claims it again; ``kaon restart`` runs it again once fixed.
        """
        said = _STORE_WHERE.sub("store: ", exception_text(error))  # no database address
        reason = f"{QUARANTINED}: {type(error).__name__}: {said}"
        log.error("run %s %s", run_id, reason, exc_info=error)
        epoch = self.epochs.get(run_id)
        self._forget(run_id)
        self.lost[run_id] = error if isinstance(error, KaonError) else StoreError(reason)
        if epoch is None:
            return
        now = self.ctx.clock()
        batch = WriteBatch()
        try:  # its steps end with it: none is left running in the record
            operations.close_active_steps(self.store, batch, run_id, now, QUARANTINED)
        except KaonError as closing:
            log.warning("run %s: its steps could not be closed: %s", run_id, closing)
        batch.update_run(
            run_id,
            status=RunStatus.FAILED,
            error=reason,
            ended_at=now,
            owner=None,
            lease_until=None,
        )
        batch.events.append(
            EventRecord(run_id, "run", now, {"status": RunStatus.FAILED.value, "error": reason})
        )
        batch.fence = Fence(self.owner, {run_id: epoch})
        try:
            self._write_retrying(batch)
        except FencingError:
            return  # another engine holds it now: its decision
        except KaonError:
            self._leases_left = True  # forgotten, but its lease is still this engine's
            raise
        for listener in self._listeners:
            listener(batch.events)

    def _let_go(self, run_ids: frozenset[str] | set[str], error: FencingError) -> None:
        """Stop driving runs another engine took over: cancel their attempts, forget them."""
        for run_id in run_ids:
            if run_id in self.runs or run_id in self.epochs:
                log.warning("run %s: %s", run_id, error)
                self._forget(run_id)
                self.lost[run_id] = error

    def _forget(self, run_id: str) -> None:
        """Drop a run from memory: cancel its attempts, drop its rows from this turn's
        batch and its attempts from the outbox."""
        state = self.runs.pop(run_id, None)
        if state is not None:
            self.refusals.forget(state.record.workflow)  # a place in its queue may be free
        self.epochs.pop(run_id, None)
        self._renewed.pop(run_id, None)
        self._fence_stale = True
        self._touched.discard(run_id)
        self._busy.discard(run_id)
        self.tenancy.untrack(run_id)
        self.ctx.timers.cancel_run(run_id)
        self.ctx.batch.take_runs([run_id])
        outbox = self.ctx.outbox
        outbox.submit = [r for r in outbox.submit if r.key[0] != run_id]
        outbox.cancel = [k for k in outbox.cancel if k[0] != run_id]
        if state is not None:
            for key in list(state.inflight):
                with contextlib.suppress(Exception):
                    self.executor.cancel(key)

    def _isolated(
        self, run_id: str, action: Callable[..., object], *args: Any, touch: bool = True
    ) -> object:
        """Do ``action(*args)`` for one run and return its result; an error in it quarantines
        that run only (and None is returned). A store outage lets the run go (reloaded from
        the store later) instead. The run is touched: the next :meth:`_advance` looks at it."""
        if touch:
            self._touched.add(run_id)
        try:
            return action(*args)
        except StoreUnavailableError as error:
            log.warning("run %s: the store is unavailable, reloading it later: %s", run_id, error)
            self._let_go_for_now(run_id)
        except ArtifactUnavailableError as error:
            pause = self.outages.failed(run_id, time.monotonic())
            if pause is None:
                self.quarantine(run_id, error)
                return None
            log.warning(
                "run %s: the artifact store failed, reloading it in %.0fs: %s", run_id, pause, error
            )
            self._let_go_for_now(run_id)
        except Exception as error:
            self.quarantine(run_id, error)
        return None

    def _let_go_for_now(self, run_id: str) -> None:
        """Drop what was decided for ``run_id`` and let it go: it is loaded from the store
        again (by this engine's loop or another engine's claim)."""
        self._forget(run_id)
        try:
            self.store.release_lease(run_id, self.owner)
        except KaonError:
            self._leases_left = True  # see _close

    def _write_retrying(self, batch: WriteBatch) -> None:
        """Write ``batch``, retrying with backoff while the store is unavailable (nothing is
        lost: the batch is only dropped if the engine is asked to stop meanwhile)."""
        pause = 0.05
        while True:
            try:
                self.store.write(batch)
                return
            except StoreUnavailableError as error:
                if self._stop.is_set():
                    raise
                log.warning("store unavailable, retrying the write in %.2fs: %s", pause, error)
                time.sleep(pause)
                pause = min(RETRY_MAX_S, pause * 2)

    # -- the loop ----------------------------------------------------------------------------

    def turn(self, max_wait: float = 1.0) -> None:
        """One turn: wait (at most ``max_wait``), apply, decide, commit, act.

        The wait is outside the engine's lock, the rest inside: meanwhile an executor's thread
        may have run a turn (see :meth:`_drive`); an error it met is raised here."""
        with self._turn_lock:
            wait = min(self._wait_time(), max_wait)
            self._sleep_until = time.monotonic() + wait
        self._inbox.wait(wait)
        with self._turn_lock:
            failure, self._failure = self._failure, None
            if failure is not None:
                raise failure
            self._work()

    def _drive(self) -> bool:
        """Run a turn on the calling thread, an executor's whose attempt just ended (see
        :meth:`EventInbox.settle <kaon.executors.base.EventInbox.settle>`), unless another
        thread runs one, or no loop drives the engine. Wakes the engine's thread when the turn
        finished a run (its loop looks) or moved the next deadline before its wake-up. An
        error is kept for the engine's thread to raise. False when no turn ran."""
        if not self._turn_lock.acquire(blocking=False):
            return False
        try:
            if not self._looping or not self._started or self._failure is not None:
                return False
            held = len(self.runs)
            finished = self._work()
            changed = finished or len(self.runs) != held  # a run let go, quarantined
            earlier = time.monotonic() + self._wait_time() + EARLIER_WAKE_S < self._sleep_until
            if changed or earlier:
                self._inbox.ring()
            return True
        except BaseException as error:  # the engine's thread raises it (see turn)
            self._failure = error
            return False
        finally:
            self._turn_lock.release()

    def _work(self) -> bool:
        """A turn after its wait (holding the lock): True when it finished a run."""
        events = self._inbox.take()
        began = time.perf_counter()
        for event in events:
            self._isolated(event.key[0], self._apply, event)
        now = self.ctx.clock()
        for timer in self.ctx.timers.due(now):
            state = self.runs.get(timer.run_id)
            if state is not None:
                self._isolated(state.id, state.timer_fired, timer)
        if now >= self._next_poll:
            self._next_poll = now + self.command_poll_s
            self._poll_commands()
        if time.monotonic() >= self._next_renew:
            self._next_renew = time.monotonic() + self.lease_ttl / 3
            self._renew_leases()
        tenancy = self.tenancy
        tenancy.refresh()
        if tenancy.held:  # attempts that ended free their slots for this turn's dispatch
            tenancy.release_ended(self.ctx.batch, ())
        advanced = self._advance()
        finished = [s for s in advanced if s.finished]
        for state in finished:
            self.ctx.batch.update_run(state.id, owner=None, lease_until=None)
        if tenancy.held:
            tenancy.release_ended(self.ctx.batch, [s.id for s in finished])
        acted = self._commit_and_act()
        tenancy.releasing.clear()
        if acted and self.on_turn is not None:
            self.on_turn(time.perf_counter() - began)
        for state in finished:
            if self.runs.get(state.id) is state:
                _log_end(state)
                self.runs.pop(state.id)
                self.refusals.forget(state.record.workflow)  # a place in its queue is free
                self.epochs.pop(state.id, None)
                self._renewed.pop(state.id, None)
                self._touched.discard(state.id)
                self._busy.discard(state.id)
                self.tenancy.untrack(state.id)
                self.outages.finished(state.id)
                self._fence_stale = True
        if self._fence_stale:  # the runs held changed: so may the oldest renewal
            self._fence_stale = False
            self._publish_fence()
        return bool(finished)

    def _wait_time(self) -> float:
        if self._inbox.waiting:
            return 0.0
        for run_id in self._touched:
            state = self.runs.get(run_id)
            if state is not None and (state.work or state.frames_done):
                return 0.0
        now = self.ctx.clock()
        # Renewals are timed on the monotonic clock (the engine's clock may be a test's).
        wake = min(self._next_poll, now + self._next_renew - time.monotonic())
        if self._busy and self._inbox.quiet:  # reports may wait quietly (EventInbox.report)
            wake = min(wake, now + self._inbox.quiet_wait_s)
        if self._soft_since is not None:
            wake = min(wake, self._soft_since + SOFT_DELAY_S)
        next_timer = self.ctx.timers.next_at()
        if next_timer is not None:
            wake = min(wake, next_timer)
        return max(0.0, min(wake - now, 1.0))

    def _apply(self, event: ExecutorEvent) -> None:
        run_id, step_run_id, attempt = event.key
        state = self.runs.get(run_id)
        if state is None:
            return
        batch = self.ctx.batch
        if isinstance(event, StepSucceeded):
            state.attempt_succeeded(event.key, event.at, dict(event.outputs))
        elif isinstance(event, StepStarted):
            state.attempt_started(event.key, event.at, event.worker)
        elif isinstance(event, StepFailed):
            state.attempt_failed(event.key, event.at, event.error, event.outputs)
        elif isinstance(event, LogLine):  # the step's text: readable, whatever it printed
            text = readable_text(event.text)
            batch.logs.append(LogRecord(run_id, step_run_id, attempt, event.at, event.stream, text))
        elif isinstance(event, LogStored):
            state.attempt_log_stored(event.key, event.at, event.ref)
        elif isinstance(event, MetricReported):
            name = readable_text(event.name)
            problem = None
            if len(name) > MAX_METRIC_NAME_CHARS:
                problem = (
                    f"its name of {len(name):,} characters is longer than {MAX_METRIC_NAME_CHARS}"
                )
                name = name[:40] + "..."
            elif not isinstance(event.value, int | float) or not math.isfinite(event.value):
                problem = f"{event.value!r} is not a finite number"
            if problem is not None:
                # A step type's own mistake (StepContext.metric refuses these): said in its
                # log, not stored (NaN would break the row, and the run with it).
                text = f"kaon: metric {name!r} not recorded: {problem}"
                batch.logs.append(LogRecord(run_id, step_run_id, attempt, event.at, "log", text))
                return
            batch.metrics.append(
                MetricRecord(run_id, step_run_id, attempt, name, event.value, event.at, event.step)
            )
        elif isinstance(event, ProgressReported):
            message = event.message
            if len(message) > MAX_PROGRESS_MESSAGE_CHARS:  # a row, and an event to followers
                message = bounded_text(readable_text(message), MAX_PROGRESS_MESSAGE_CHARS)
            data = {"fraction": event.fraction, "message": message, "attempt": attempt}
            if event.total is not None:
                data.update(done=event.done, total=event.total)
            batch.events.append(EventRecord(run_id, "progress", event.at, data, step_run_id))
        elif isinstance(event, SignalEmitted):
            problem = json_problem(dict(event.params))
            if problem is None and holds_nul(dict(event.params)):
                problem = "hold a NUL character (U+0000), which cannot be stored"
            problem = problem and f"params {problem}"
            problem = problem or signal_name_problem(event.name)  # as `kaon signal` refuses
            if problem is not None:  # the step's own mistake: said in its log, not stored
                text = f"kaon: signal {readable_text(event.name)!r} not sent: {problem}"
                batch.logs.append(LogRecord(run_id, step_run_id, attempt, event.at, "log", text))
                return
            batch.signals.append(
                SignalRecord(
                    readable_text(event.name),
                    dict(event.params),
                    event.at,
                    "step",
                    run_id,
                    scope=self._step_signal_scope(state),
                )
            )

    def _step_signal_scope(self, state: RunState) -> list[str] | None:
        """The owner groups a signal sent by a step of ``state`` may reach: its workflow's
        group (a workflow of no group: only workflows of no group), as if its owner sent it;
        every workflow where there are no groups (``owner_group_of`` unset)."""
        if self.owner_group_of is None:
            return None
        group = self.owner_group_of(state.record.workflow)
        return [group] if group is not None else []

    def _advance(self) -> list[RunState]:
        """Decide for the runs touched since the last turn (oldest first): process their
        worklists and queue their next attempts while the executor has room (its capacity and
        what it accepts queued, see :attr:`~kaon.executors.base.Executor.prefetch`). Returns
        them.

        Only a touched run can have changed, so a thousand runs waiting for a signal cost
        nothing here. A run whose ready steps found no room stays touched for the next turn.
        """
        held = self.runs
        executor = self.executor
        in_flight = sum(len(held[r].inflight) for r in self._busy if r in held)
        free = executor.capacity + executor.prefetch - in_flight
        url = self.artifacts.url
        advanced: dict[str, RunState] = {}
        todo = self._touched
        self._touched = set()
        while todo:
            states = [state for r in todo if (state := held.get(r)) is not None]
            if len(states) > 1:
                states.sort(key=_state_key)
            for state in states:
                self._isolated(state.id, state.process, touch=False)
            todo = set()
            if self.tenancy.active:
                free = self._admit(states, url, free)
            for state in states:
                if not self.tenancy.active:
                    free = self._requests(state, url, free)
                advanced[state.id] = state
                if (state.work or state.frames_done) and not state.finished:
                    todo.add(state.id)
        for state in advanced.values():
            if state.inflight:
                self._busy.add(state.id)
            else:
                self._busy.discard(state.id)
            if state.ready and not state.finished:
                self._touched.add(state.id)  # waits for room
        return list(advanced.values())

    def _admit(self, states: list[RunState], url: str, free: int) -> int:
        """Queue attempts of ``states`` by pools, permits, priorities and fair share (see
        :mod:`kaon.engine.tenancy`); returns the room left."""
        submit = self.ctx.outbox.submit

        def start(state: RunState, node: Node) -> TaskRequest | None:
            started: list[TaskRequest | None] = []
            self._isolated(
                state.id, lambda: started.append(state.start_node(node, url)), touch=False
            )
            request = started[0] if started and state.id in self.runs else None
            if request is not None:
                submit.append(request)
            return request

        def refuse(state: RunState, node: Node, reason: str) -> None:
            # Started and failed at once, as an executor fails what its host cannot offer.
            started: list[TaskRequest | None] = []
            self._isolated(
                state.id, lambda: started.append(state.start_node(node, url)), touch=False
            )
            request = started[0] if started and state.id in self.runs else None
            if request is not None:
                info = ErrorInfo("Unschedulable", f"step {node.path}: {reason}")
                self._inbox(StepFailed(request.key, time.time(), info))

        busy = [self.runs[r] for r in self._busy if r in self.runs]
        return self.tenancy.dispatch(states, busy, free, start, self.ctx.batch, refuse)

    def _requests(self, state: RunState, url: str, free: int) -> int:
        """Queue the run's next attempts while there is room; returns the room left (all of
        it when the run was quarantined or let go meanwhile: its requests were dropped)."""
        if free <= 0 or not state.ready:
            return free
        left = self._isolated(state.id, self._queue_requests, state, url, free, touch=False)
        return left if isinstance(left, int) else free

    def _queue_requests(self, state: RunState, url: str, free: int) -> int:
        submit = self.ctx.outbox.submit
        while free > 0:
            request = state.next_request(url)
            if request is None:
                break
            submit.append(request)
            free -= 1
        return free

    def _commit_and_act(self) -> bool:
        """Commit the turn's batch, then act on it; False when there was nothing to do (or
        only reports that may wait for the next decisive change)."""
        batch, outbox = self.ctx.batch, self.ctx.outbox
        if not batch and not outbox.submit and not outbox.cancel:
            return False
        now = self.ctx.clock()
        if not outbox.submit and not outbox.cancel and _only_reports(batch):
            # Nothing will be acted on: reports (attempt started, logs, metrics, progress)
            # may wait for the next decisive change, at most SOFT_DELAY_S.
            if self._soft_since is None:
                self._soft_since = now
            if now - self._soft_since < SOFT_DELAY_S:
                return False
        self._soft_since = None
        self._commit(batch)
        self.ctx.batch, self.ctx.outbox = WriteBatch(), Outbox()
        if batch.events:
            for listener in self._listeners:
                listener(batch.events)
        for key in outbox.cancel:
            self.executor.cancel(key)
        if outbox.submit:
            self.executor.submit_many(outbox.submit)
        return True

    def _commit(self, batch: WriteBatch) -> None:
        """Commit the turn's batch, fenced by the epochs held on the runs it touches.

        A run taken over by another engine is let go and the rest written; a batch the
        store rejects is written run by run, and a run whose own rows are rejected is
        quarantined; while the store is unavailable the write is retried.
        """
        while batch:
            touched = batch.run_ids()
            epochs = {r: self.epochs[r] for r in touched if r in self.epochs}
            batch.fence = Fence(self.owner, epochs)
            try:
                self._write_retrying(batch)
                return
            except FencingError as error:
                self._let_go(error.run_ids or frozenset(epochs), error)
            except StoreUnavailableError:
                raise  # the engine stops during an outage: no run is to blame, all stay held
            except StoreError as error:
                if len(touched) > 1:
                    self._commit_each_run(batch, touched)
                    return
                for run_id in touched:
                    self.quarantine(run_id, error)
                if not touched:  # rows of no run (a definition): nothing to isolate
                    log.error("dropped a write that belongs to no run: %s", error)
                    return
                batch.take_runs(touched)

    def _commit_each_run(self, batch: WriteBatch, touched: set[str]) -> None:
        """Write a rejected batch one run at a time, to find the run it belongs to."""
        for run_id in sorted(touched):
            part = batch.take_runs([run_id])
            if run_id in self.lost:
                continue  # let go or quarantined meanwhile
            part.definitions = batch.definitions
            self._commit(part)
        batch.take_runs(touched)
        self._commit(batch)  # what belongs to no run (definitions)

    def _poll_commands(self) -> None:
        """Read new signals for waiting steps and users' commands: one query each for every
        run held, whatever their number (not one per run). Each read happens before what it
        changes, so a store outage only postpones the poll; an error confined to one run
        quarantines that run."""
        if not self.runs:
            return
        now = self.ctx.clock()
        try:
            self._poll_signals()
            pending = self.store.pending_commands_of(list(self.runs))
        except StoreUnavailableError as error:
            log.warning("polling commands failed, retrying: %s", error)
            return
        for run_id, commands in pending.items():
            state = self.runs.get(run_id)
            if state is not None:
                self._isolated(run_id, self._run_commands, state, commands, now)

    def _run_commands(self, state: RunState, commands: list[CommandRecord], now: float) -> None:
        for command in commands:
            if state.id not in self.runs:
                return  # let go or quarantined by an earlier command
            assert command.id is not None
            self.ctx.batch.command_done(command.id, state.id, now)
            self._execute_command(state, command.kind, command.payload, command.by)

    def _poll_signals(self) -> None:
        """Deliver new signals to the runs with waiting steps: one read from the oldest
        position among their wait steps (see :meth:`RunState.signal_read_start`: a step
        that starts waiting reads from the first signal of its name since the run's
        creation that no wait step of the run took, so a signal sent before it waited,
        or while another step waited for another, still reaches it)."""
        waiting = [s for s in self.runs.values() if s.waiting]
        if not waiting:
            return
        since_creation = self.store.signal_cursor_since
        starts = {
            state.id: state.signal_read_start(
                functools.partial(since_creation, state.record.created_at)
            )
            for state in waiting
        }
        start = min(starts.values())
        signals = self.store.signals(after_id=start, limit=500)
        if not signals:
            return
        last_read = signals[-1].id or 0
        for state in waiting:
            since = state.record.created_at
            fresh = [s for s in signals if s.at >= since and (s.id or 0) > starts[state.id]]
            if self.owner_group_of is not None and any(s.scope is not None for s in fresh):
                group = self.owner_group_of(state.record.workflow)
                fresh = [s for s in fresh if s.reaches(group)]
            self._isolated(state.id, state.deliver_signals, fresh, starts[state.id], last_read)

    def _execute_command(
        self, state: RunState, kind: str, payload: dict[str, object], by: str
    ) -> None:
        try:
            if kind == "kill":
                reason = payload.get("reason")  # a sender's own words (a run strategy's)
                why = reason if isinstance(reason, str) and reason else ""
                state.abort(RunStatus.CANCELLED, why or f"killed by {by or 'a user'}")
            elif kind == "cancel":
                state.cancel_step(str(payload.get("path", "")), by)
            elif kind == "continue":
                path = payload.get("path")
                params = payload.get("params")
                state.continue_steps(
                    str(path) if path is not None else None,
                    dict(params) if isinstance(params, dict) else None,
                    by,
                )
            elif kind == "skip":
                path = str(payload.get("path", ""))
                state.skip(path, payload.get("output"), has_output="output" in payload)
            else:
                raise InvalidActionError(f"unknown command {kind!r}")
        except KaonError as exc:
            refusal: dict[str, object] = {"error": str(exc), "command": kind, "by": by}
            if "path" in payload:
                refusal["path"] = payload["path"]
            self.ctx.batch.events.append(
                EventRecord(state.id, "command_rejected", self.ctx.clock(), refusal)
            )

    def _publish_fence(self) -> None:
        """Tell the executor when its attempts must have stopped if no renewal comes: a
        fraction of the lease after the oldest renewal (a takeover waits for the whole lease
        by the database's clock, counted after that renewal). See
        :mod:`kaon.executors._lease_fence`."""
        oldest = min(self._renewed.values(), default=None)
        fence = None if oldest is None else oldest + self.lease_ttl * FENCE_FRACTION
        if fence != self._fence:
            self._fence = fence
            self.executor.fence(fence)

    def _renew_leases(self) -> None:
        """Extend the leases of every held run (a batch renews those it touches); let go of
        the runs another engine took over."""
        mark = time.monotonic()
        epochs = dict(self.epochs)
        try:
            lost = self.store.renew_leases(self.owner, epochs, self.lease_ttl)
        except StoreUnavailableError as error:
            log.warning("renewing leases failed: %s", error)
            return
        for run_id in epochs.keys() - lost:
            if run_id in self._renewed:
                self._renewed[run_id] = mark
        self._publish_fence()
        if lost:
            self._let_go(
                lost,
                FencingError(
                    f"engine {self.owner} lost the lease on run(s) {', '.join(sorted(lost))} "
                    "(taken over by another engine)",
                    frozenset(lost),
                ),
            )


def _log_end(state: RunState) -> None:
    """One line in the engine's log per run that ended, once its end is committed: a server's
    log said nothing of a run that failed."""
    if state.status is RunStatus.SUCCEEDED:
        log.info("run %s of %s succeeded", state.id, state.spec.name)
    else:
        error = state.ended_error or ""
        log.info(
            "run %s of %s %s%s",
            state.id,
            state.spec.name,
            state.status.value,
            error and f": {error}",
        )


def _state_key(state: RunState) -> tuple[float, str]:
    """A held run's place in a turn's order: oldest first."""
    return (state.record.created_at, state.id)

"""The state store interface: records, the write batch, and the abstract store.

The engine owns the state of the runs it holds a lease on and writes it in batches: every
change it decides in one turn of its loop goes into one :class:`WriteBatch`, committed
atomically by :meth:`StateStore.write` *before* the engine acts on it (dispatching a step,
reporting a status). Step runs and attempts are keyed per run (``run_id``, ``id``) with ids
the engine allocates, so a batch never waits on the database for an id.

Every backend passes the shared contract suite in ``tests/contract/test_store_contract.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kaon.errors import NotFoundError
from kaon.model.events import AttemptKey
from kaon.model.status import RunStatus, StepStatus

MAX_RUN_ID_PREFIX = 200
"""The longest prefix :meth:`StateStore.resolve_run_id` searches by (a run id is 28
characters): a longer string comes from no person typing an id, only from a request (a path
segment of 60,000 characters) whose search pattern SQLite refuses ("LIKE or GLOB pattern too
complex" past 50,000 bytes), which was a 500."""

DELETING_OWNER = "kaon:deleting"
"""The ``owner`` of a run being deleted (:meth:`StateStore.delete_runs`): no engine takes it
and a restart refuses it."""


@dataclass(slots=True)
class DefinitionRecord:
    """An immutable workflow definition, stored once per content hash."""

    hash: str
    name: str
    spec: dict[str, Any]
    source: str = ""
    created_at: float = 0.0


@dataclass(slots=True)
class RunRecord:
    """One run of a workflow definition with bound parameters."""

    id: str
    workflow: str
    definition_hash: str
    status: RunStatus
    params: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    restarts: int = 0
    executor: str = ""
    owner: str | None = None
    lease_until: float | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    lease_epoch: int = 0
    priority: int = 0  # dispatch order among runs competing for slots (kaon.model.tenancy)
    origin: str = ""  # who may drive it: "" any engine serving the store, or LOCAL_ORIGIN


LOCAL_ORIGIN = "local"
"""The origin of a run a local command created (``kaon run``, ``kaon.run``, ``kaon.start``):
its steps' code is files of the machine that created it, which no server has (a file never
pushed), so an engine serving the store never claims it (:meth:`StateStore.claimable_runs`).
Only a local command drives it: the one that created it, or ``kaon resume``/``kaon continue``
after that one stopped or died. Runs of a server (its API, its triggers: versions of its
registry) have the origin ``""``: any engine serving the store claims them."""


# A run's place in the order engines claim runs: higher priority first, then the oldest
# (``-priority``, ``created_at``, ``id``), ascending. Run strategies queue a workflow's runs
# in the same order, so the first run of a workflow an engine sees is its queue's head.
ClaimKey = tuple[int, float, str]


def claim_key(record: RunRecord) -> ClaimKey:
    """``record``'s :data:`ClaimKey`."""
    return (-record.priority, record.created_at, record.id)


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """A run's place in its workflow's queue (:meth:`StateStore.queue_place`), each count
    capped at the limit asked."""

    active: int  # the workflow's active runs but this one
    ahead: int  # its waiting runs ahead of this one in claiming order


@dataclass(slots=True)
class StepRunRecord:
    """One step run: a task, a container (foreach, loop, subworkflow), or a frame of one.

    ``kind`` is the spec's kind (``task``, ``foreach``, ``loop``, ``subworkflow``) or ``item``
    / ``iteration`` for the frame rows a foreach or loop creates. ``parent_id`` is the
    container or frame it belongs to (``None`` at the top level). ``index`` is the item index
    or iteration number of a frame row. ``outputs`` and ``error`` are JSON (see
    :mod:`kaon.model.values` and :class:`kaon.model.events.ErrorInfo`).
    """

    run_id: str
    id: int
    path: str
    step_id: str
    kind: str
    status: StepStatus
    parent_id: int | None = None
    index: int | None = None
    item: Any = None
    attempts: int = 0
    platform_attempts: int = 0
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    reason: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    next_attempt_at: float | None = None
    cache_key: str | None = None
    cached_from: str | None = None


@dataclass(slots=True)
class AttemptRecord:
    """One attempt at executing a task step run (1-based ``number``)."""

    run_id: str
    step_run_id: int
    number: int
    status: str  # running | succeeded | failed | lost | cancelled
    started_at: float | None = None
    ended_at: float | None = None
    worker: str = ""
    error: dict[str, Any] | None = None


@dataclass(slots=True)
class LogRecord:
    """A log line of an attempt."""

    run_id: str
    step_run_id: int
    attempt: int
    at: float
    stream: str
    text: str
    id: int | None = None


@dataclass(slots=True)
class MetricRecord:
    """A number a step reported."""

    run_id: str
    step_run_id: int
    attempt: int
    name: str
    value: float
    at: float
    step: int | None = None
    id: int | None = None


@dataclass(slots=True)
class EventRecord:
    """An applied event: a status change, progress, a user action. The audit trail."""

    run_id: str
    kind: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)
    step_run_id: int | None = None
    id: int | None = None


@dataclass(slots=True)
class CommandRecord:
    """A request for the engine that holds a run (kill, skip, ...), written by another process."""

    run_id: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    by: str = ""
    done_at: float | None = None
    id: int | None = None


@dataclass(slots=True)
class CacheEntryRecord:
    """A successful execution that later executions with the same cache key may reuse.

    ``components`` holds the digest of each part of the key (``code``, ``config``,
    ``inputs.<name>``, ``version``) so that a miss can be explained part by part.
    """

    key: str
    workflow: str
    step_id: str
    path: str
    run_id: str
    step_run_id: int
    outputs: dict[str, Any]
    components: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(slots=True)
class ArtifactRecord:
    """Lineage of one stored blob: which run, step, attempt and inputs produced it."""

    hash: str
    run_id: str
    step_run_id: int
    path: str
    output: str
    serializer: str
    size: int
    attempt: int = 0
    type_name: str = ""
    item_index: int | None = None
    inputs: list[str] = field(default_factory=list)
    created_at: float = 0.0
    id: int | None = None


@dataclass(slots=True)
class ArtifactUseRecord:
    """A blob read by a step attempt that succeeded (``kaon lineage``'s "used by"), with the
    blobs that attempt stored (``outputs``: ``[output, hash]`` pairs; empty when it returned
    only inline values)."""

    hash: str
    run_id: str
    step_run_id: int
    path: str
    attempt: int
    outputs: list[list[str]] = field(default_factory=list)
    created_at: float = 0.0
    id: int | None = None


@dataclass(slots=True)
class SignalRecord:
    """An external event with parameters: starts triggered runs, wakes waiting steps."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0
    by: str = ""
    source_run_id: str | None = None
    dedupe_key: str | None = None
    id: int | None = None
    scope: list[str] | None = None  # owner groups it may reach; None: every workflow

    def reaches(self, owner_group: str | None) -> bool:
        """True when this signal may start or wake runs of a workflow owned by
        ``owner_group`` (a workflow of no group is reached by every signal)."""
        return self.scope is None or owner_group is None or owner_group in self.scope


StepRunKey = tuple[str, int]
HoldKey = tuple[str, str, int]  # (run id, step path, attempt number): what an attempt holds

# What a restart sets on a step run it redoes: pending, as if it never ran (its first
# attempt's columns stay: a new attempt's number follows ``attempts``, set to 0 here).
STEP_RUN_RESET: Mapping[str, Any] = {
    "status": StepStatus.PENDING,
    "outputs": None,
    "error": None,
    "reason": "",
    "started_at": None,  # its duration counts from the restarted attempt
    "ended_at": None,
    "attempts": 0,
    "platform_attempts": 0,
    "next_attempt_at": None,
    "cache_key": None,  # decided again: a forced or changed step is not "reused" now
    "cached_from": None,
}


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """A named pool: at most ``slots`` attempts of its steps run at once, and (when set) at
    most ``cpus``, ``memory`` (bytes) and ``gpus`` asked for by them together."""

    name: str
    slots: int
    cpus: float | None = None
    memory: int | None = None
    gpus: float | None = None
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class PermitRecord:
    """At most ``max`` attempts carrying ``tag`` run at once, across every run and engine."""

    tag: str
    max: int
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class HoldClaim:
    """What an attempt about to start asks to hold: a slot of its pool (and the resources
    it asks for) and one permit per tag. Only limits that exist (a pool row, a permit row)
    are held."""

    run_id: str
    step_path: str
    attempt: int
    pool: str
    tags: tuple[str, ...] = ()
    group: str = ""
    cpus: float = 0.0
    memory: int = 0
    gpus: float = 0.0

    @property
    def key(self) -> HoldKey:
        """The attempt this claim is for."""
        return (self.run_id, self.step_path, self.attempt)


@dataclass(slots=True)
class LimitUsage:
    """What live holds take of one pool (``kind`` "pool") or permit (``kind`` "tag");
    ``by_group`` counts the holds of each owner group."""

    kind: str
    name: str
    count: int = 0
    cpus: float = 0.0
    memory: int = 0
    gpus: float = 0.0
    by_group: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fence:
    """The leases the writer of a batch holds.

    A fenced write commits only if every run in ``epochs`` still has ``owner`` and that lease
    epoch (``SELECT ... FROM runs WHERE id = :r AND owner = :o AND lease_epoch = :e``, rows
    matched checked, first in the batch's own transaction, the rows locked against a takeover
    until it commits). Otherwise nothing is written and the store raises
    :class:`~kaon.errors.FencingError` naming the lost runs. The write does not renew the
    leases: their holder does, with :meth:`StateStore.renew_leases`, every third of their
    time (the engine in the turn that commits the batch, before it), so a takeover, which
    needs a lease past its time by the database's clock, cannot happen while the holder
    renews; and if it happens all the same, this check refuses the holder's next write.

    ``owner`` None fences on a run no one holds, as it was read (a restart of a finished
    run): a deletion's claim, or an engine's, made since refuses the write.
    """

    owner: str | None
    epochs: Mapping[str, int]


@dataclass(slots=True)
class WriteBatch:
    """Everything one turn of the engine decided, to be committed atomically.

    Updates to the same row merge (later fields win); an update to a row inserted in the same
    batch folds into the insert. Empty batches cost nothing.
    """

    definitions: list[DefinitionRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    run_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    step_runs: dict[StepRunKey, StepRunRecord] = field(default_factory=dict)
    step_run_updates: dict[StepRunKey, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[AttemptKey, AttemptRecord] = field(default_factory=dict)
    attempt_updates: dict[AttemptKey, dict[str, Any]] = field(default_factory=dict)
    logs: list[LogRecord] = field(default_factory=list)
    metrics: list[MetricRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)
    commands_done: dict[int, float] = field(default_factory=dict)
    cache_entries: list[CacheEntryRecord] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    artifact_uses: list[ArtifactUseRecord] = field(default_factory=list)
    signals: list[SignalRecord] = field(default_factory=list)
    command_runs: dict[int, str] = field(default_factory=dict)  # run of each command done
    holds_released: list[HoldKey] = field(default_factory=list)  # attempts that ended
    # Step runs whose every row inside (children, their children...) is reset as
    # STEP_RUN_RESET says, in the database: a restart redoing a foreach of a million items
    # reads none of them (the rows themselves are in step_run_updates).
    resets_below: list[StepRunKey] = field(default_factory=list)
    fence: Fence | None = None
    # Set by the store when a write of this batch lost its connection after sending its
    # commit (WriteOutcomeUnknownError): if the next write of it meets its own rows (a
    # duplicate key), the earlier one was committed, and that write returns as done.
    maybe_written: bool = False

    def command_done(self, command_id: int, run_id: str, at: float) -> None:
        """Record that the engine carried out a command of ``run_id``."""
        self.commands_done[command_id] = at
        self.command_runs[command_id] = run_id

    def run_ids(self) -> set[str]:
        """Every run this batch writes rows of (cost proportional to the batch)."""
        found: set[str] = {r.id for r in self.runs}
        found.update(self.run_updates)
        for keys in (self.step_runs, self.step_run_updates, self.attempts, self.attempt_updates):
            if keys:  # most are empty in a turn: skip making their generators
                found.update(key[0] for key in keys)
        for records in (self.logs, self.metrics, self.events, self.commands, self.artifacts):
            if records:
                found.update(r.run_id for r in records)
        if self.artifact_uses:
            found.update(r.run_id for r in self.artifact_uses)
        if self.cache_entries:
            found.update(r.run_id for r in self.cache_entries)
        found.update(self.command_runs.values())
        if self.signals:
            found.update(s.source_run_id for s in self.signals if s.source_run_id)
        if self.holds_released:
            found.update(key[0] for key in self.holds_released)
        if self.resets_below:
            found.update(key[0] for key in self.resets_below)
        return found

    def take_runs(self, run_ids: Collection[str]) -> WriteBatch:
        """Move every row of ``run_ids`` out of this batch into a new one (definitions and
        the fence stay here); returns the new batch."""
        ids = set(run_ids)
        taken = WriteBatch()
        if not ids:
            return taken

        def split_list(records: list[Any], run_of: Any) -> tuple[list[Any], list[Any]]:
            keep = [r for r in records if run_of(r) not in ids]
            return keep, [r for r in records if run_of(r) in ids]

        def split_dict(rows: dict[Any, Any], run_of: Any) -> tuple[dict[Any, Any], dict[Any, Any]]:
            keep = {k: v for k, v in rows.items() if run_of(k) not in ids}
            return keep, {k: v for k, v in rows.items() if run_of(k) in ids}

        self.runs, taken.runs = split_list(self.runs, lambda r: r.id)
        for name in (
            "logs",
            "metrics",
            "events",
            "commands",
            "cache_entries",
            "artifacts",
            "artifact_uses",
        ):
            keep, moved = split_list(getattr(self, name), lambda r: r.run_id)
            setattr(self, name, keep)
            setattr(taken, name, moved)
        self.signals, taken.signals = split_list(self.signals, lambda r: r.source_run_id)
        self.holds_released, taken.holds_released = split_list(self.holds_released, lambda k: k[0])
        self.resets_below, taken.resets_below = split_list(self.resets_below, lambda k: k[0])
        self.run_updates, taken.run_updates = split_dict(self.run_updates, lambda k: k)
        for name in ("step_runs", "step_run_updates", "attempts", "attempt_updates"):
            keep_rows, moved_rows = split_dict(getattr(self, name), lambda k: k[0])
            setattr(self, name, keep_rows)
            setattr(taken, name, moved_rows)
        runs_of = self.command_runs
        self.commands_done, taken.commands_done = split_dict(
            self.commands_done, lambda k: runs_of.get(k)
        )
        self.command_runs, taken.command_runs = split_dict(runs_of, lambda k: runs_of.get(k))
        return taken

    def update_run(self, run_id: str, **changes: Any) -> None:
        """Record changes to a run row."""
        self.run_updates.setdefault(run_id, {}).update(changes)

    def insert_step_run(self, record: StepRunRecord) -> None:
        """Record a new step run row."""
        self.step_runs[(record.run_id, record.id)] = record

    def update_step_run(self, run_id: str, step_run_id: int, **changes: Any) -> None:
        """Record changes to a step run row (folded into its insert if in this batch)."""
        key = (run_id, step_run_id)
        inserted = self.step_runs.get(key)
        if inserted is not None:
            for name, value in changes.items():
                setattr(inserted, name, value)
        else:
            self.step_run_updates.setdefault(key, {}).update(changes)

    def insert_attempt(self, record: AttemptRecord) -> None:
        """Record a new attempt row."""
        self.attempts[(record.run_id, record.step_run_id, record.number)] = record

    def update_attempt(self, key: AttemptKey, **changes: Any) -> None:
        """Record changes to an attempt row (folded into its insert if in this batch)."""
        inserted = self.attempts.get(key)
        if inserted is not None:
            for name, value in changes.items():
                setattr(inserted, name, value)
        else:
            self.attempt_updates.setdefault(key, {}).update(changes)

    def __bool__(self) -> bool:
        return bool(
            self.definitions
            or self.runs
            or self.run_updates
            or self.step_runs
            or self.step_run_updates
            or self.attempts
            or self.attempt_updates
            or self.logs
            or self.metrics
            or self.events
            or self.commands
            or self.commands_done
            or self.cache_entries
            or self.artifacts
            or self.artifact_uses
            or self.signals
            or self.holds_released
            or self.resets_below
        )


class StateStore(ABC):
    """Where Kaon's state lives. Implementations: SQLite (embedded), PostgreSQL.

    All methods are safe to call from several threads; each ``write`` is one transaction.
    Reads raise :class:`~kaon.errors.NotFoundError` for an unknown run; other failures raise
    :class:`~kaon.errors.StoreError`.
    """

    url: str

    # -- writing ---------------------------------------------------------------------------

    @abstractmethod
    def write(self, batch: WriteBatch) -> None:
        """Commit everything in ``batch`` atomically, or nothing (raising StoreError).

        Raises WriteOutcomeUnknownError (a StoreUnavailableError, to retry) when the
        connection was lost once the commit was sent, and marks the batch
        (``maybe_written``): writing it again is safe, a retry that finds its rows already
        there returns as written instead of being rejected for a duplicate key."""

    # -- definitions and runs --------------------------------------------------------------

    @abstractmethod
    def get_definition(self, definition_hash: str) -> DefinitionRecord:
        """The stored definition with this hash. Raises NotFoundError."""

    @abstractmethod
    def get_definitions(self, hashes: Collection[str]) -> dict[str, DefinitionRecord]:
        """The stored definitions with these hashes (those that exist), in one read."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id. Raises NotFoundError."""

    @abstractmethod
    def find_runs(self, prefix: str) -> list[str]:
        """Ids of runs starting with ``prefix`` (for short ids typed by people), at most 10."""

    def resolve_run_id(self, given: str) -> str:
        """The full id of the run named by ``given``: its id, or a unique prefix of it of at
        most :data:`MAX_RUN_ID_PREFIX` characters (a longer one is looked up as a whole id).

        Raises NotFoundError when nothing matches or the prefix is ambiguous (naming a few).
        """
        try:
            return self.get_run(given).id
        except NotFoundError:
            pass
        matches = self.find_runs(given) if len(given) <= MAX_RUN_ID_PREFIX else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(f"no run matches {given!r:.200}")
        raise NotFoundError(f"{given!r:.200} matches several runs: {', '.join(matches[:5])}")

    @abstractmethod
    def list_runs(
        self,
        *,
        workflow: str | None = None,
        statuses: Iterable[RunStatus] | None = None,
        limit: int = 50,
        offset: int = 0,
        oldest_first: bool = False,
        after: tuple[float, str] | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (oldest first when asked; ties by id), filtered by workflow
        name and statuses. ``after`` is a run's ``(created_at, id)``: only the runs that come
        after it in that order, whether it still exists or not (a keyset page, which runs
        created or deleted meanwhile do not shift as they shift an ``offset``)."""

    @abstractmethod
    def last_ended_run(
        self, workflow: str, status: RunStatus, *, after: float, until: float | None = None
    ) -> RunRecord | None:
        """The run of ``workflow`` that ended last in ``status``, if it ended after
        ``after`` (and, given ``until``, at or before it; epoch seconds; None otherwise).
        When a run ended counts, not when it was created: a restarted old run that ends
        again is found. One indexed read, whatever the number of runs."""

    @abstractmethod
    def ping(self) -> None:
        """One trivial read; raises StoreUnavailableError (or StoreError) when the database
        does not answer: a server's readiness."""

    @abstractmethod
    def queue_place(self, run: RunRecord, limit: int) -> QueuePlace:
        """Where ``run`` stands in its workflow's queue (what a run strategy admits by): the
        workflow's other active runs (running, paused, or pending and claimed by an engine)
        and its waiting runs (pending, unclaimed) ahead of ``run`` in claiming order
        (:func:`claim_key`), each counted up to ``limit``: index ranges (partial indexes of
        the pending runs) that stop at ``limit``, whatever the length of the queue."""

    @abstractmethod
    def active_runs(self, workflow: str, limit: int) -> list[RunRecord]:
        """Up to ``limit`` active runs of ``workflow`` (running, paused, or pending and
        claimed), oldest first."""

    @abstractmethod
    def delete_runs(
        self,
        run_ids: Iterable[str],
        *,
        chunk_rows: int = 1000,
        by: str = "",
        by_token: str | None = None,
    ) -> int:
        """Delete finished runs and every row that belongs to them; returns how many runs
        were deleted (an unknown or already deleted id counts for none). Each deleted run is
        recorded in the audit trail as ``run.delete`` by ``by`` (``local`` when empty), and
        by the token ``by_token`` when a token did it (token names are not unique).

        Rows go in transactions of at most ``chunk_rows`` rows, oldest first, the run's own
        row last: a run is claimed for deletion first, and a call interrupted midway (a
        crash) leaves a consistent store that a second call finishes. Cache entries made
        from a run are deleted with it (a later run with the same inputs executes the step
        again); step runs of other runs that reused its outputs from the cache get copies of
        its artifact records, so their blobs stay referenced. Idempotency keys answering with
        the run go too. Kept: trigger firings (their de-duplication keys), signals and the
        audit trail. See :mod:`kaon.store.deletion`.

        Every run is checked before any is deleted: an active run (pending, running,
        paused) raises InvalidActionError, one an engine holds a live lease on LeaseError.
        """

    @abstractmethod
    def abandoned_deletions(self, *, limit: int = 100) -> list[str]:
        """Runs whose deletion was claimed and then abandoned (its deleter died midway: the
        claim was not renewed in time), oldest first, at most ``limit``, each taken over by
        this call (no other caller gets it until the claim lapses again): calling
        :meth:`delete_runs` on them finishes their deletion."""

    @abstractmethod
    def cache_users(self, run_id: str, *, limit: int = 10_000) -> list[tuple[str, int, str]]:
        """The step runs of other runs that reused outputs of ``run_id`` from the cache, as
        ``(their run, their step run id, the path in run_id they reused)``: what deleting
        ``run_id`` hands its artifact records to. One indexed range."""

    @abstractmethod
    def expired_runs(
        self,
        *,
        before: float,
        keep_last: int = 0,
        workflow: str | None = None,
        limit: int = 1000,
    ) -> list[RunRecord]:
        """Finished runs that ended (a run that never started: was created) before
        ``before`` (epoch seconds), except the ``keep_last`` newest finished runs of each
        workflow whatever their age; only ``workflow``'s when given; oldest first, at most
        ``limit``. What retention deletes."""

    @abstractmethod
    def run_status_changes(self, run_id: str, since: float) -> list[tuple[float, str]]:
        """When the run's own status changed from ``since`` (epoch seconds) on, and to what,
        in order (its ``run`` events: ``running``, ``paused``, an end): how long it was paused
        (:func:`kaon.model.status.paused_seconds`)."""

    # -- step runs -------------------------------------------------------------------------

    @abstractmethod
    def step_runs(
        self,
        run_id: str,
        *,
        parent_id: int | None = None,
        all_levels: bool = False,
        statuses: Iterable[StepStatus] | None = None,
    ) -> list[StepRunRecord]:
        """Step runs of a run ordered by id: the children of ``parent_id`` (``None``: the top
        level), or every step run when ``all_levels``; optionally only some statuses."""

    @abstractmethod
    def children_of(self, run_id: str, parent_ids: Iterable[int]) -> list[StepRunRecord]:
        """The step runs of a run whose parent is one of ``parent_ids``, ordered by id: the
        children of several frames in one read (a resumed foreach's next items)."""

    @abstractmethod
    def get_step_run(self, run_id: str, path: str) -> StepRunRecord:
        """The step run at ``path`` (``train``, ``segments[3].train``). Raises NotFoundError."""

    @abstractmethod
    def child_outputs(self, run_id: str, parent_id: int) -> list[tuple[int, dict[str, Any] | None]]:
        """``(index, outputs)`` of the frame rows under a foreach or loop, ordered by index."""

    @abstractmethod
    def child_counts(self, run_id: str, parent_id: int) -> dict[StepStatus, int]:
        """How many children of ``parent_id`` are in each status."""

    # Reads for a run's summary: what a person sees by default costs what it shows. The
    # defaults here read every row; the SQL store answers them in the database.

    def summary_step_runs(self, run_id: str) -> list[StepRunRecord]:
        """Step runs outside foreach items and loop iterations (no ``[`` in the path), and
        those inside that did not succeed, were not cached and were not skipped; by id."""
        well = (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.SKIPPED)
        rows = self.step_runs(run_id, all_levels=True)
        return [r for r in rows if "[" not in r.path or r.status not in well]

    def status_counts(self, run_id: str) -> dict[tuple[str, StepStatus], int]:
        """How many step runs of each ``(kind, status)`` a run has, all levels."""
        counts: dict[tuple[str, StepStatus], int] = {}
        for row in self.step_runs(run_id, all_levels=True):
            counts[(row.kind, row.status)] = counts.get((row.kind, row.status), 0) + 1
        return counts

    def frame_counts(self, run_id: str) -> dict[int, dict[StepStatus, int]]:
        """For each foreach or loop: how many of its items or iterations are in each status."""
        counts: dict[int, dict[StepStatus, int]] = {}
        for row in self.step_runs(run_id, all_levels=True):
            if row.kind in ("item", "iteration") and row.parent_id is not None:
                of = counts.setdefault(row.parent_id, {})
                of[row.status] = of.get(row.status, 0) + 1
        return counts

    def attempts_of(self, run_id: str, step_run_ids: Iterable[int]) -> list[AttemptRecord]:
        """Attempts of some step runs of a run, by step run id and number."""
        wanted = set(step_run_ids)
        return [a for a in self.attempts(run_id) if a.step_run_id in wanted]

    @abstractmethod
    def max_step_run_id(self, run_id: str) -> int:
        """The largest step run id used in a run (0 when none)."""

    @abstractmethod
    def max_step_run_ids(self, run_ids: Sequence[str]) -> dict[str, int]:
        """The largest step run id of each of ``run_ids`` that has step runs (runs without
        any are absent): what :meth:`max_step_run_id` gives, for many runs at once."""

    @abstractmethod
    def attempts(self, run_id: str, step_run_id: int | None = None) -> list[AttemptRecord]:
        """Attempts of one step run, or of the whole run, in order."""

    # -- logs, metrics, events -------------------------------------------------------------

    @abstractmethod
    def logs(
        self,
        run_id: str,
        step_run_id: int | None = None,
        *,
        attempt: int | None = None,
        after_id: int = 0,
        limit: int = 10_000,
    ) -> list[LogRecord]:
        """Log lines in the order written."""

    @abstractmethod
    def metrics(self, run_id: str, step_run_id: int | None = None) -> list[MetricRecord]:
        """Metrics reported in a run (or by one step run), in the order reported."""

    @abstractmethod
    def events(
        self, run_id: str | None = None, *, after_id: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events with ids above ``after_id``, oldest first, of one run or of all runs."""

    @abstractmethod
    def step_events(
        self, run_id: str, step_run_id: int, *, kind: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest ``limit`` events of one step run (only ``kind`` when given), newest
        first: what happened to one step without reading the run's whole feed."""

    # -- memoization and lineage -----------------------------------------------------------

    @abstractmethod
    def get_cache_entry(self, key: str) -> CacheEntryRecord | None:
        """The cache entry with this key, if any. (Entries are written by ``write``; the
        first entry for a key is kept.)"""

    @abstractmethod
    def get_cache_entries(self, keys: Sequence[str]) -> dict[str, CacheEntryRecord]:
        """The cache entries among ``keys`` (one query for many: the engine looks up a whole
        window of foreach items at once)."""

    @abstractmethod
    def cache_entries(
        self, *, workflow: str | None = None, step_id: str | None = None, limit: int = 100
    ) -> list[CacheEntryRecord]:
        """Cache entries, newest first, optionally of one workflow and step id."""

    @abstractmethod
    def delete_cache_entries(
        self, *, workflow: str | None = None, step_id: str | None = None
    ) -> int:
        """Invalidate cache entries (all of them when no filter is given); returns how many."""

    @abstractmethod
    def artifacts(
        self,
        *,
        run_id: str | None = None,
        hash: str | None = None,
        limit: int = 10_000,
    ) -> list[ArtifactRecord]:
        """Artifact lineage records in creation order: of one run, or of one blob hash."""

    @abstractmethod
    def artifact_uses(
        self, hash: str, *, after_id: int = 0, limit: int = 10_000
    ) -> list[ArtifactUseRecord]:
        """The step attempts that read the blob ``hash`` and succeeded, oldest first, from
        the one after ``after_id`` (one indexed range, however many artifacts the store
        holds)."""

    @abstractmethod
    def referenced_hashes(self) -> set[str]:
        """Every blob hash a recorded artifact points to (what garbage collection keeps)."""

    # -- signals ---------------------------------------------------------------------------

    @abstractmethod
    def signals(
        self,
        *,
        name: str | None = None,
        after_id: int = 0,
        since: float | None = None,
        limit: int = 1000,
    ) -> list[SignalRecord]:
        """Signals with ids above ``after_id`` (received at or after ``since``), oldest
        first, optionally of one name."""

    @abstractmethod
    def add_signal(self, record: SignalRecord) -> SignalRecord:
        """Store one signal, in feed order like those of :meth:`write`; returns it with its
        id. Raises StoreError."""

    @abstractmethod
    def signal_cursor_since(self, since: float) -> int:
        """A cursor for "signals received at or after ``since``": every such signal,
        committed or still to come, has an id above it (an index lookup, not a scan)."""

    # -- the feed's head ---------------------------------------------------------------------

    @abstractmethod
    def last_event_id(self) -> int:
        """The largest committed event id (0 when none): where a follower "from now" starts.
        Ids become visible in increasing order (see :mod:`kaon.store.feed`), so nothing at or
        below it can still appear."""

    # -- commands and leases ---------------------------------------------------------------

    @abstractmethod
    def pending_commands(self, run_id: str) -> list[CommandRecord]:
        """Commands not yet done for a run, oldest first."""

    @abstractmethod
    def pending_commands_of(self, run_ids: Collection[str]) -> dict[str, list[CommandRecord]]:
        """Commands not yet done for any of ``run_ids``, per run, oldest first (runs without
        any are absent): one indexed query for all the runs an engine holds."""

    @abstractmethod
    def acquire_lease(
        self, run_id: str, owner: str, ttl: float, *, steal_from: str | None = None
    ) -> int | None:
        """Take over the lease on a run for ``ttl`` seconds of the database's clock.

        Succeeds when the run has no owner, its lease expired by the database's clock, or
        its owner is ``steal_from`` (an engine proven dead). Every success is a takeover:
        the run's lease epoch is incremented and returned, which fences out every earlier
        holder (see :class:`Fence`). Returns None when another engine holds the lease.
        Atomic: of engines racing, at most one succeeds. Raises NotFoundError.
        """

    @abstractmethod
    def acquire_leases(
        self, run_ids: Sequence[str], owner: str, ttl: float
    ) -> list[tuple[RunRecord, int]]:
        """Take over, in one transaction, the leases of those of ``run_ids`` that are still
        pending or running and free (no owner, or a lease expired by the database's clock),
        as :meth:`acquire_lease` does for one: each taken run's epoch is incremented.
        Returns the taken runs' records (as they are now) with their new epochs, in the
        order asked; runs another engine holds, finished runs and unknown ids are left out."""

    @abstractmethod
    def renew_leases(self, owner: str, epochs: Mapping[str, int], ttl: float) -> set[str]:
        """Extend the leases ``owner`` holds at these epochs to ``ttl`` seconds after the
        database's clock; returns the runs whose lease was lost (not renewed)."""

    @abstractmethod
    def release_lease(self, run_id: str, owner: str, epoch: int | None = None) -> None:
        """Give up the lease if ``owner`` holds it (at ``epoch``, when given)."""

    @abstractmethod
    def lease_owners(self) -> list[str]:
        """The engines holding an unexpired lease on a pending, running or paused run, each
        once: the candidates an engine checks for proof of death (see
        :meth:`release_leases_of`)."""

    @abstractmethod
    def release_leases_of(self, owner: str) -> int:
        """Void every lease ``owner`` holds on an unfinished run (it is proven dead), so
        :meth:`claimable_runs` lists those runs at once; returns how many were released."""

    @abstractmethod
    def claimable_runs(
        self,
        *,
        limit: int,
        after: ClaimKey | None = None,
        skip_workflows: Sequence[str] = (),
    ) -> list[RunRecord]:
        """Pending or running runs that no engine holds (no owner, or a lease expired by
        the database's clock) and that a serving engine may take (not of
        :data:`LOCAL_ORIGIN`), in claiming order (:func:`claim_key`: higher priority first,
        then oldest), after the key ``after`` when given, except runs of ``skip_workflows``;
        at most ``limit``. Nothing is locked or skipped: engines claiming at the same moment
        all see the oldest free runs (skipping rows another engine's read had locked put
        younger runs ahead of them), and :meth:`acquire_leases` decides who takes each."""

    # -- pools, permits and holds (multi-tenancy) -------------------------------------------

    @abstractmethod
    def pools(self) -> list[PoolRecord]:
        """Every pool, by name."""

    @abstractmethod
    def set_pool(self, record: PoolRecord) -> None:
        """Create or replace a pool (running attempts keep their holds)."""

    @abstractmethod
    def delete_pool(self, name: str) -> None:
        """Delete a pool (its holds go with it). Raises NotFoundError when there is none."""

    @abstractmethod
    def permits(self) -> list[PermitRecord]:
        """Every tag permit, by tag."""

    @abstractmethod
    def set_permit(self, record: PermitRecord) -> None:
        """Create or replace a tag permit."""

    @abstractmethod
    def delete_permit(self, tag: str) -> None:
        """Delete a tag permit (its holds go with it). Raises NotFoundError when none."""

    @abstractmethod
    def hold_usage(self) -> list[LimitUsage]:
        """What live holds take of each pool and permit. A hold is live while its run's
        lease is (by the database's clock): the holds of a dead engine stop counting when
        its lease lapses, as its attempts are fenced off by then."""

    @abstractmethod
    def pool_load(self, *, other_than: str | None = None) -> dict[tuple[str, str], int]:
        """Live pool holds per ``(pool, owner group)``: what fair share ranks groups by. With
        ``other_than``, only those of runs whose lease another engine holds (an engine counts
        its own attempts in flight from memory). One grouped query."""

    @abstractmethod
    def claim_holds(
        self,
        owner: str,
        claims: Sequence[HoldClaim],
        *,
        release: Sequence[HoldKey] = (),
        limit: int | None = None,
    ) -> list[bool]:
        """Delete the holds of ``release`` (attempts that ended), then claim, in order and in
        the same transaction, the holds of each claim that fits: its
        pool's slots and quotas and each of its tags' permits, counting live holds and the
        claims granted before it. The limit rows are locked while counting (SQLite: the
        single writer; PostgreSQL: ``SELECT ... FOR UPDATE``), so engines sharing the store
        never exceed a limit together. At most ``limit`` claims are granted (None: no
        bound). Returns whether each claim was granted."""

    @abstractmethod
    def release_holds(self, run_id: str, keep: Collection[tuple[str, int]] = ()) -> None:
        """Delete the holds of ``run_id`` except those of the attempts ``(step path,
        attempt)`` in ``keep`` (an engine taking a run over keeps the holds of the attempts
        it re-attached)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


def apply_changes(record: Any, changes: dict[str, Any]) -> None:
    """Apply a dict of field changes to a record (used by stores and tests)."""
    for name, value in changes.items():
        setattr(record, name, value)


def unique(items: Sequence[str]) -> list[str]:
    """Items without duplicates, in first-seen order."""
    return list(dict.fromkeys(items))

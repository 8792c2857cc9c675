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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kaon.errors import NotFoundError
from kaon.model.events import AttemptKey
from kaon.model.status import RunStatus, StepStatus


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
    signals: list[SignalRecord] = field(default_factory=list)

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
        return any(
            (
                self.definitions,
                self.runs,
                self.run_updates,
                self.step_runs,
                self.step_run_updates,
                self.attempts,
                self.attempt_updates,
                self.logs,
                self.metrics,
                self.events,
                self.commands,
                self.commands_done,
                self.cache_entries,
                self.artifacts,
                self.signals,
            )
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
        """Commit everything in ``batch`` atomically, or nothing (raising StoreError)."""

    # -- definitions and runs --------------------------------------------------------------

    @abstractmethod
    def get_definition(self, definition_hash: str) -> DefinitionRecord:
        """The stored definition with this hash. Raises NotFoundError."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id. Raises NotFoundError."""

    @abstractmethod
    def find_runs(self, prefix: str) -> list[str]:
        """Ids of runs starting with ``prefix`` (for short ids typed by people), at most 10."""

    def resolve_run_id(self, given: str) -> str:
        """The full id of the run named by ``given``: its id, or a unique prefix of it.

        Raises NotFoundError when nothing matches or the prefix is ambiguous (naming a few).
        """
        try:
            return self.get_run(given).id
        except NotFoundError:
            pass
        matches = self.find_runs(given)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(f"no run matches {given!r}")
        raise NotFoundError(f"{given!r} matches several runs: {', '.join(matches[:5])}")

    @abstractmethod
    def list_runs(
        self,
        *,
        workflow: str | None = None,
        statuses: Iterable[RunStatus] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by workflow name and statuses."""

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
    def get_step_run(self, run_id: str, path: str) -> StepRunRecord:
        """The step run at ``path`` (``train``, ``segments[3].train``). Raises NotFoundError."""

    @abstractmethod
    def child_outputs(self, run_id: str, parent_id: int) -> list[tuple[int, dict[str, Any] | None]]:
        """``(index, outputs)`` of the frame rows under a foreach or loop, ordered by index."""

    @abstractmethod
    def child_counts(self, run_id: str, parent_id: int) -> dict[StepStatus, int]:
        """How many children of ``parent_id`` are in each status."""

    @abstractmethod
    def max_step_run_id(self, run_id: str) -> int:
        """The largest step run id used in a run (0 when none)."""

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
        consumer_of: str | None = None,
        limit: int = 10_000,
    ) -> list[ArtifactRecord]:
        """Artifact lineage records in creation order: of one run, of one blob hash, or
        those produced from a blob (``consumer_of``: its hash is among their inputs)."""

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

    # -- commands and leases ---------------------------------------------------------------

    @abstractmethod
    def pending_commands(self, run_id: str) -> list[CommandRecord]:
        """Commands not yet done for a run, oldest first."""

    @abstractmethod
    def acquire_lease(self, run_id: str, owner: str, until: float, now: float) -> bool:
        """Take or renew the lease on a run for ``owner`` until ``until``.

        Succeeds when the run has no owner, its lease expired before ``now``, or ``owner``
        already holds it. Atomic: of two engines racing, at most one succeeds.
        """

    @abstractmethod
    def release_lease(self, run_id: str, owner: str) -> None:
        """Give up the lease if ``owner`` holds it."""

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

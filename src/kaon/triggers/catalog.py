"""Which workflows the trigger service serves, and how it starts their runs.

:class:`RegistryCatalog` reads the active version of every registered workflow (the
server's case); :class:`StaticCatalog` serves a fixed list of specs (tests, embedding).
Both start runs the same way: :func:`launch_all` claims the firings of a pass in the trigger
store, then creates the runs they name (one write each, whatever their number), so that a
(trigger, key) pair starts at most one run even with several servers, and a crash between
the two steps is repaired by :func:`repair`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kaon.engine import operations
from kaon.errors import (
    DefinitionError,
    KaonError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from kaon.model.codec import workflow_from_dict
from kaon.model.params import bind_params
from kaon.model.specs import WorkflowSpec
from kaon.store.base import RunRecord, StateStore, WriteBatch
from kaon.store.triggers import CLAIMED, CREATED, DROPPED, FiringRecord, TriggerStore
from kaon.triggers import strategies

if TYPE_CHECKING:
    from kaon.store.registry import VersionRecord

log = logging.getLogger("kaon.triggers")

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class ActiveWorkflow:
    """A workflow whose triggers are served: its active spec, version and properties."""

    name: str
    spec: WorkflowSpec
    version: int | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    since: float | None = None  # when the active version was pushed (its triggers' start)
    owner_group: str | None = None  # which signals reach it (SignalRecord.reaches)
    definition_hash: str | None = None  # the version's stored definition (None: not stored)


class WorkflowCatalog(Protocol):
    """Where the trigger service finds workflows."""

    def active_workflows(self, *, fresh: bool = False) -> list[ActiveWorkflow]:
        """Every workflow that currently has an active version. ``fresh``: as of now
        (whatever was committed before the call is seen), not a copy kept a while."""
        ...  # pragma: no cover

    def get(self, name: str) -> ActiveWorkflow:
        """One active workflow. Raises NotFoundError (unknown or deactivated)."""
        ...  # pragma: no cover


class StaticCatalog:
    """A fixed set of workflow specs (properties per workflow name optional)."""

    def __init__(
        self,
        specs: list[WorkflowSpec],
        properties: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        props = properties or {}
        self._workflows = {
            s.name: ActiveWorkflow(s.name, s, None, dict(props.get(s.name, {}))) for s in specs
        }

    def active_workflows(self, *, fresh: bool = False) -> list[ActiveWorkflow]:
        """Every spec given (always fresh)."""
        return list(self._workflows.values())

    def get(self, name: str) -> ActiveWorkflow:
        """The spec called ``name``. Raises NotFoundError."""
        try:
            return self._workflows[name]
        except KeyError:
            raise NotFoundError(f"no workflow {name!r}") from None


class RegistryCatalog:
    """The active versions of the workflows in the registry of a SQL store.

    Specs are decoded once per definition hash. Every ``refresh_s`` seconds the registry's
    signature (one aggregate) is compared with the last one read; the list is re-read, in one
    query whatever the number of workflows, only when it changed (pushes and activations show
    up within that delay), so an idle registry of thousands of workflows costs one small query
    a second. A ``fresh`` read compares the signature at once (one small query).
    """

    def __init__(self, store: StateStore, *, refresh_s: float = 1.0) -> None:
        from kaon.store.registry import SQLRegistryStore
        from kaon.store.sql import SQLStore

        if not isinstance(store, SQLStore):
            raise TypeError("RegistryCatalog needs a SQLStore")
        self.store = store
        self.registry = SQLRegistryStore(store)
        self.refresh_s = refresh_s
        self._specs: dict[str, WorkflowSpec] = {}
        self._cached: list[ActiveWorkflow] = []
        self._read_at = float("-inf")
        self._signature: tuple[object, ...] | None = None
        self._lock = threading.Lock()

    def active_workflows(self, *, fresh: bool = False) -> list[ActiveWorkflow]:
        """Every registered workflow with an active version (``fresh``: as of now, see the
        class docs)."""
        with self._lock:
            if fresh or time.monotonic() - self._read_at >= self.refresh_s:
                signature = self.registry.signature()
                if signature != self._signature:
                    self._cached = self._read()
                    self._signature = signature
                self._read_at = time.monotonic()
            return list(self._cached)

    def invalidate(self) -> None:
        """Re-read the registry on the next call (after a push or activation)."""
        with self._lock:
            self._read_at = float("-inf")
            self._signature = None

    def get(self, name: str) -> ActiveWorkflow:
        """The active version of ``name``. Raises NotFoundError."""
        record = self.registry.get_workflow(name)
        if record.active_version is None:
            raise NotFoundError(f"workflow {name!r} has no active version")
        return self._active(
            record.name, record.active_version, record.properties, record.owner_group
        )

    def _read(self) -> list[ActiveWorkflow]:
        found: list[ActiveWorkflow] = []
        active = self.registry.active_versions()
        missing = {v.definition_hash for _, v in active} - self._specs.keys()
        for digest, definition in self.store.get_definitions(missing).items():
            try:  # decoded once per hash, read in one query (a start with thousands)
                self._specs[digest] = workflow_from_dict(definition.spec)
            except DefinitionError:
                continue  # reported by _of below, per workflow
        for record, version in active:
            try:
                found.append(self._of(record.name, version, record.properties, record.owner_group))
            except (NotFoundError, DefinitionError) as error:
                log.warning("cannot serve workflow %s: %s", record.name, error)
        return found

    def _active(
        self,
        name: str,
        number: int,
        properties: Mapping[str, Any],
        owner_group: str | None = None,
    ) -> ActiveWorkflow:
        return self._of(name, self.registry.get_version(name, number), properties, owner_group)

    def _of(
        self,
        name: str,
        version: VersionRecord,
        properties: Mapping[str, Any],
        owner_group: str | None = None,
    ) -> ActiveWorkflow:
        spec = self._specs.get(version.definition_hash)
        if spec is None:
            spec = workflow_from_dict(self.store.get_definition(version.definition_hash).spec)
            self._specs[version.definition_hash] = spec
        return ActiveWorkflow(
            name,
            spec,
            version.version,
            dict(properties or {}),
            version.source_name,
            since=version.created_at,
            owner_group=owner_group,
            definition_hash=version.definition_hash,
        )


LagHook = Callable[[str, float], None]
"""``(trigger name, seconds)``: called with the lag from due time to run creation."""


_Wanted = tuple[ActiveWorkflow, FiringRecord, dict[str, Any]]  # a claimed firing's run


@dataclass(frozen=True, slots=True)
class Launch:
    """A run a trigger asks for: the (trigger, key) pair that starts it at most once, its
    parameters and labels, and when it was due (see :func:`launch_all`)."""

    workflow: ActiveWorkflow
    trigger_id: str
    key: str
    params: Mapping[str, Any]
    labels: Mapping[str, Any]
    due_at: float
    problem: str | None = None  # known to start no run (its parameters failed): why


def launch(
    store: StateStore,
    triggers: TriggerStore,
    workflow: ActiveWorkflow,
    *,
    trigger_id: str,
    key: str,
    params: Mapping[str, Any],
    labels: Mapping[str, Any],
    due_at: float,
    now: float,
    executor: str = "",
    problem: str | None = None,
) -> RunRecord | None:
    """Claim (trigger_id, key) and create its run; None when it was claimed before, or
    ``problem`` says why it cannot start, or the parameters do not bind (the firing is then
    recorded as dropped, with why, and logged)."""
    item = Launch(workflow, trigger_id, key, params, labels, due_at, problem)
    created = launch_all(store, triggers, [item], now=now, executor=executor)
    return created[0][1] if created else None


def launch_all(
    store: StateStore,
    triggers: TriggerStore,
    launches: Sequence[Launch],
    *,
    now: float,
    executor: str = "",
) -> list[tuple[Launch, RunRecord]]:
    """Claim every launch's (trigger, key) pair and create the runs of the pairs this call
    claimed: three writes whatever their number (the claims, the runs, the claims marked
    created), so a pass that fires hundreds of triggers costs what one firing did. A crash
    between the claims and the runs leaves claims that :func:`repair` completes.

    A launch that comes with a ``problem`` (its parameters could not be computed), whose
    parameters do not bind, or whose workflow names a pool that does not exist, is claimed
    as dropped, with why in the firing's ``error``, and logged. A write rejected for one
    launch's rows (a value that is not JSON, say) is retried launch by launch, so it fails
    that launch alone.
    Returns the runs created, with their launches, in order.
    """
    firings: list[FiringRecord] = []
    bound: dict[int, dict[str, Any]] = {}
    problems: dict[int, str] = {}
    pools_ok: dict[str, str] = {}  # workflow -> "" or why its pools are wrong
    for index, item in enumerate(launches):
        firing = _firing(item, now)
        try:
            if item.problem is not None:
                raise DefinitionError(item.problem)
            problem = pools_ok.get(item.workflow.name)
            if problem is None:
                problem = pools_ok[item.workflow.name] = _pool_problem(store, item.workflow)
            if problem:
                raise DefinitionError(problem)
            bound[index] = bind_params(item.workflow.spec, item.params)
        except DefinitionError as error:
            firing.status = DROPPED
            firing.error = problems[index] = str(error)
        firings.append(firing)
    claimed = {id(f) for f in _each_or_all(triggers.claim_firings, firings)}
    wanted: list[_Wanted] = []
    launch_of: dict[int, Launch] = {}
    for index, (item, firing) in enumerate(zip(launches, firings, strict=True)):
        if id(firing) not in claimed:
            continue
        if index in problems:
            why = problems[index]
            log.warning("trigger %s (%s) did not start a run: %s", item.trigger_id, item.key, why)
            continue
        wanted.append((item.workflow, firing, bound[index]))
        launch_of[id(firing)] = item
    created = _start(store, triggers, wanted, executor)
    return [(launch_of[id(firing)], run) for firing, run in created]


def _start(
    store: StateStore, triggers: TriggerStore, wanted: list[_Wanted], executor: str
) -> list[tuple[FiringRecord, RunRecord]]:
    """Create the runs of claimed firings in one write (one by one if the store rejects
    that write), mark the firings created in one more, and apply the run strategies'
    immediate effects; returns the firings whose run was created, with their runs."""
    workflow_of = {id(firing): workflow for workflow, firing, _ in wanted}

    def write(group: Sequence[_Wanted]) -> list[tuple[FiringRecord, RunRecord]]:
        batch = WriteBatch()
        hashes: dict[str, str] = {}  # a spec stored by this batch is stored once
        done = []
        for workflow, firing, params in group:
            run = operations.add_run(
                batch,
                workflow.spec,
                params,
                source=workflow.source,
                executor=executor,
                labels=firing.labels,
                run_id=firing.run_id,
                stored_hash=workflow.definition_hash or hashes.get(workflow.name),
            )
            hashes[workflow.name] = run.definition_hash
            done.append((firing, run))
        store.write(batch)
        return done

    if not wanted:
        return []
    created = _each_or_all(write, wanted)
    triggers.set_firing_statuses([f.id for f, _ in created if f.id is not None], CREATED)
    for firing, run in created:
        workflow = workflow_of[id(firing)]
        known = {**strategies.DEFAULT_PROPERTIES, **workflow.properties}
        strategies.on_run_created(store, run, properties=_constant(known))
    return created


def _constant(properties: dict[str, Any]) -> Callable[[StateStore, str], dict[str, Any]]:
    """A properties reader that answers ``properties`` (the catalog's, already read)."""
    return lambda _store, _name: properties


def _firing(item: Launch, now: float) -> FiringRecord:
    labels = item.labels
    tags = {**dict(labels), "trigger_id": item.trigger_id, "by": f"trigger:{labels.get('trigger')}"}
    if item.workflow.version is not None:
        tags["version"] = item.workflow.version
    return FiringRecord(
        trigger_id=item.trigger_id,
        dedupe_key=item.key,
        workflow=item.workflow.name,
        run_id=operations.new_run_id(),
        params=dict(item.params),
        labels=tags,
        due_at=item.due_at,
        created_at=now,
    )


def _pool_problem(store: StateStore, workflow: ActiveWorkflow) -> str:
    try:
        operations.check_pools(store, workflow.spec)
    except DefinitionError as error:
        return str(error)
    return ""


def _each_or_all(write: Callable[[Sequence[_T]], list[_R]], items: Sequence[_T]) -> list[_R]:
    """``write(items)``; when the store rejects it (not a transient failure), each item
    alone, logging and leaving out those it rejects again."""
    try:
        return write(items)
    except StoreUnavailableError:
        raise
    except StoreError:
        if len(items) == 1:
            raise
    done: list[_R] = []
    for item in items:
        try:
            done += write([item])
        except StoreUnavailableError:
            raise
        except StoreError as error:
            log.warning("trigger firing not recorded: %s", error)
    return done


def repair(
    store: StateStore,
    triggers: TriggerStore,
    catalog: WorkflowCatalog,
    *,
    now: float,
    grace_s: float = 30.0,
    executor: str = "",
    on_lag: Callable[[str, float], None] | None = None,
) -> int:
    """Create the runs of firings claimed more than ``grace_s`` ago but never created (a
    crash, or a store failing for a moment, in between); returns how many were created.
    Firings whose workflow is gone are marked dropped. ``on_lag`` gets each created run's
    lag from its firing's due time, as the pass's own launches report it."""
    created = 0
    for firing in triggers.firings(statuses=[CLAIMED], limit=500):
        assert firing.id is not None
        if firing.created_at > now - grace_s:
            continue  # being created right now, maybe by another server
        if _run_exists(store, firing):
            triggers.set_firing_status(firing.id, CREATED)
            continue
        try:
            workflow = catalog.get(firing.workflow)
            operations.check_pools(store, workflow.spec)
            bound = bind_params(workflow.spec, firing.params)
            done = _start(store, triggers, [(workflow, firing, bound)], executor)
        except StoreUnavailableError:
            raise
        except KaonError as error:
            if _run_exists(store, firing):  # another server created it meanwhile
                triggers.set_firing_status(firing.id, CREATED)
                continue
            log.warning("dropping firing %s/%s: %s", firing.trigger_id, firing.dedupe_key, error)
            triggers.set_firing_status(firing.id, DROPPED, error=str(error))
            continue
        created += len(done)
        if done and on_lag is not None:
            kind = str(firing.labels.get("trigger", ""))
            on_lag(f"{firing.workflow}/{kind}", max(0.0, now - firing.due_at))
    return created


def _run_exists(store: StateStore, firing: FiringRecord) -> bool:
    try:
        store.get_run(firing.run_id)
    except NotFoundError:
        return False
    return True

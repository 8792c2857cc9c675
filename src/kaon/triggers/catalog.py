"""Which workflows the trigger service serves, and how it starts their runs.

:class:`RegistryCatalog` reads the active version of every registered workflow (the
server's case); :class:`StaticCatalog` serves a fixed list of specs (tests, embedding).
Both start runs the same way: :func:`launch` claims a firing in the trigger store, then
creates the run it names, so that a (trigger, key) pair starts at most one run even with
several servers, and a crash between the two steps is repaired by :func:`repair`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kaon.engine import operations
from kaon.errors import DefinitionError, KaonError, NotFoundError
from kaon.model.codec import workflow_from_dict
from kaon.model.params import bind_params
from kaon.model.specs import WorkflowSpec
from kaon.store.base import RunRecord, StateStore
from kaon.store.triggers import CLAIMED, CREATED, DROPPED, FiringRecord, TriggerStore
from kaon.triggers import strategies

if TYPE_CHECKING:
    from kaon.store.registry import VersionRecord

log = logging.getLogger("kaon.triggers")


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

    def active_workflows(self) -> list[ActiveWorkflow]:
        """Every workflow that currently has an active version."""
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

    def active_workflows(self) -> list[ActiveWorkflow]:
        """Every spec given."""
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
    a second.
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

    def active_workflows(self) -> list[ActiveWorkflow]:
        """Every registered workflow with an active version."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_s:
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
        for record, version in self.registry.active_versions():
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
) -> RunRecord | None:
    """Claim (trigger_id, key) and create its run; None when it was claimed before or the
    parameters do not bind (the firing is then recorded as dropped and logged)."""
    tags = {**dict(labels), "trigger_id": trigger_id, "by": f"trigger:{labels.get('trigger')}"}
    if workflow.version is not None:
        tags["version"] = workflow.version
    firing = FiringRecord(
        trigger_id=trigger_id,
        dedupe_key=key,
        workflow=workflow.name,
        run_id=operations.new_run_id(),
        params=dict(params),
        labels=tags,
        due_at=due_at,
        created_at=now,
    )
    try:
        bound = bind_params(workflow.spec, params)
    except DefinitionError as error:
        firing.status = DROPPED
        if triggers.claim_firing(firing):
            log.warning("trigger %s (%s) did not start a run: %s", trigger_id, key, error)
        return None
    if not triggers.claim_firing(firing):
        return None
    return _create(store, triggers, workflow, firing, bound, executor)


def _create(
    store: StateStore,
    triggers: TriggerStore,
    workflow: ActiveWorkflow,
    firing: FiringRecord,
    bound: dict[str, Any],
    executor: str,
) -> RunRecord:
    run = operations.create_run(
        store,
        workflow.spec,
        bound,
        source=workflow.source,
        executor=executor,
        labels=firing.labels,
        run_id=firing.run_id,
        stored_hash=workflow.definition_hash,  # no hashing or storing the spec per firing
    )
    assert firing.id is not None
    triggers.set_firing_status(firing.id, CREATED)
    known = {**strategies.DEFAULT_PROPERTIES, **workflow.properties}
    strategies.on_run_created(store, run, properties=lambda _store, _name: known)
    return run


def repair(
    store: StateStore,
    triggers: TriggerStore,
    catalog: WorkflowCatalog,
    *,
    now: float,
    grace_s: float = 30.0,
    executor: str = "",
) -> int:
    """Create the runs of firings claimed more than ``grace_s`` ago but never created (a
    crash in between); returns how many were created. Firings whose workflow is gone are
    marked dropped."""
    created = 0
    for firing in triggers.firings(statuses=[CLAIMED], limit=500):
        assert firing.id is not None
        if firing.created_at > now - grace_s:
            continue  # being created right now, maybe by another server
        try:
            store.get_run(firing.run_id)
            triggers.set_firing_status(firing.id, CREATED)
            continue
        except NotFoundError:
            pass
        try:
            workflow = catalog.get(firing.workflow)
            bound = bind_params(workflow.spec, firing.params)
            _create(store, triggers, workflow, firing, bound, executor)
            created += 1
        except KaonError as error:
            log.warning("dropping firing %s/%s: %s", firing.trigger_id, firing.dedupe_key, error)
            triggers.set_firing_status(firing.id, DROPPED)
    return created

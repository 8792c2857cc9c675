"""The workflow registry service: push, versions, activation, properties, starting runs.

Pushing validates a workflow file's text and stores a new immutable version with the source
and the definition's content hash; identical content is a no-op returning the existing
version. The text is kept under ``<home>/sources/<sha256 prefix>/<file name>`` and loaded from
there, so a Python workflow's step functions resolve to that exact content in every worker
(its path, and so its definition hash, changes whenever the content does).

Authorization happens here for operations whose workflow is known only inside (push), and
through :meth:`RegistryService.authorize` otherwise; every change is written to the audit
trail with who did it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kaon.engine import operations
from kaon.errors import (
    DefinitionError,
    InvalidActionError,
    Location,
    NotFoundError,
    ParameterError,
    Problem,
)
from kaon.model.breakpoints import check_breakpoints
from kaon.model.cache_policy import CachePolicy, check_cache_policy
from kaon.model.codec import spec_hash, workflow_to_dict
from kaon.model.owner_groups import check_group
from kaon.model.params import bind_params, json_problem
from kaon.model.properties import audited_changes, check_properties
from kaon.model.spec_cache import SPECS
from kaon.model.specs import WorkflowSpec, signal_name_problem
from kaon.service.auth import ANY_GROUP, AuthService, Principal
from kaon.service.bundle import (
    SAFE_NAME,
    bundle_digest,
    bundle_problems,
    reach_problems,
    write_bundle,
)
from kaon.service.bundle_files import BundleFiles, canonical
from kaon.service.push_sandbox import SandboxLimits, declared_names, evaluate
from kaon.service.registry_views import (
    PushResult,
    VersionMatch,
    VersionView,
    WorkflowView,
    version_view,
    workflow_view,
)
from kaon.service.safety import check_value, readable_text
from kaon.service.views import RunView, run_view
from kaon.store import schema
from kaon.store.base import DefinitionRecord, SignalRecord, WriteBatch
from kaon.store.registry import RegistryStore, VersionRecord
from kaon.store.sql import SQLStore

SOURCE_SUFFIXES = (".py", ".yaml", ".yml")


class RegistryService:
    """Workflows and their versions over a SQL store; runs of registered versions."""

    def __init__(
        self,
        store: SQLStore,
        registry: RegistryStore,
        auth: AuthService,
        *,
        sources_dir: Path,
        executor: str = "",
    ) -> None:
        self.store = store
        self.registry = registry
        self.auth = auth
        self.sources_dir = sources_dir
        self.executor = executor
        self.sandbox = SandboxLimits()
        self.bundles = BundleFiles(registry, sources_dir)
        self._evaluated: dict[str, WorkflowSpec] = {}  # pushed file -> its spec
        self._lock = threading.Lock()

    # -- pushing -----------------------------------------------------------------------------

    def push(
        self,
        source: str,
        file_name: str,
        principal: Principal,
        *,
        workflow: str | None = None,
        activate: bool = True,
        owner_group: str | None = None,
        files: Mapping[str, str] | None = None,
    ) -> PushResult:
        """Validate ``source`` (the text of ``file_name``) and register it as a version.

        ``files`` is the bundle of files beside it that its steps use (sibling modules, SQL
        files, notebooks; see :mod:`kaon.service.bundle`), stored with it on the server.
        Raises DefinitionError with every problem (locations name ``file_name``),
        PermissionDeniedError unless ``principal`` is an owner of the workflow's group.
        """
        name = _checked_name(file_name)
        check_group(owner_group, "owner_group")
        files = dict(files or {})
        before = {workflow} if workflow else declared_names(source, name) or set()
        for known in sorted(before):  # refused before any of the file's code runs
            self._owner_group_for(principal, known, owner_group)
        folder, created = self._store_files(name, source, files)
        try:
            target = str(folder / name) + (f":{workflow}" if workflow else "")
            spec = self._evaluated.get(target) or evaluate(target, name, self.sandbox)
            owner_group = self._owner_group_for(principal, spec.name, owner_group)
            reach = reach_problems(spec, folder, name)
            if reach:
                raise DefinitionError(reach)
        except BaseException:
            if created:  # a refused or failed push leaves nothing behind
                shutil.rmtree(folder, ignore_errors=True)
            raise
        with self._lock:  # the folder is content-addressed: same content, same spec
            if len(self._evaluated) > 1000:
                self._evaluated.clear()
            self._evaluated[target] = spec
        spec = canonical(spec, folder)  # the same definition through every replica
        self.bundles.keep(folder, {name: source, **files})  # for the replicas without it
        now = time.time()
        definition_hash = spec_hash(spec)
        definition = DefinitionRecord(
            definition_hash, spec.name, workflow_to_dict(spec), source, now
        )
        self.store.write(WriteBatch(definitions=[definition]))
        proposed = VersionRecord(
            spec.name, 0, definition_hash, source, file_name, now, principal.name
        )
        version, created = self.registry.add_version(
            proposed, activate=activate, owner_group=owner_group
        )
        active = self.registry.get_workflow(spec.name).active_version
        if created:
            self.auth.audit(
                principal,
                "workflow.push",
                f"workflow:{spec.name}",
                {"version": version.version, "hash": definition_hash, "file": file_name},
            )
        return PushResult(
            workflow=spec.name,
            version=version.version,
            definition_hash=definition_hash,
            created=created,
            active_version=active,
        )

    def match(
        self,
        name: str,
        source: str,
        file_name: str,
        principal: Principal,
        *,
        workflow: str | None = None,
        files: Mapping[str, str] | None = None,
    ) -> VersionMatch:
        """The version of workflow ``name`` a push of this file and bundle would return, if
        any, without pushing: what lets someone who may run but not push run an unchanged
        file. Only content an owner pushed before is evaluated (its content-addressed folder
        exists); anything else matches no version. Raises NotFoundError for an unknown
        workflow, PermissionDeniedError unless ``principal`` operates it.
        """
        self.authorize(principal, "operator", name)
        current = self.registry.get_workflow(name)
        found = VersionMatch(workflow=name, active_version=current.active_version)
        bundle = dict(files or {})
        if bundle_problems(file_name, bundle) or not SAFE_NAME.fullmatch(file_name):
            return found
        # Pushed through another replica: its bundle is written out here from the database.
        folder = self.bundles.ensure(bundle_digest(file_name, source, bundle)[:16])
        if not (folder / file_name).is_file():
            return found
        target = str(folder / file_name) + (f":{workflow}" if workflow else "")
        spec = self._evaluated.get(target) or evaluate(target, file_name, self.sandbox)
        if spec.name != name:
            return found
        wanted = spec_hash(canonical(spec, folder))
        found.version = self.registry.version_of_hash(name, wanted)
        return found

    def _owner_group_for(
        self, principal: Principal, workflow: str, owner_group: str | None
    ) -> str | None:
        """Check that ``principal`` may push ``workflow``; the owner group it will have."""
        try:
            current = self.registry.get_workflow(workflow)
        except NotFoundError:
            self.auth.check(principal, "owner", owner_group=owner_group, giving=True)
            if owner_group is None and not principal.is_admin and principal.groups:
                return principal.groups[0]
            return owner_group
        self.auth.check(principal, "owner", owner_group=current.owner_group)
        self._may_hand_to(principal, owner_group)
        return owner_group

    def _may_hand_to(self, principal: Principal, owner_group: str | None) -> None:
        """Check that ``principal`` may give a workflow to ``owner_group`` (None: no change):
        an owner in that group (or an admin). Moving a workflow into a group makes its runs,
        signals and steps act as that group's, so the group it goes to must be the caller's
        as much as the one it leaves."""
        if owner_group is not None:
            self.auth.check(principal, "owner", owner_group=owner_group, giving=True)

    def _store_files(self, name: str, source: str, files: dict[str, str]) -> tuple[Path, bool]:
        """Write the file and its bundle under ``sources/``; the folder and whether this
        call created it."""
        try:
            data = source.encode("utf-8")
        except UnicodeEncodeError:
            where = Location(name, field="source")
            raise DefinitionError(Problem("the source is not valid Unicode text", where)) from None
        problems = bundle_problems(name, files)
        if problems:
            raise DefinitionError(problems)
        folder = self.sources_dir / bundle_digest(name, source, files)[:16]
        if folder.is_dir():  # the same content, pushed before: complete (made whole at once)
            return folder, False
        partial = self.sources_dir / f".partial-{folder.name}-{uuid.uuid4().hex}"
        try:
            self.sources_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the code: private
            partial.mkdir(mode=0o700)
            write_bundle(partial, files)  # before the definition: it may import them
            (partial / name).write_bytes(data)
            # Renamed into place whole: a push killed midway leaves no folder a replica would
            # take for the bundle (BundleFiles.ensure trusts a folder that exists).
            os.rename(partial, folder)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if folder.is_dir():  # another push of the same content won the rename
                return folder, False
            where = Location(name, field="file_name")
            raise DefinitionError(
                Problem(f"cannot store the file: {exc.strerror}", where)
            ) from None
        return folder, True

    # -- reading -----------------------------------------------------------------------------

    def workflows(
        self, *, limit: int = 100, offset: int = 0, after: str | None = None
    ) -> list[WorkflowView]:
        """Registered workflows by name: ``limit`` from ``offset``, of those named after
        ``after``."""
        return [
            workflow_view(record, self._latest(record.name))
            for record in self.registry.list_workflows(limit=limit, offset=offset, after=after)
        ]

    def workflow(self, name: str) -> WorkflowView:
        """One workflow. Raises NotFoundError."""
        return workflow_view(self.registry.get_workflow(name), self._latest(name))

    def _latest(self, name: str) -> int | None:
        c = schema.metadata.tables["workflow_versions"].c
        stmt = sa.select(sa.func.max(c.version)).where(c.workflow == name)
        with self.store.reading() as conn:
            found = conn.execute(stmt).scalar()
        return None if found is None else int(found)

    def versions(
        self, name: str, *, before: int | None = None, limit: int | None = None
    ) -> list[VersionView]:
        """A workflow's versions, oldest first: the newest ``limit`` (all when None) below
        version ``before`` (all when None). Raises NotFoundError."""
        active = self.registry.get_workflow(name).active_version
        found = self.registry.versions(name, before=before, limit=limit)
        return [version_view(v, active) for v in found]

    def version(self, name: str, number: int) -> VersionView:
        """One version with its source text. Raises NotFoundError."""
        active = self.registry.get_workflow(name).active_version
        return version_view(self.registry.get_version(name, number), active, with_source=True)

    def owner_group(self, name: str) -> str | None:
        """The owner group of a workflow (``None`` for none, or an unknown workflow)."""
        try:
            return self.registry.get_workflow(name).owner_group
        except NotFoundError:
            return None

    # -- changing ----------------------------------------------------------------------------

    def activate(self, name: str, version: int, principal: Principal) -> WorkflowView:
        """Make ``version`` the one new runs use. Raises NotFoundError, PermissionDeniedError."""
        self.authorize(principal, "owner", name)
        record = self.registry.set_active(name, version, time.time())
        self.auth.audit(principal, "workflow.activate", f"workflow:{name}", {"version": version})
        return workflow_view(record, self._latest(name))

    def deactivate(self, name: str, principal: Principal) -> WorkflowView:
        """Stop new runs of the workflow (none is active). Raises NotFoundError, ..."""
        self.authorize(principal, "owner", name)
        record = self.registry.set_active(name, None, time.time())
        self.auth.audit(principal, "workflow.deactivate", f"workflow:{name}")
        return workflow_view(record, self._latest(name))

    def update(
        self,
        name: str,
        principal: Principal,
        *,
        properties: Mapping[str, Any] | None = None,
        owner_group: str | None = None,
    ) -> WorkflowView:
        """Merge ``properties`` (``None`` values remove keys) and optionally move the
        workflow to another owner group; no new version. Raises NotFoundError, ..."""
        self.authorize(principal, "owner", name)
        check_group(owner_group, "owner_group")
        self._may_hand_to(principal, owner_group)
        check_value(dict(properties or {}), "properties")
        check_properties(properties or {})
        record = self.registry.update_workflow(
            name, time.time(), property_changes=dict(properties or {}), owner_group=owner_group
        )
        # The values of secrets (webhook URLs) stay out: see audited_changes.
        data = {"properties": audited_changes(properties or {}), "owner_group": owner_group}
        self.auth.audit(principal, "workflow.update", f"workflow:{name}", data)
        return workflow_view(record, self._latest(name))

    def authorize(self, principal: Principal, role: str, workflow: str) -> None:
        """Raise PermissionDeniedError unless ``principal`` may act with ``role`` on
        ``workflow``."""
        self.auth.check(principal, role, owner_group=self.owner_group(workflow))

    # -- runs --------------------------------------------------------------------------------

    def start_run(
        self,
        name: str,
        params: Mapping[str, Any],
        principal: Principal,
        *,
        version: int | None = None,
        from_strings: bool = False,
        labels: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        cache: CachePolicy | None = None,
        breakpoints: Sequence[str] = (),
        priority: int | None = None,
    ) -> RunView:
        """Record a pending run of the active (or given) version; the server's engine
        claims it. The run's labels record ``version`` and who started it (``by``), and
        the cache policy and breakpoints when given (see :mod:`kaon.model.cache_policy`,
        :mod:`kaon.model.breakpoints`).

        ``run_id`` names the new run; when a run of that id exists already (a retried
        idempotent request whose first attempt got that far), it is returned instead.

        Raises NotFoundError, InvalidActionError (the workflow is deactivated and no version
        was given), ParameterError, PermissionDeniedError.
        """
        workflow = self.registry.get_workflow(name)
        self.auth.check(principal, "operator", owner_group=workflow.owner_group)
        check_value({"params": dict(params), "labels": dict(labels or {})})
        if run_id is not None:
            try:
                return run_view(self.store.get_run(run_id))
            except NotFoundError:
                pass
        number = version if version is not None else workflow.active_version
        if number is None:
            raise InvalidActionError(
                f"workflow {name!r} is deactivated: activate a version or name one"
            )
        record = self.registry.get_version(name, number)
        spec = self.spec(record.definition_hash)
        bound = bind_params(spec, params, from_strings=from_strings)
        tags = {**dict(labels or {}), "version": number, "by": principal.name}
        tags = check_cache_policy(spec, cache).with_labels(tags)
        tags = check_breakpoints(spec, breakpoints).with_labels(tags)
        run = operations.create_run(
            self.store,
            spec,
            bound,
            source=record.source_name,
            executor=self.executor,
            labels=tags,
            stored_hash=record.definition_hash,
            run_id=run_id,
            priority=priority,
        )
        self.auth.audit(
            principal, "run.start", f"run:{run.id}", {"workflow": name, "version": number}
        )
        return run_view(run)

    def spec(self, definition_hash: str) -> WorkflowSpec:
        """The workflow spec stored under ``definition_hash`` (decoded once per process:
        :mod:`kaon.model.spec_cache`)."""
        return SPECS.decoded(
            definition_hash, lambda: self.store.get_definition(definition_hash).spec
        )

    # -- signals -----------------------------------------------------------------------------

    def send_signal(
        self,
        name: str,
        params: Mapping[str, Any],
        principal: Principal,
        *,
        dedupe_key: str | None = None,
    ) -> SignalRecord:
        """Store a signal (trigger and waiting steps react to it); returns it with its id.

        The signal reaches only workflows ``principal`` may operate: its scope is the
        principal's groups (none for an admin or a holder of ``*``), see
        :meth:`SignalRecord.reaches`.

        Raises UnsafeValueError (422) for parameters that could not be stored safely (NaN
        and Infinity among them: standard JSON has neither), and ParameterError for a name
        no signal may have (see SIGNAL_NAME_PATTERN, as the API checks it) or a parameter
        larger than the value size limit."""
        check_value({"name": name, "params": dict(params), "dedupe_key": dedupe_key})
        if (why := signal_name_problem(name)) is not None:
            raise ParameterError([Problem(why, Location(field="name"))])
        problems = [
            Problem(f"signal parameter {key!r}: {why}", Location(field=f"params.{key}"))
            for key, value in params.items()
            if (why := json_problem(value)) is not None
        ]
        if problems:
            raise ParameterError(problems)
        record = SignalRecord(
            name=name,
            params=dict(params),
            at=time.time(),
            by=principal.name,
            dedupe_key=dedupe_key,
            scope=signal_scope(principal),
        )
        self.store.add_signal(record)
        self.auth.audit(principal, "signal.send", f"signal:{name}", {"id": record.id})
        return record


def signal_scope(principal: Principal) -> list[str] | None:
    """The owner groups a signal sent by ``principal`` may reach (None: every workflow)."""
    if principal.is_admin or ANY_GROUP in principal.groups:
        return None
    return sorted(principal.groups) if principal.has_role("operator") else []


def _checked_name(file_name: str) -> str:
    """``file_name`` if it is a bare workflow file name. Raises DefinitionError."""
    name = os.path.basename(file_name)
    if (
        name != file_name
        or not name.endswith(SOURCE_SUFFIXES)
        or name.startswith(".")
        or not SAFE_NAME.fullmatch(name)
    ):
        raise DefinitionError(
            Problem(
                "the file name must be a bare name ending in .py, .yaml or .yml",
                Location(readable_text(file_name)[:200], field="file_name"),
            )
        )
    return name

"""The registry store: workflows and their immutable versions, API tokens, the audit trail.

An extension of the SQL state store (same database, tables in
:mod:`kaon.store.schema_registry`). Every backend passes the shared contract suite in
``tests/contract/test_registry_store_contract.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kaon.errors import NotFoundError, StoreError
from kaon.store import schema_registry as r
from kaon.store.sql import SQLStore

_FIRST_TOKEN_LOCK = 0x6B746F6B  # "ktok": the advisory lock key of the first token


@dataclass(slots=True)
class WorkflowRecord:
    """A registered workflow: which version is active, who owns it, and its properties."""

    name: str
    active_version: int | None = None
    owner_group: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class VersionRecord:
    """One immutable version of a workflow: its definition's hash and source text."""

    workflow: str
    version: int
    definition_hash: str
    source: str = ""
    source_name: str = ""
    created_at: float = 0.0
    created_by: str = ""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored API token (its SHA-256, never the token itself)."""

    id: str
    name: str
    hashed: str
    role: str
    groups: list[str] = field(default_factory=list)
    created_at: float = 0.0
    last_used_at: float | None = None
    revoked_at: float | None = None
    expires_at: float | None = None  # None: never


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The first answer to a request sent with an ``Idempotency-Key`` (status 0 while the
    first request is still being handled, :data:`IDEMPOTENCY_RELEASED` when it failed
    unexpectedly; ``response`` then holds what it reserved)."""

    actor: str
    key: str
    request_hash: str
    status: int
    response: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


IDEMPOTENCY_RELEASED = -1
"""The status of a reserved key whose request failed unexpectedly: the next request with
it takes the reservation over at once (not after the abandon delay)."""

AUDIT_TOKEN_ID = "token_id"
"""The key of an audit entry's ``data`` that holds the id of the token that acted (its
``actor`` is the token's name, and names are not unique)."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who did what to which target, when (``data[AUDIT_TOKEN_ID]``: by which token)."""

    at: float
    actor: str
    action: str
    target: str
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


class RegistryStore(ABC):
    """Where workflows, versions, tokens and the audit trail live.

    Reads of a missing workflow or version raise :class:`~kaon.errors.NotFoundError`; database
    failures raise :class:`~kaon.errors.StoreError`. Safe to call from several threads.
    """

    # -- workflows and versions ----------------------------------------------------------

    @abstractmethod
    def add_version(
        self,
        record: VersionRecord,
        *,
        activate: bool,
        owner_group: str | None = None,
    ) -> tuple[VersionRecord, bool]:
        """Register ``record``'s definition as the workflow's next version, atomically.

        The workflow row is created on first push (with ``owner_group``). If a version of the
        workflow already has the same ``definition_hash``, nothing is written and that
        version is returned with ``False``; otherwise the new version (numbered one above the
        highest, ignoring ``record.version``) with ``True``. ``activate`` makes a new version
        the active one; the first version is always activated.
        """

    @abstractmethod
    def get_workflow(self, name: str) -> WorkflowRecord:
        """The workflow called ``name``. Raises NotFoundError."""

    @abstractmethod
    def list_workflows(
        self, *, limit: int = 100, offset: int = 0, after: str | None = None
    ) -> list[WorkflowRecord]:
        """Workflows by name: ``limit`` from ``offset``, of those named after ``after``."""

    @abstractmethod
    def active_versions(self) -> list[tuple[WorkflowRecord, VersionRecord]]:
        """Every workflow with an active version, with that version, by name (one read)."""

    @abstractmethod
    def signature(self) -> tuple[object, ...]:
        """A cheap value that changes whenever a workflow is added or changed (a version
        pushed, activated or deactivated, its properties or group set): a reader of
        :meth:`active_versions` re-reads only when it differs."""

    @abstractmethod
    def versions(
        self, workflow: str, *, before: int | None = None, limit: int | None = None
    ) -> list[VersionRecord]:
        """A workflow's versions without their source text, oldest first: the newest
        ``limit`` (every one when None) of those below version ``before`` (all when None).
        Raises NotFoundError for an unknown workflow."""

    @abstractmethod
    def version_of_hash(self, workflow: str, definition_hash: str) -> int | None:
        """The oldest version of ``workflow`` whose definition has this hash, if any."""

    @abstractmethod
    def get_version(self, workflow: str, version: int) -> VersionRecord:
        """One version. Raises NotFoundError."""

    @abstractmethod
    def set_active(self, workflow: str, version: int | None, now: float) -> WorkflowRecord:
        """Make ``version`` active (``None``: deactivate). Raises NotFoundError for an
        unknown workflow or version."""

    @abstractmethod
    def update_workflow(
        self,
        workflow: str,
        now: float,
        *,
        properties: dict[str, Any] | None = None,
        property_changes: Mapping[str, Any] | None = None,
        owner_group: str | None = None,
        clear_owner_group: bool = False,
    ) -> WorkflowRecord:
        """Replace the properties, or merge ``property_changes`` into them (a ``None`` value
        removes its key) in the same transaction as the write, so that changes of other keys
        made at the same time are kept; and/or set (or clear) the owner group. No new
        version. Raises NotFoundError."""

    # -- tokens --------------------------------------------------------------------------

    @abstractmethod
    def add_token(self, record: TokenRecord) -> None:
        """Store a new token."""

    @abstractmethod
    def add_first_token(self, record: TokenRecord) -> bool:
        """Store ``record`` only if no token exists yet (checked and stored in one
        transaction, serialised with every other first token: replicas starting at once on
        an empty database make one); True when stored."""

    @abstractmethod
    def token_by_hash(self, hashed: str) -> TokenRecord | None:
        """The token whose hash is ``hashed``, if any (revoked ones too)."""

    @abstractmethod
    def token(self, token_id: str) -> TokenRecord | None:
        """The token ``token_id``, if any (revoked ones too): one row by its key."""

    @abstractmethod
    def list_tokens(
        self, *, after: tuple[float, str] | None = None, limit: int | None = None
    ) -> list[TokenRecord]:
        """Tokens, oldest first: the first ``limit`` (None: all) after the keyset ``after``
        (``created_at``, ``id``)."""

    @abstractmethod
    def touch_token(self, token_id: str, now: float) -> None:
        """Record that the token was used at ``now``."""

    @abstractmethod
    def revoke_token(self, token_id: str, now: float) -> float | None:
        """Revoke a token at ``now``; returns when it was revoked: ``now``, or the time of
        its first revocation, which a second one keeps; None when there is no such token."""

    @abstractmethod
    def count_tokens(self) -> int:
        """How many tokens exist (revoked ones included)."""

    @abstractmethod
    def rotate_token(self, token_id: str, hashed: str, expires_at: float | None) -> bool:
        """Give a live token a new secret (its hash) and expiry; False when there is no
        such unrevoked token. The old secret stops working at once."""

    # -- idempotency keys ----------------------------------------------------------------

    @abstractmethod
    def idempotency(self, actor: str, key: str) -> IdempotencyRecord | None:
        """The record of ``actor``'s ``key``, if any."""

    @abstractmethod
    def reserve_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert ``record`` unless the actor's key exists; True when inserted."""

    @abstractmethod
    def finish_idempotency(
        self, actor: str, key: str, status: int, response: dict[str, Any]
    ) -> None:
        """Record the answer of a reserved key."""

    @abstractmethod
    def release_idempotency(self, actor: str, key: str) -> None:
        """Mark a reserved key (not answered) as released (:data:`IDEMPOTENCY_RELEASED`):
        its request failed unexpectedly, and the reservation goes to the next request."""

    @abstractmethod
    def retake_idempotency(self, actor: str, key: str, seen: float, now: float) -> bool:
        """Reserve again at ``now`` a key not answered (released, or abandoned by a request
        that died) that was reserved at ``seen`` when read; True for the one caller that did
        (of concurrent takers, the others get False)."""

    @abstractmethod
    def drop_idempotency(self, actor: str, key: str, *, before: float | None = None) -> int:
        """Delete ``actor``'s ``key`` (with ``before``: every key created before it, of
        every actor, and ``actor``/``key`` are ignored); how many were deleted."""

    # -- code bundles --------------------------------------------------------------------

    @abstractmethod
    def put_bundle(self, folder: str, files: dict[str, str], at: float) -> None:
        """Keep a pushed bundle (``files``: name -> text) under its folder's name; a bundle
        already kept is left as it is (the name is its content's digest)."""

    @abstractmethod
    def get_bundle(self, folder: str) -> dict[str, str] | None:
        """The files of the bundle kept under ``folder``, or None."""

    # -- audit ---------------------------------------------------------------------------

    @abstractmethod
    def add_audit(self, record: AuditRecord) -> None:
        """Append to the audit trail."""

    @abstractmethod
    def audit(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        token_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Audit records with ids above ``after_id``, oldest first, optionally of one
        target, one actor (a token's name, not unique) and one token (its id)."""


class SQLRegistryStore(RegistryStore):
    """The registry on a :class:`SQLStore`'s database (SQLite or PostgreSQL)."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    # -- workflows and versions ----------------------------------------------------------

    def add_version(
        self,
        record: VersionRecord,
        *,
        activate: bool,
        owner_group: str | None = None,
    ) -> tuple[VersionRecord, bool]:
        """See :meth:`RegistryStore.add_version`."""
        w, v = r.workflows.c, r.workflow_versions.c
        with self.store.writing(f"pushing workflow {record.workflow}") as conn:
            workflow = self._lock_workflow(conn, record.workflow)
            if workflow is None:
                conn.execute(
                    sa.insert(r.workflows).values(
                        name=record.workflow,
                        active_version=None,
                        owner_group=owner_group,
                        properties={},
                        created_at=record.created_at,
                        updated_at=record.created_at,
                    )
                )
            same = conn.execute(
                sa.select(r.workflow_versions)
                .where(v.workflow == record.workflow, v.definition_hash == record.definition_hash)
                .order_by(v.version)
                .limit(1)
            ).first()
            if same is not None:
                return VersionRecord(**same._asdict()), False
            highest = conn.execute(
                sa.select(sa.func.max(v.version)).where(v.workflow == record.workflow)
            ).scalar()
            number = int(highest or 0) + 1
            created = VersionRecord(
                workflow=record.workflow,
                version=number,
                definition_hash=record.definition_hash,
                source=record.source,
                source_name=record.source_name,
                created_at=record.created_at,
                created_by=record.created_by,
            )
            conn.execute(sa.insert(r.workflow_versions).values(**_fields(created)))
            if activate or number == 1:
                conn.execute(
                    sa.update(r.workflows)
                    .where(w.name == record.workflow)
                    .values(active_version=number, updated_at=record.created_at)
                )
            return created, True

    def _lock_workflow(self, conn: Connection, name: str) -> WorkflowRecord | None:
        """Read the workflow row, locking it on PostgreSQL so concurrent pushes serialise."""
        stmt = sa.select(r.workflows).where(r.workflows.c.name == name)
        if self.store.dialect == "postgresql":
            # Serialise pushes of one name, whether or not its row exists yet.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(name))))
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        return None if row is None else _workflow(row)

    def get_workflow(self, name: str) -> WorkflowRecord:
        """See :meth:`RegistryStore.get_workflow`."""
        with self.store.reading() as conn:
            row = conn.execute(sa.select(r.workflows).where(r.workflows.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no workflow {name!r} in the registry (push it first)")
        return _workflow(row)

    def list_workflows(
        self, *, limit: int = 100, offset: int = 0, after: str | None = None
    ) -> list[WorkflowRecord]:
        """See :meth:`RegistryStore.list_workflows`."""
        stmt = sa.select(r.workflows).order_by(r.workflows.c.name).limit(limit).offset(offset)
        if after is not None:
            stmt = stmt.where(r.workflows.c.name > after)
        with self.store.reading() as conn:
            return [_workflow(row) for row in conn.execute(stmt)]

    def active_versions(self) -> list[tuple[WorkflowRecord, VersionRecord]]:
        """See :meth:`RegistryStore.active_versions`: one join, whatever the number."""
        w, v = r.workflows.c, r.workflow_versions.c
        version_columns = [c.label(f"v_{c.name}") for c in r.workflow_versions.c]
        stmt = (
            sa.select(r.workflows, *version_columns)
            .join(
                r.workflow_versions,
                sa.and_(v.workflow == w.name, v.version == w.active_version),
            )
            .order_by(w.name)
        )
        found: list[tuple[WorkflowRecord, VersionRecord]] = []
        with self.store.reading() as conn:
            for row in conn.execute(stmt):
                values = row._asdict()
                version = VersionRecord(
                    **{n: values.pop(f"v_{n}") for n in VersionRecord.__dataclass_fields__}
                )
                values["properties"] = values["properties"] or {}
                found.append((WorkflowRecord(**values), version))
        return found

    def signature(self) -> tuple[object, ...]:
        """See :meth:`RegistryStore.signature`: one aggregate over the workflows table."""
        w = r.workflows.c
        stmt = sa.select(
            sa.func.count(),
            sa.func.sum(w.updated_at),
            sa.func.sum(sa.func.coalesce(w.active_version, 0)),
        )
        with self.store.reading() as conn:
            return tuple(conn.execute(stmt).one())

    def versions(
        self, workflow: str, *, before: int | None = None, limit: int | None = None
    ) -> list[VersionRecord]:
        """See :meth:`RegistryStore.versions` (the primary key, newest first, then turned)."""
        v = r.workflow_versions.c
        columns = [c for c in r.workflow_versions.c if c.name != "source"]
        stmt = sa.select(*columns).where(v.workflow == workflow)
        if before is not None:
            stmt = stmt.where(v.version < before)
        stmt = stmt.order_by(v.version.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.store.reading() as conn:
            found = [VersionRecord(**row._asdict()) for row in conn.execute(stmt)]
        if not found:
            self.get_workflow(workflow)
        found.reverse()
        return found

    def version_of_hash(self, workflow: str, definition_hash: str) -> int | None:
        """See :meth:`RegistryStore.version_of_hash` (``ix_workflow_versions_hash``)."""
        v = r.workflow_versions.c
        stmt = sa.select(sa.func.min(v.version)).where(
            v.workflow == workflow, v.definition_hash == definition_hash
        )
        with self.store.reading() as conn:
            found = conn.execute(stmt).scalar_one_or_none()
        return None if found is None else int(found)

    def get_version(self, workflow: str, version: int) -> VersionRecord:
        """See :meth:`RegistryStore.get_version`."""
        v = r.workflow_versions.c
        stmt = sa.select(r.workflow_versions).where(v.workflow == workflow, v.version == version)
        with self.store.reading() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            self.get_workflow(workflow)
            raise NotFoundError(f"workflow {workflow!r} has no version {version}")
        return VersionRecord(**row._asdict())

    def set_active(self, workflow: str, version: int | None, now: float) -> WorkflowRecord:
        """See :meth:`RegistryStore.set_active`."""
        if version is not None:
            self.get_version(workflow, version)
        return self._update(workflow, {"active_version": version, "updated_at": now})

    def update_workflow(
        self,
        workflow: str,
        now: float,
        *,
        properties: dict[str, Any] | None = None,
        property_changes: Mapping[str, Any] | None = None,
        owner_group: str | None = None,
        clear_owner_group: bool = False,
    ) -> WorkflowRecord:
        """See :meth:`RegistryStore.update_workflow`."""
        values: dict[str, Any] = {"updated_at": now}
        if properties is not None:
            values["properties"] = properties
        if owner_group is not None or clear_owner_group:
            values["owner_group"] = owner_group
        return self._update(workflow, values, property_changes)

    def _update(
        self,
        workflow: str,
        values: dict[str, Any],
        property_changes: Mapping[str, Any] | None = None,
    ) -> WorkflowRecord:
        w = r.workflows.c
        with self.store.writing(f"updating workflow {workflow}") as conn:
            if property_changes is not None:
                # Read in the write's transaction (the row locked on PostgreSQL; SQLite has
                # one writer): a change read outside it lost every other one made meanwhile.
                current = self._lock_workflow(conn, workflow)
                if current is None:
                    raise NotFoundError(f"no workflow {workflow!r} in the registry (push it first)")
                merged = dict(values.get("properties", current.properties))
                for key, value in property_changes.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                values = {**values, "properties": merged}
            done = conn.execute(sa.update(r.workflows).where(w.name == workflow).values(**values))
            if done.rowcount != 1:
                raise NotFoundError(f"no workflow {workflow!r} in the registry (push it first)")
            row = conn.execute(sa.select(r.workflows).where(w.name == workflow)).one()
        return _workflow(row)

    # -- tokens --------------------------------------------------------------------------

    def add_token(self, record: TokenRecord) -> None:
        """See :meth:`RegistryStore.add_token`."""
        with self.store.writing("creating a token") as conn:
            conn.execute(sa.insert(r.tokens).values(**_fields(record)))

    def add_first_token(self, record: TokenRecord) -> bool:
        """See :meth:`RegistryStore.add_first_token` (SQLite: one writer at a time;
        PostgreSQL: a transaction-scoped advisory lock)."""
        with self.store.writing("creating the first token") as conn:
            if self.store.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_FIRST_TOKEN_LOCK)))
            count = conn.execute(sa.select(sa.func.count()).select_from(r.tokens)).scalar_one()
            if count:
                return False
            conn.execute(sa.insert(r.tokens).values(**_fields(record)))
        return True

    def token_by_hash(self, hashed: str) -> TokenRecord | None:
        """See :meth:`RegistryStore.token_by_hash`."""
        with self.store.reading() as conn:
            row = conn.execute(sa.select(r.tokens).where(r.tokens.c.hashed == hashed)).first()
        return None if row is None else _token(row)

    def token(self, token_id: str) -> TokenRecord | None:
        """See :meth:`RegistryStore.token`."""
        found = self.store.query(("token",), token_id=token_id)
        return _token_row(found[0]) if found else None

    def list_tokens(
        self, *, after: tuple[float, str] | None = None, limit: int | None = None
    ) -> list[TokenRecord]:
        """See :meth:`RegistryStore.list_tokens`."""
        key = ("tokens_page", after is not None, limit is not None)
        at, key_id = after if after is not None else (None, None)
        found = self.store.query(key, after_at=at, after_id=key_id, limit=limit)
        return [_token_row(row) for row in found]

    def touch_token(self, token_id: str, now: float) -> None:
        """See :meth:`RegistryStore.touch_token`."""
        stmt = sa.update(r.tokens).where(r.tokens.c.id == token_id).values(last_used_at=now)
        with self.store.writing("recording token use") as conn:
            conn.execute(stmt)

    def revoke_token(self, token_id: str, now: float) -> float | None:
        """See :meth:`RegistryStore.revoke_token`."""
        c = r.tokens.c
        stmt = sa.update(r.tokens).where(c.id == token_id, c.revoked_at.is_(None))
        with self.store.writing("revoking a token") as conn:
            conn.execute(stmt.values(revoked_at=now))
            found = conn.execute(sa.select(c.revoked_at).where(c.id == token_id)).first()
        return None if found is None else float(found.revoked_at)

    def count_tokens(self) -> int:
        """See :meth:`RegistryStore.count_tokens`."""
        with self.store.reading() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(r.tokens)).scalar_one())

    def rotate_token(self, token_id: str, hashed: str, expires_at: float | None) -> bool:
        """See :meth:`RegistryStore.rotate_token`."""
        c = r.tokens.c
        stmt = (
            sa.update(r.tokens)
            .where(c.id == token_id, c.revoked_at.is_(None))
            .values(hashed=hashed, expires_at=expires_at)
        )
        with self.store.writing("rotating a token") as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    # -- idempotency keys ----------------------------------------------------------------

    def idempotency(self, actor: str, key: str) -> IdempotencyRecord | None:
        """See :meth:`RegistryStore.idempotency`."""
        c = r.idempotency_keys.c
        stmt = sa.select(r.idempotency_keys).where(c.actor == actor, c.key == key)
        with self.store.reading() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return IdempotencyRecord(**{**row._asdict(), "response": row.response or {}})

    def reserve_idempotency(self, record: IdempotencyRecord) -> bool:
        """See :meth:`RegistryStore.reserve_idempotency`."""
        if self.idempotency(record.actor, record.key) is not None:
            return False
        try:
            with self.store.writing("reserving an idempotency key") as conn:
                conn.execute(sa.insert(r.idempotency_keys).values(**_fields(record)))
        except StoreError:
            if self.idempotency(record.actor, record.key) is not None:
                return False  # a concurrent request reserved it first
            raise
        return True

    def finish_idempotency(
        self, actor: str, key: str, status: int, response: dict[str, Any]
    ) -> None:
        """See :meth:`RegistryStore.finish_idempotency`."""
        c = r.idempotency_keys.c
        stmt = (
            sa.update(r.idempotency_keys)
            .where(c.actor == actor, c.key == key)
            .values(status=status, response=response)
        )
        with self.store.writing("recording an idempotent answer") as conn:
            conn.execute(stmt)

    def release_idempotency(self, actor: str, key: str) -> None:
        """See :meth:`RegistryStore.release_idempotency`."""
        from kaon.store._queries import construct

        params = {"b_actor": actor, "b_key": key, "released": IDEMPOTENCY_RELEASED}
        with self.store.writing("releasing an idempotency key") as conn:
            conn.execute(construct(("release_idempotency",)), params)

    def retake_idempotency(self, actor: str, key: str, seen: float, now: float) -> bool:
        """See :meth:`RegistryStore.retake_idempotency`."""
        from kaon.store._queries import construct

        params = {"b_actor": actor, "b_key": key, "seen": seen, "now": now}
        with self.store.writing("taking over an idempotency key") as conn:
            return int(conn.execute(construct(("retake_idempotency",)), params).rowcount) == 1

    def drop_idempotency(self, actor: str, key: str, *, before: float | None = None) -> int:
        """See :meth:`RegistryStore.drop_idempotency`."""
        c = r.idempotency_keys.c
        where = c.created_at < before if before is not None else (c.actor == actor) & (c.key == key)
        with self.store.writing("dropping idempotency keys") as conn:
            return int(conn.execute(sa.delete(r.idempotency_keys).where(where)).rowcount)

    # -- code bundles --------------------------------------------------------------------

    def put_bundle(self, folder: str, files: dict[str, str], at: float) -> None:
        """See :meth:`RegistryStore.put_bundle`."""
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self.store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(r.bundles).values(folder=folder, files=files, created_at=at)
        with self.store.writing(f"keeping bundle {folder}") as conn:  # two pushes may race
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["folder"]))

    def get_bundle(self, folder: str) -> dict[str, str] | None:
        """See :meth:`RegistryStore.get_bundle`."""
        b = r.bundles.c
        with self.store.reading() as conn:
            row = conn.execute(sa.select(b.files).where(b.folder == folder)).first()
        return None if row is None else {str(k): str(v) for k, v in dict(row[0]).items()}

    # -- audit ---------------------------------------------------------------------------

    def add_audit(self, record: AuditRecord) -> None:
        """See :meth:`RegistryStore.add_audit`."""
        values = _fields(record)
        values.pop("id")
        token_id = record.data.get(AUDIT_TOKEN_ID)
        values["token_id"] = token_id if isinstance(token_id, str) else None
        with self.store.writing("recording an audit entry") as conn:
            conn.execute(sa.insert(r.audit).values(**values))

    def audit(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        token_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """See :meth:`RegistryStore.audit` (one token's: ``ix_audit_token``)."""
        c = r.audit.c
        columns = [c.id, c.at, c.actor, c.action, c.target, c.data]
        stmt = sa.select(*columns).where(c.id > after_id)
        if target is not None:
            stmt = stmt.where(c.target == target)
        if actor is not None:
            stmt = stmt.where(c.actor == actor)
        if token_id is not None:
            stmt = stmt.where(c.token_id == token_id)
        stmt = stmt.order_by(c.id).limit(limit)
        with self.store.reading() as conn:
            rows = conn.execute(stmt)
            return [AuditRecord(**{**row._asdict(), "data": row.data or {}}) for row in rows]


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def _workflow(row: sa.Row[Any]) -> WorkflowRecord:
    values = row._asdict()
    values["properties"] = values["properties"] or {}
    return WorkflowRecord(**values)


def _token(row: sa.Row[Any]) -> TokenRecord:
    return _token_row(row._asdict())


def _token_row(values: dict[str, Any]) -> TokenRecord:
    """A token of a keyed read's row (:meth:`SQLStore.query`)."""
    return TokenRecord(**{**values, "groups": list(values["groups"] or [])})

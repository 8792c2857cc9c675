"""The trigger store: trigger state, firings, backfills and alert deliveries.

An extension of the SQL state store (same database, tables in
:mod:`kaon.store.schema_triggers`). Every backend passes the shared contract suite in
``tests/contract/test_trigger_store_contract.py``.

Exactly-once firing rests on :meth:`TriggerStore.claim_firing`: a firing row is unique per
(trigger, de-duplication key), so of two servers (or two passes) claiming the same cron slot
or signal, one wins. The claim names the run id to create; a claim whose run is missing
(a crash between the claim and the run) is repaired by the trigger service.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from kaon.errors import NotFoundError, StoreError
from kaon.store import schema_triggers as tt
from kaon.store.sql import SQLStore

# Firing statuses.
CLAIMED = "claimed"  # the run is not created yet
CREATED = "created"  # the run exists
FINISHED = "finished"  # the run is terminal (only tracked for backfills)
DROPPED = "dropped"  # nothing was created (e.g. the workflow's run was dropped)


@dataclass(slots=True)
class FiringRecord:
    """One firing of a trigger: the (trigger, key) pair and the run it creates."""

    trigger_id: str
    dedupe_key: str
    workflow: str
    run_id: str
    status: str = CLAIMED
    params: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    due_at: float = 0.0
    created_at: float = 0.0
    error: str | None = None  # why a dropped firing started no run
    id: int | None = None


@dataclass(slots=True)
class BackfillRecord:
    """A backfill: one run per schedule slot in ``[start_at, end_at]``, ``concurrency`` at a
    time. ``next_index`` is the first slot not yet claimed; ``params`` are fixed overrides,
    ``slot_params`` the trigger's per-slot parameter expressions (codec form)."""

    id: str
    workflow: str
    cron: str
    timezone: str
    start_at: float
    end_at: float
    concurrency: int
    total: int
    status: str = "running"
    params: dict[str, Any] = field(default_factory=dict)
    slot_params: dict[str, Any] = field(default_factory=dict)
    next_index: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    by: str = ""


@dataclass(slots=True)
class AlertDeliveryRecord:
    """One webhook delivery of an alert (unique per ``dedupe_key`` and ``url``)."""

    workflow: str
    kind: str
    dedupe_key: str
    url: str
    payload: dict[str, Any]
    run_id: str | None = None
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    response_code: int | None = None
    last_error: str | None = None
    created_at: float = 0.0
    delivered_at: float | None = None
    id: int | None = None


class TriggerStore(ABC):
    """Where the trigger service keeps its state. Safe to call from several threads.

    Reads of a missing backfill raise :class:`~kaon.errors.NotFoundError`; database
    failures raise :class:`~kaon.errors.StoreError`.
    """

    # -- state ---------------------------------------------------------------------------

    @abstractmethod
    def get_state(self, key: str) -> dict[str, Any] | None:
        """The JSON document stored under ``key``, if any."""

    @abstractmethod
    def put_state(self, key: str, value: dict[str, Any], now: float) -> None:
        """Store (insert or replace) the document under ``key``."""

    @abstractmethod
    def get_states(self, keys: Collection[str]) -> dict[str, dict[str, Any]]:
        """The documents stored under ``keys`` (those that exist), in one read."""

    @abstractmethod
    def init_states(self, values: Mapping[str, dict[str, Any]], now: float) -> None:
        """Store each document whose key has none yet (others are kept), in one write."""

    @abstractmethod
    def put_states(self, values: Mapping[str, dict[str, Any]], now: float) -> None:
        """Store (insert or replace) every document of ``values``, in one write."""

    # -- firings -------------------------------------------------------------------------

    @abstractmethod
    def claim_firing(self, record: FiringRecord) -> bool:
        """Insert ``record`` unless its (trigger_id, dedupe_key) was claimed before.

        Returns True when this call claimed it (and sets ``record.id``), False otherwise.
        Atomic: of concurrent claims of one key, exactly one returns True.
        """

    @abstractmethod
    def claim_firings(self, records: Sequence[FiringRecord]) -> list[FiringRecord]:
        """:meth:`claim_firing` for each record, in one write; returns those this call
        claimed (their ``id`` set), in order. A record is claimed with its own ``status``
        (``dropped`` records a firing that starts nothing)."""

    @abstractmethod
    def firings(
        self,
        *,
        trigger_id: str | None = None,
        statuses: Iterable[str] | None = None,
        limit: int = 1000,
    ) -> list[FiringRecord]:
        """Firings in claim order, optionally of one trigger and some statuses."""

    @abstractmethod
    def recent_firings(
        self,
        *,
        workflow: str | None = None,
        statuses: Iterable[str] | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[FiringRecord]:
        """The newest firings first (by id), optionally of one workflow and some statuses,
        with ids below ``before`` when given; at most ``limit``: the trigger history."""

    @abstractmethod
    def count_firings(self, *, trigger_id: str, statuses: Iterable[str]) -> int:
        """How many firings of ``trigger_id`` are in one of ``statuses`` (counted in the
        database)."""

    @abstractmethod
    def delete_expired_firings(self, *, before: float, limit: int) -> int:
        """Delete at most ``limit`` firings claimed before ``before``, oldest first, but
        never one a de-duplication still needs: a claimed firing (its run is not created
        yet), a data trigger's (its key is a path the next poll finds again), or a
        backfill's not marked finished (the backfill counts its open runs by them). Returns
        how many went. A cron or backfill slot, or a signal, whose firing went is not fired
        again: their cursors are past it; a signal trigger's ``dedupe`` expression or a
        sender's key de-duplicates only within the retention age."""

    @abstractmethod
    def set_firing_status(self, firing_id: int, status: str, *, error: str | None = None) -> None:
        """Change a firing's status (and its ``error``: why a dropped firing started no
        run). Raises NotFoundError for an unknown id."""

    @abstractmethod
    def set_firing_statuses(self, firing_ids: Collection[int], status: str) -> None:
        """Change the status of several firings in one write (unknown ids are ignored)."""

    # -- backfills -----------------------------------------------------------------------

    @abstractmethod
    def add_backfill(self, record: BackfillRecord) -> None:
        """Store a new backfill. Raises StoreError for a duplicate id."""

    @abstractmethod
    def get_backfill(self, backfill_id: str) -> BackfillRecord:
        """The backfill with this id. Raises NotFoundError."""

    @abstractmethod
    def list_backfills(
        self,
        *,
        workflow: str | None = None,
        statuses: Iterable[str] | None = None,
        before: tuple[float, str] | None = None,
        limit: int | None = None,
    ) -> list[BackfillRecord]:
        """Backfills, newest first, optionally of one workflow and some statuses: the first
        ``limit`` (None: all) below the keyset ``before`` (``created_at``, ``id``)."""

    @abstractmethod
    def update_backfill(self, backfill_id: str, now: float, **changes: Any) -> None:
        """Change fields of a backfill (``updated_at`` becomes ``now``). Raises
        NotFoundError."""

    @abstractmethod
    def advance_backfill(self, backfill_id: str, index: int, now: float) -> bool:
        """Atomically move the backfill's ``next_index`` from ``index`` to ``index + 1``;
        False (nothing written) when it is no longer ``index`` or the backfill is not
        running."""

    # -- alert deliveries ----------------------------------------------------------------

    @abstractmethod
    def add_delivery(self, record: AlertDeliveryRecord) -> bool:
        """Insert a delivery unless one with the same (dedupe_key, url) exists; True when
        inserted (and ``record.id`` set)."""

    @abstractmethod
    def due_deliveries(
        self, now: float, limit: int = 100, *, per_url: int | None = None
    ) -> list[AlertDeliveryRecord]:
        """Pending deliveries whose next attempt is due at ``now``, oldest first; with
        ``per_url``, only the oldest ``per_url`` of each URL, so that the many deliveries of
        one webhook (an alert storm to one that is down) never hide the others'."""

    @abstractmethod
    def claim_delivery(self, record: AlertDeliveryRecord, *, until: float) -> bool:
        """Take a due delivery for one attempt: atomically move its next attempt to
        ``until`` if it is still pending with the attempts and next attempt time read in
        ``record``; True (and ``record`` updated) when this caller took it. Several senders
        on one store (server replicas) thus never POST one attempt twice, and one that dies
        during it leaves the delivery to the others at ``until``."""

    @abstractmethod
    def update_delivery(self, delivery_id: int, **changes: Any) -> None:
        """Change fields of a delivery. Raises NotFoundError."""

    @abstractmethod
    def deliveries(
        self, *, run_id: str | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[AlertDeliveryRecord]:
        """Deliveries in creation order, optionally of one run or workflow."""


class SQLTriggerStore(TriggerStore):
    """The trigger store on a :class:`SQLStore`'s database (SQLite or PostgreSQL)."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def _insert_ignore(self, table: sa.Table, keys: list[str]) -> Any:
        if self.store.dialect == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing(index_elements=keys)
        return sqlite_dialect.insert(table).on_conflict_do_nothing(index_elements=keys)

    # -- state ---------------------------------------------------------------------------

    def get_state(self, key: str) -> dict[str, Any] | None:
        """See :meth:`TriggerStore.get_state`."""
        stmt = sa.select(tt.trigger_state.c.value).where(tt.trigger_state.c.key == key)
        with self.store.reading() as conn:
            value = conn.execute(stmt).scalar_one_or_none()
        return dict(value) if value is not None else None

    def put_state(self, key: str, value: dict[str, Any], now: float) -> None:
        """See :meth:`TriggerStore.put_state`."""
        table = tt.trigger_state
        if self.store.dialect == "postgresql":
            insert: Any = pg_dialect.insert(table)
        else:
            insert = sqlite_dialect.insert(table)
        stmt = insert.values(key=key, value=value, updated_at=now).on_conflict_do_update(
            index_elements=["key"], set_={"value": value, "updated_at": now}
        )
        with self.store.writing(f"saving trigger state {key}") as conn:
            conn.execute(stmt)

    def get_states(self, keys: Collection[str]) -> dict[str, dict[str, Any]]:
        """See :meth:`TriggerStore.get_states` (by chunks of 500 keys)."""
        c = tt.trigger_state.c
        wanted = sorted(set(keys))
        found: dict[str, dict[str, Any]] = {}
        with self.store.reading() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                stmt = sa.select(c.key, c.value).where(c.key.in_(chunk))
                found.update((key, dict(value)) for key, value in conn.execute(stmt))
        return found

    def init_states(self, values: Mapping[str, dict[str, Any]], now: float) -> None:
        """See :meth:`TriggerStore.init_states`."""
        if not values:
            return
        rows = [{"key": k, "value": v, "updated_at": now} for k, v in values.items()]
        stmt = self._insert_ignore(tt.trigger_state, ["key"])
        with self.store.writing(f"saving the state of {len(rows)} new trigger(s)") as conn:
            for start in range(0, len(rows), 500):
                conn.execute(stmt, rows[start : start + 500])

    def put_states(self, values: Mapping[str, dict[str, Any]], now: float) -> None:
        """See :meth:`TriggerStore.put_states`."""
        if not values:
            return
        table = tt.trigger_state
        insert: Any = (
            pg_dialect.insert(table)
            if self.store.dialect == "postgresql"
            else sqlite_dialect.insert(table)
        )
        stmt = insert.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at},
        )
        rows = [{"key": k, "value": v, "updated_at": now} for k, v in sorted(values.items())]
        with self.store.writing(f"saving the state of {len(rows)} trigger(s)") as conn:
            for start in range(0, len(rows), 500):
                conn.execute(stmt, rows[start : start + 500])

    def last_state_change(self, prefix: str) -> float | None:
        """When a state document whose key starts with ``prefix`` last changed (None: no
        such document)."""
        from kaon.store._queries import construct

        escaped = prefix.replace("/", "//").replace("%", "/%").replace("_", "/_")
        with self.store.reading() as conn:
            found = conn.execute(construct(("last_state_change",)), {"pattern": escaped + "%"})
            value = found.scalar()
        return None if value is None else float(value)

    # -- firings -------------------------------------------------------------------------

    def claim_firing(self, record: FiringRecord) -> bool:
        """See :meth:`TriggerStore.claim_firing`."""
        with self.store.writing(f"claiming firing {record.trigger_id}/{record.dedupe_key}") as c:
            return self._claim(c, record)

    def claim_firings(self, records: Sequence[FiringRecord]) -> list[FiringRecord]:
        """See :meth:`TriggerStore.claim_firings`."""
        if not records:
            return []
        with self.store.writing(f"claiming {len(records)} firing(s)") as conn:
            return [record for record in records if self._claim(conn, record)]

    def _claim(self, conn: Connection, record: FiringRecord) -> bool:
        values = _values(record, skip="id")
        stmt = self._insert_ignore(tt.trigger_firings, ["trigger_id", "dedupe_key"])
        result = conn.execute(stmt.values(**values).returning(tt.trigger_firings.c.id))
        found = result.scalar_one_or_none()
        if found is None:
            return False
        record.id = int(found)
        return True

    def firings(
        self,
        *,
        trigger_id: str | None = None,
        statuses: Iterable[str] | None = None,
        limit: int = 1000,
    ) -> list[FiringRecord]:
        """See :meth:`TriggerStore.firings`."""
        c = tt.trigger_firings.c
        stmt = sa.select(tt.trigger_firings)
        if trigger_id is not None:
            stmt = stmt.where(c.trigger_id == trigger_id)
        if statuses is not None:
            stmt = stmt.where(c.status.in_(list(statuses)))
        stmt = stmt.order_by(c.id).limit(limit)
        with self.store.reading() as conn:
            return [FiringRecord(**row._asdict()) for row in conn.execute(stmt)]

    def recent_firings(
        self,
        *,
        workflow: str | None = None,
        statuses: Iterable[str] | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[FiringRecord]:
        """See :meth:`TriggerStore.recent_firings` (``ix_trigger_firings_workflow`` for one
        workflow's)."""
        c = tt.trigger_firings.c
        stmt = sa.select(tt.trigger_firings)
        if workflow is not None:
            stmt = stmt.where(c.workflow == workflow)
        if statuses is not None:
            stmt = stmt.where(c.status.in_(list(statuses)))
        if before is not None:
            stmt = stmt.where(c.id < before)
        stmt = stmt.order_by(c.id.desc()).limit(limit)
        with self.store.reading() as conn:
            return [FiringRecord(**row._asdict()) for row in conn.execute(stmt)]

    def count_firings(self, *, trigger_id: str, statuses: Iterable[str]) -> int:
        """See :meth:`TriggerStore.count_firings`."""
        c = tt.trigger_firings.c
        stmt = (
            sa.select(sa.func.count())
            .select_from(tt.trigger_firings)
            .where(c.trigger_id == trigger_id, c.status.in_(list(statuses)))
        )
        with self.store.reading() as conn:
            return int(conn.execute(stmt).scalar_one())

    def delete_expired_firings(self, *, before: float, limit: int) -> int:
        """See :meth:`TriggerStore.delete_expired_firings` (``ix_trigger_firings_expiry``)."""
        from kaon.store._queries import construct

        statement = construct(("expired_firings",))
        with self.store.writing("deleting expired trigger firings") as conn:
            return int(conn.execute(statement, {"before": before, "limit": limit}).rowcount)

    def set_firing_status(self, firing_id: int, status: str, *, error: str | None = None) -> None:
        """See :meth:`TriggerStore.set_firing_status`."""
        c = tt.trigger_firings.c
        stmt = (
            sa.update(tt.trigger_firings)
            .where(c.id == firing_id)
            .values(status=status, error=error)
        )
        with self.store.writing("updating a firing") as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no trigger firing {firing_id}")

    def set_firing_statuses(self, firing_ids: Collection[int], status: str) -> None:
        """See :meth:`TriggerStore.set_firing_statuses`."""
        wanted = sorted(set(firing_ids))
        if not wanted:
            return
        c = tt.trigger_firings.c
        with self.store.writing(f"updating {len(wanted)} firing(s)") as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                conn.execute(
                    sa.update(tt.trigger_firings).where(c.id.in_(chunk)).values(status=status)
                )

    # -- backfills -----------------------------------------------------------------------

    def add_backfill(self, record: BackfillRecord) -> None:
        """See :meth:`TriggerStore.add_backfill`."""
        with self.store.writing(f"adding backfill {record.id}") as conn:
            conn.execute(sa.insert(tt.backfills).values(**_values(record)))

    def get_backfill(self, backfill_id: str) -> BackfillRecord:
        """See :meth:`TriggerStore.get_backfill`."""
        stmt = sa.select(tt.backfills).where(tt.backfills.c.id == backfill_id)
        with self.store.reading() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFoundError(f"no backfill {backfill_id!r}")
        return BackfillRecord(**row._asdict())

    def list_backfills(
        self,
        *,
        workflow: str | None = None,
        statuses: Iterable[str] | None = None,
        before: tuple[float, str] | None = None,
        limit: int | None = None,
    ) -> list[BackfillRecord]:
        """See :meth:`TriggerStore.list_backfills`."""
        c = tt.backfills.c
        stmt = sa.select(tt.backfills)
        if workflow is not None:
            stmt = stmt.where(c.workflow == workflow)
        if statuses is not None:
            stmt = stmt.where(c.status.in_(list(statuses)))
        if before is not None:
            at, key = before
            stmt = stmt.where(sa.or_(c.created_at < at, sa.and_(c.created_at == at, c.id < key)))
        stmt = stmt.order_by(c.created_at.desc(), c.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.store.reading() as conn:
            return [BackfillRecord(**row._asdict()) for row in conn.execute(stmt)]

    def update_backfill(self, backfill_id: str, now: float, **changes: Any) -> None:
        """See :meth:`TriggerStore.update_backfill`."""
        _check_fields(BackfillRecord, changes, "backfills")
        stmt = (
            sa.update(tt.backfills)
            .where(tt.backfills.c.id == backfill_id)
            .values(**changes, updated_at=now)
        )
        with self.store.writing(f"updating backfill {backfill_id}") as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no backfill {backfill_id!r}")

    def advance_backfill(self, backfill_id: str, index: int, now: float) -> bool:
        """See :meth:`TriggerStore.advance_backfill`."""
        c = tt.backfills.c
        advance = (
            sa.update(tt.backfills)
            .where(c.id == backfill_id, c.next_index == index, c.status == "running")
            .values(next_index=index + 1, updated_at=now)
        )
        with self.store.writing(f"advancing backfill {backfill_id}") as conn:
            return bool(conn.execute(advance).rowcount == 1)

    # -- alert deliveries ----------------------------------------------------------------

    def add_delivery(self, record: AlertDeliveryRecord) -> bool:
        """See :meth:`TriggerStore.add_delivery`."""
        table = tt.alert_deliveries
        stmt = self._insert_ignore(table, ["dedupe_key", "url"])
        stmt = stmt.values(**_values(record, skip="id")).returning(table.c.id)
        with self.store.writing(f"recording alert {record.dedupe_key}") as conn:
            found = conn.execute(stmt).scalar_one_or_none()
        if found is None:
            return False
        record.id = int(found)
        return True

    def due_deliveries(
        self, now: float, limit: int = 100, *, per_url: int | None = None
    ) -> list[AlertDeliveryRecord]:
        """See :meth:`TriggerStore.due_deliveries`."""
        c = tt.alert_deliveries.c
        due = (c.status == "pending", c.next_attempt_at <= now)
        if per_url is None:
            stmt = sa.select(tt.alert_deliveries).where(*due).order_by(c.next_attempt_at, c.id)
        else:
            rank = sa.func.row_number().over(partition_by=c.url, order_by=(c.next_attempt_at, c.id))
            ranked = sa.select(tt.alert_deliveries, rank.label("rank")).where(*due).subquery()
            columns = [ranked.c[column.name] for column in tt.alert_deliveries.c]
            stmt = (
                sa.select(*columns)
                .where(ranked.c.rank <= per_url)
                .order_by(ranked.c.next_attempt_at, ranked.c.id)
            )
        stmt = stmt.limit(limit)
        with self.store.reading() as conn:
            return [AlertDeliveryRecord(**row._asdict()) for row in conn.execute(stmt)]

    def claim_delivery(self, record: AlertDeliveryRecord, *, until: float) -> bool:
        """See :meth:`TriggerStore.claim_delivery`."""
        c = tt.alert_deliveries.c
        stmt = (
            sa.update(tt.alert_deliveries)
            .where(
                c.id == record.id,
                c.status == "pending",
                c.attempts == record.attempts,
                c.next_attempt_at == record.next_attempt_at,
            )
            .values(next_attempt_at=until)
        )
        with self.store.writing("claiming an alert delivery") as conn:
            taken = conn.execute(stmt).rowcount == 1
        if taken:
            record.next_attempt_at = until
        return bool(taken)

    def update_delivery(self, delivery_id: int, **changes: Any) -> None:
        """See :meth:`TriggerStore.update_delivery`."""
        _check_fields(AlertDeliveryRecord, changes, "alert_deliveries")
        c = tt.alert_deliveries.c
        stmt = sa.update(tt.alert_deliveries).where(c.id == delivery_id).values(**changes)
        with self.store.writing("updating an alert delivery") as conn:
            if conn.execute(stmt).rowcount != 1:
                raise NotFoundError(f"no alert delivery {delivery_id}")

    def deliveries(
        self, *, run_id: str | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[AlertDeliveryRecord]:
        """See :meth:`TriggerStore.deliveries`."""
        c = tt.alert_deliveries.c
        stmt = sa.select(tt.alert_deliveries)
        if run_id is not None:
            stmt = stmt.where(c.run_id == run_id)
        if workflow is not None:
            stmt = stmt.where(c.workflow == workflow)
        stmt = stmt.order_by(c.id).limit(limit)
        with self.store.reading() as conn:
            return [AlertDeliveryRecord(**row._asdict()) for row in conn.execute(stmt)]


def _values(record: Any, *, skip: str = "") -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record) if f.name != skip}


def _check_fields(record_type: type, changes: dict[str, Any], table: str) -> None:
    known = {f.name for f in fields(record_type)} - {"id"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise StoreError(f"cannot update {', '.join(unknown)} of table {table}: no such field")

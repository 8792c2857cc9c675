"""The SQL state store: SQLite (embedded, WAL) and PostgreSQL, on SQLAlchemy Core.

Writes are the hot path: the engine commits one :class:`~kaon.store.base.WriteBatch` per turn
of its loop. A batch is one transaction made of one ``executemany`` per table and per set of
updated columns. The statements are SQLAlchemy Core constructs compiled once per store for its
dialect; a write runs them on the driver's cursor directly, skipping SQLAlchemy's
per-execution machinery (several times the cost of the SQL itself on SQLite). Reads go through
SQLAlchemy normally. How connections begin transactions is in :mod:`kaon.store._engines`.
"""

from __future__ import annotations

import json
import operator
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from kaon.errors import FencingError, NotFoundError, StoreError, StoreUnavailableError
from kaon.model.status import RUN_ACTIVE, RunStatus, StepStatus
from kaon.store import pools as pool_sql
from kaon.store import schema as t
from kaon.store import schema_pools
from kaon.store._engines import WRITE_OPTION, create_store_engine
from kaon.store._writers import WriterQueue
from kaon.store.base import (
    ArtifactRecord,
    AttemptRecord,
    CacheEntryRecord,
    CommandRecord,
    DefinitionRecord,
    EventRecord,
    Fence,
    HoldClaim,
    HoldKey,
    LimitUsage,
    LogRecord,
    MetricRecord,
    PermitRecord,
    PoolRecord,
    RunRecord,
    SignalRecord,
    StateStore,
    StepRunRecord,
    WriteBatch,
)
from kaon.store.feed import FEED_LOCK_SQL, lock_feed
from kaon.store.migrations import upgrade_to_head

_PG_MIGRATION_LOCK = 0x6B616F6E  # "kaon": the advisory lock key that serialises migrations
_Row = dict[str, Any]


def _names(record_type: type, *, skip: str = "") -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type) if f.name != skip)


_DEFINITION_FIELDS = _names(DefinitionRecord)
_RUN_FIELDS = _names(RunRecord)
_STEP_RUN_FIELDS = _names(StepRunRecord)
_ATTEMPT_FIELDS = _names(AttemptRecord)
_LOG_FIELDS = _names(LogRecord, skip="id")
_METRIC_FIELDS = _names(MetricRecord, skip="id")
_EVENT_FIELDS = _names(EventRecord, skip="id")
_COMMAND_FIELDS = _names(CommandRecord, skip="id")
_CACHE_FIELDS = _names(CacheEntryRecord)
_ARTIFACT_FIELDS = _names(ArtifactRecord, skip="id")
_SIGNAL_FIELDS = _names(SignalRecord, skip="id")

_KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("id",),
    "step_runs": ("run_id", "id"),
    "attempts": ("run_id", "step_run_id", "number"),
    "commands": ("id",),
}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


_GETTERS: dict[tuple[str, ...], Callable[[Any], tuple[Any, ...]]] = {}


def _rows(records: Iterable[Any], names: tuple[str, ...]) -> list[_Row]:
    """Parameter rows of ``records`` (the fields ``names``, enums as their values)."""
    get = _GETTERS.get(names)
    if get is None:
        get = _GETTERS[names] = operator.attrgetter(*names)  # a tuple: names has 2 or more
    has_status = "status" in names
    rows = []
    for record in records:
        row = dict(zip(names, get(record), strict=True))
        if has_status:
            status = row["status"]
            if isinstance(status, Enum):
                row["status"] = status.value
        rows.append(row)
    return rows


_encode_json = json.JSONEncoder(allow_nan=False).encode


def _json_text(value: Any) -> str | None:
    """A JSON document as SQLite stores it (SQL NULL for None): what SQLAlchemy's JSON bind
    processor makes, without its per-value layers (the write path's largest Python cost)."""
    return None if value is None else _encode_json(value)


# -- the store ---------------------------------------------------------------------------------


class SQLStore(StateStore):
    """A :class:`StateStore` on SQLite or PostgreSQL.

    Opening migrates the database to the schema head (see :mod:`kaon.store.migrations`).
    Raises :class:`ConfigurationError` for a bad URL, :class:`SchemaVersionError` for a
    database from a newer Kaon, and :class:`StoreError` when the database cannot be opened.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self._engine, in_memory = create_store_engine(url, create=create)
        # The write path never pings a connection before use (a round trip per transaction
        # on PostgreSQL); a dead one is discarded and the write retried by the engine.
        self._write_engine = (
            self._engine
            if in_memory or self._engine.dialect.name == "sqlite"
            else create_store_engine(url, pre_ping=False)[0]
        )
        self._where = self._engine.url.render_as_string(hide_password=True)
        self._writer = self._engine.execution_options(**{WRITE_OPTION: True})
        # One shared connection for ``sqlite://``: threads must take turns on it.
        self._lock: threading.RLock | None = threading.RLock() if in_memory else None
        database = self._engine.url.database
        file_sqlite = self._engine.dialect.name == "sqlite" and not in_memory and database
        # Writers of a SQLite file take turns on an OS lock, not SQLite's busy handler.
        self._queue = WriterQueue.of(database) if file_sqlite and database else None
        # The write path's own connection, kept out of the pool between writes (checking one
        # out and back in costs more than a chain step's SQL on SQLite); a writer that finds
        # it busy takes one from the pool.
        self._pinned: Any = None
        self._pin_lock = threading.Lock()
        dialect = self._engine.dialect.name
        self._sqlite = dialect == "sqlite"
        self._dbapi: Any = self._engine.dialect.loaded_dbapi
        self._check_rowcount = bool(self._engine.dialect.supports_sane_multi_rowcount)
        self._inserts = _insert_statements(dialect)
        self._statements: dict[tuple[Any, ...], _Compiled] = {}
        self._db_now = db_clock(dialect)
        self._fence_sql = _Compiled.of(_fence_statement(self._db_now), self._engine.dialect)
        self._release_sql: _Compiled | None = None
        try:
            self._migrate(dialect, create=create or in_memory)
        except BaseException:
            self._engine.dispose()
            raise

    # -- for extensions of the store (registry, triggers) ---------------------------------

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads, shared with the store's own (errors become StoreError)."""
        with self._wrap("reading"), self._reading() as conn:
            yield conn

    @contextmanager
    def writing(self, doing: str = "writing") -> Iterator[Connection]:
        """A connection in a write transaction, committed on success (one writer at a time
        on SQLite); database errors become StoreError naming ``doing``."""
        with self._wrap(doing), self._write_guard(), self._writer.begin() as conn:
            yield conn

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self._engine.dialect.name)

    def _migrate(self, dialect: str, *, create: bool) -> None:
        with self._wrap("opening the store"), self._write_guard(), self._writer.begin() as conn:
            if dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            upgrade_to_head(conn, self._where, create=create)

    def __repr__(self) -> str:
        return f"SQLStore({self._where!r})"

    # -- plumbing ------------------------------------------------------------------------

    def _guard(self) -> AbstractContextManager[Any]:
        return self._lock if self._lock is not None else nullcontext()

    def _write_guard(self) -> AbstractContextManager[Any]:
        """What a write transaction holds: the in-memory database's lock, or a SQLite
        file's write turn (see :mod:`kaon.store._writers`)."""
        if self._queue is not None:
            return self._queue.turn()
        return self._guard()

    @contextmanager
    def _wrap(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sa_exc.SQLAlchemyError as error:
            kind = StoreUnavailableError if _transient(error, self._dbapi) else StoreError
            raise kind(f"store {self._where}: {doing} failed: {error}") from error

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._wrap("reading"), self._guard(), self._engine.connect() as conn:
            yield conn

    def _require_run(self, conn: Connection, run_id: str) -> None:
        found = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first()
        if found is None:
            raise NotFoundError(f"no run {run_id!r} in store {self._where}")

    # -- writing -------------------------------------------------------------------------

    def write(self, batch: WriteBatch) -> None:
        """Commit everything in ``batch`` in one transaction, or nothing.

        A fenced batch (``batch.fence``) first renews the writer's leases with
        ``WHERE id = :r AND owner = :o AND lease_epoch = :e`` and checks the rows affected:
        a lost lease raises :class:`FencingError` naming the lost runs, and nothing is
        written. Raises :class:`StoreUnavailableError` for a transient failure (a dropped
        connection, a locked database) and :class:`StoreError` naming the table when a row
        is rejected (a duplicate key, an update of a row that does not exist, an unknown
        field, a value that is not JSON).
        """
        if not batch:
            return
        plan = self._plan(batch)  # encoded before the transaction: the lock is held briefly
        fence = batch.fence
        ids: list[str] = []
        if fence is not None:
            ids = sorted(fence.epochs)  # every run it names (see Fence)
            if ids:
                plan.insert(0, ("runs", self._fence_sql.sql, _fence_rows(fence, ids), len(ids)))
        table = "?"
        dbapi = self._dbapi
        try:
            with self._write_guard(), self._raw_transaction() as cursor:
                if self._sqlite:
                    counts = []
                    for step in plan:
                        table = step[0]  # named by an error
                        _execute(cursor, step[1], step[2])
                        counts.append(cursor.rowcount)
                else:
                    table = ", ".join(dict.fromkeys(step[0] for step in plan))
                    from kaon.store import _pg_write  # psycopg: an optional dependency

                    counts = _pg_write.write(cursor, plan)  # one round trip, committed
                if ids and fence is not None and counts[0] != len(ids):
                    self._fenced_out(cursor, fence, ids)
                for (table, _sql, _rows, expected), count in zip(plan, counts, strict=True):
                    if expected and self._check_rowcount and count != expected:
                        raise StoreError(
                            f"store {self._where}: update of {expected - count} "
                            f"missing row(s) in table {table}; nothing in the batch was written"
                        )
        except dbapi.IntegrityError as error:
            raise StoreError(
                f"store {self._where}: table {table} rejected a row (duplicate or missing "
                f"key); nothing in the batch was written: {error}"
            ) from error
        except (dbapi.Error, sa_exc.SQLAlchemyError) as error:
            kind = StoreUnavailableError if _transient(error, dbapi) else StoreError
            raise kind(
                f"store {self._where}: writing table {table} failed; nothing in the batch "
                f"was written: {error}"
            ) from error
        except (TypeError, ValueError) as error:  # a driver that encodes JSON late
            raise StoreError(
                f"cannot store a row of table {table}; nothing in the batch was written: {error}"
            ) from error

    def _fenced_out(self, cursor: Any, fence: Fence, ids: list[str]) -> None:
        """Raise FencingError naming the runs of ``ids`` whose lease the fence lost."""
        lost = self._lost_leases(cursor, fence, ids)
        raise FencingError(
            f"store {self._where}: engine {fence.owner} lost the lease on run(s) "
            f"{', '.join(sorted(lost))} (taken over by another engine); nothing in the batch "
            "was written",
            frozenset(lost),
        )

    def _lost_leases(self, cursor: Any, fence: Fence, ids: list[str]) -> set[str]:
        mark = ":p{}" if self._sqlite else "%(p{})s"
        marks = ", ".join(mark.format(i) for i in range(len(ids)))
        params = {f"p{i}": run_id for i, run_id in enumerate(ids)}
        cursor.execute(f"SELECT id, owner, lease_epoch FROM runs WHERE id IN ({marks})", params)
        held = {
            run_id
            for run_id, owner, epoch in cursor.fetchall()
            if owner == fence.owner and epoch == fence.epochs[run_id]
        }
        return set(ids) - held

    @contextmanager
    def _raw_transaction(self) -> Iterator[Any]:
        """A DBAPI cursor inside a write transaction, committed on success.

        The hot path skips SQLAlchemy's per-statement machinery: statements are compiled
        once by SQLAlchemy (:meth:`_compiled`) and run with the driver's ``executemany``.
        Connections are not pinged before use (a round trip per transaction on PostgreSQL):
        a connection found dead is discarded from the pool and the failure reported as
        :class:`StoreUnavailableError`, for the caller to retry.
        """
        pinned = self._lock is None and self._pin_lock.acquire(blocking=False)
        connection = (self._pinned if pinned else None) or self._write_engine.raw_connection()
        dead = False
        try:
            cursor = connection.cursor()
            try:
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                connection.commit()
            except BaseException as error:
                with suppress(Exception):  # keep the original error, not a failed rollback
                    connection.rollback()
                if isinstance(error, self._dbapi.Error) and _transient(error, self._dbapi):
                    dead = True
                    with suppress(Exception):
                        connection.invalidate()
                raise
            finally:
                with suppress(Exception):
                    cursor.close()
        finally:
            if pinned:
                self._pinned = None if dead else connection
                self._pin_lock.release()
            if not pinned or dead:
                connection.close()

    def _plan(self, batch: WriteBatch) -> list[tuple[str, str, list[_Row], int]]:
        """``(table, SQL, encoded rows, rows an update must match)`` in write order."""
        plan: list[tuple[str, str, list[_Row], int]] = []
        self._plan_inserts(
            plan,
            (
                ("definitions", batch.definitions, _DEFINITION_FIELDS),
                ("runs", batch.runs, _RUN_FIELDS),
                ("step_runs", batch.step_runs.values(), _STEP_RUN_FIELDS),
                ("attempts", batch.attempts.values(), _ATTEMPT_FIELDS),
            ),
        )
        for name, updates in (
            ("runs", batch.run_updates),
            ("step_runs", batch.step_run_updates),
            ("attempts", batch.attempt_updates),
            ("commands", {k: {"done_at": v} for k, v in batch.commands_done.items()}),
        ):
            if updates:
                for columns, rows in _update_groups(name, updates).items():
                    plan.append(self._encoded(name, ("update", columns), rows, len(rows)))
        self._plan_inserts(
            plan,
            (
                ("logs", batch.logs, _LOG_FIELDS),
                ("metrics", batch.metrics, _METRIC_FIELDS),
                ("commands", batch.commands, _COMMAND_FIELDS),
                ("cache_entries", batch.cache_entries, _CACHE_FIELDS),
                ("artifacts", batch.artifacts, _ARTIFACT_FIELDS),
            ),
        )
        if batch.holds_released:
            if self._release_sql is None:
                self._release_sql = _Compiled.of(pool_sql.RELEASE_ONE, self._engine.dialect)
            rows = [{"h_run": r, "h_path": s, "h_attempt": a} for r, s, a in batch.holds_released]
            plan.append(("holds", self._release_sql.sql, rows, 0))
        # The feed tables come last, after the feed lock: ids in commit order (kaon.store.feed).
        if batch.events or batch.signals:
            if not self._sqlite:
                plan.append(("feed lock", FEED_LOCK_SQL, [{}], 0))
            self._plan_inserts(
                plan,
                (
                    ("events", batch.events, _EVENT_FIELDS),
                    ("signals", batch.signals, _SIGNAL_FIELDS),
                ),
            )
        return plan

    def _plan_inserts(
        self,
        plan: list[tuple[str, str, list[_Row], int]],
        entries: Iterable[tuple[str, Collection[Any], tuple[str, ...]]],
    ) -> None:
        for name, records, names in entries:
            if records:
                plan.append(self._encoded(name, ("insert", names), _rows(records, names), 0))

    def _encoded(
        self, table: str, shape: tuple[str, Any], rows: list[_Row], expected: int
    ) -> tuple[str, str, list[_Row], int]:
        statement = self._compiled(table, shape)
        try:
            for name, process in statement.processors:
                for row in rows:
                    row[name] = process(row[name])
        except (TypeError, ValueError) as error:
            raise StoreError(f"cannot store a row of table {table}: {error}") from error
        return table, statement.sql, rows, expected

    def _compiled(self, table: str, shape: tuple[str, Any]) -> _Compiled:
        """The statement that inserts (``("insert", fields)``) or updates (``("update",
        columns)``) rows of ``table``, compiled for this database once."""
        key = (table, *shape)
        found = self._statements.get(key)
        if found is None:
            kind, columns = shape
            if kind == "insert":
                statement = self._inserts[table]
                found = _Compiled.of(statement, self._engine.dialect, list(columns))
            else:
                found = _Compiled.of(_update_statement(table, columns), self._engine.dialect)
            self._statements[key] = found
        return found

    # -- definitions and runs ------------------------------------------------------------

    def get_definition(self, definition_hash: str) -> DefinitionRecord:
        """The stored definition with this hash. Raises NotFoundError."""
        stmt = sa.select(t.definitions).where(t.definitions.c.hash == definition_hash)
        with self._reading() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFoundError(f"no workflow definition {definition_hash!r} in {self._where}")
        return DefinitionRecord(**row._asdict())

    def get_definitions(self, hashes: Collection[str]) -> dict[str, DefinitionRecord]:
        """See :meth:`StateStore.get_definitions` (by chunks of 500 hashes)."""
        wanted = sorted(set(hashes))
        found: dict[str, DefinitionRecord] = {}
        with self._reading() as conn:
            for start in range(0, len(wanted), 500):
                stmt = sa.select(t.definitions).where(
                    t.definitions.c.hash.in_(wanted[start : start + 500])
                )
                for row in conn.execute(stmt):
                    found[row.hash] = DefinitionRecord(**row._asdict())
        return found

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id. Raises NotFoundError."""
        with self._reading() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no run {run_id!r} in store {self._where}")
        return _run_record(row)

    def find_runs(self, prefix: str) -> list[str]:
        """Ids of runs starting with ``prefix``, in id order, at most 10."""
        stmt = (
            sa.select(t.runs.c.id)
            .where(t.runs.c.id.startswith(prefix, autoescape=True))
            .order_by(t.runs.c.id)
            .limit(10)
        )
        with self._reading() as conn:
            return list(conn.scalars(stmt))

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        statuses: Iterable[RunStatus] | None = None,
        limit: int = 50,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[RunRecord]:
        """Runs, newest first (ties by id, descending; or oldest first, ties by id), filtered
        by workflow and statuses."""
        stmt = sa.select(t.runs)
        if workflow is not None:
            stmt = stmt.where(t.runs.c.workflow == workflow)
        if statuses is not None:
            stmt = stmt.where(t.runs.c.status.in_([_plain(s) for s in statuses]))
        if oldest_first:
            stmt = stmt.order_by(t.runs.c.created_at, t.runs.c.id)
        else:
            stmt = stmt.order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc())
        stmt = stmt.limit(limit).offset(offset)
        with self._reading() as conn:
            return [_run_record(row) for row in conn.execute(stmt)]

    # -- step runs -----------------------------------------------------------------------

    def step_runs(
        self,
        run_id: str,
        *,
        parent_id: int | None = None,
        all_levels: bool = False,
        statuses: Iterable[StepStatus] | None = None,
    ) -> list[StepRunRecord]:
        """Step runs of a run ordered by id (see :meth:`StateStore.step_runs`)."""
        c = t.step_runs.c
        stmt = sa.select(t.step_runs).where(c.run_id == run_id)
        if not all_levels:
            stmt = stmt.where(
                c.parent_id.is_(None) if parent_id is None else c.parent_id == parent_id
            )
        if statuses is not None:
            stmt = stmt.where(c.status.in_([_plain(s) for s in statuses]))
        with self._reading() as conn:
            found = [_step_run_record(row) for row in conn.execute(stmt.order_by(c.id))]
            if not found:
                self._require_run(conn, run_id)
        return found

    def get_step_run(self, run_id: str, path: str) -> StepRunRecord:
        """The step run at ``path``. Raises NotFoundError."""
        c = t.step_runs.c
        stmt = sa.select(t.step_runs).where(c.run_id == run_id, c.path == path)
        with self._reading() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFoundError(f"no step run {path!r} in run {run_id!r}")
        return _step_run_record(row)

    def child_outputs(self, run_id: str, parent_id: int) -> list[tuple[int, dict[str, Any] | None]]:
        """``(index, outputs)`` of the frame rows under ``parent_id``, ordered by index."""
        c = t.step_runs.c
        stmt = (
            sa.select(c.index, c.outputs)
            .where(c.run_id == run_id, c.parent_id == parent_id, c.index.is_not(None))
            .order_by(c.index)
        )
        with self._reading() as conn:
            found = [(int(index), outputs) for index, outputs in conn.execute(stmt)]
            if not found:
                self._require_run(conn, run_id)
        return found

    def child_counts(self, run_id: str, parent_id: int) -> dict[StepStatus, int]:
        """How many children of ``parent_id`` are in each status (absent: none)."""
        c = t.step_runs.c
        stmt = (
            sa.select(c.status, sa.func.count())
            .where(c.run_id == run_id, c.parent_id == parent_id)
            .group_by(c.status)
        )
        with self._reading() as conn:
            found = {StepStatus(status): int(n) for status, n in conn.execute(stmt)}
            if not found:
                self._require_run(conn, run_id)
        return found

    def summary_step_runs(self, run_id: str) -> list[StepRunRecord]:
        """See :meth:`StateStore.summary_step_runs` (filtered in the database)."""
        c = t.step_runs.c
        well = [_plain(s) for s in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.SKIPPED)]
        stmt = (
            sa.select(t.step_runs)
            .where(c.run_id == run_id, sa.or_(~c.path.contains("["), c.status.not_in(well)))
            .order_by(c.id)
        )
        with self._reading() as conn:
            found = [_step_run_record(row) for row in conn.execute(stmt)]
            if not found:
                self._require_run(conn, run_id)
        return found

    def status_counts(self, run_id: str) -> dict[tuple[str, StepStatus], int]:
        """See :meth:`StateStore.status_counts` (counted in the database)."""
        c = t.step_runs.c
        stmt = (
            sa.select(c.kind, c.status, sa.func.count())
            .where(c.run_id == run_id)
            .group_by(c.kind, c.status)
        )
        with self._reading() as conn:
            return {(kind, StepStatus(status)): int(n) for kind, status, n in conn.execute(stmt)}

    def frame_counts(self, run_id: str) -> dict[int, dict[StepStatus, int]]:
        """See :meth:`StateStore.frame_counts` (counted in the database)."""
        c = t.step_runs.c
        stmt = (
            sa.select(c.parent_id, c.status, sa.func.count())
            .where(c.run_id == run_id, c.kind.in_(["item", "iteration"]))
            .group_by(c.parent_id, c.status)
        )
        counts: dict[int, dict[StepStatus, int]] = {}
        with self._reading() as conn:
            for parent_id, status, n in conn.execute(stmt):
                if parent_id is not None:
                    counts.setdefault(parent_id, {})[StepStatus(status)] = int(n)
        return counts

    def attempts_of(self, run_id: str, step_run_ids: Iterable[int]) -> list[AttemptRecord]:
        """See :meth:`StateStore.attempts_of` (selected in the database, 500 ids a query)."""
        c = t.attempts.c
        ids = sorted(set(step_run_ids))
        found: list[AttemptRecord] = []
        with self._reading() as conn:
            for start in range(0, len(ids), 500):
                stmt = (
                    sa.select(t.attempts)
                    .where(c.run_id == run_id, c.step_run_id.in_(ids[start : start + 500]))
                    .order_by(c.step_run_id, c.number)
                )
                found.extend(AttemptRecord(**row._asdict()) for row in conn.execute(stmt))
        return found

    def max_step_run_id(self, run_id: str) -> int:
        """The largest step run id used in a run (0 when none). Raises NotFoundError."""
        stmt = sa.select(sa.func.max(t.step_runs.c.id)).where(t.step_runs.c.run_id == run_id)
        with self._reading() as conn:
            largest = conn.scalar(stmt)
            if largest is None:
                self._require_run(conn, run_id)
        return int(largest or 0)

    def max_step_run_ids(self, run_ids: Sequence[str]) -> dict[str, int]:
        """The largest step run id of each run that has any (one grouped query per 500)."""
        c = t.step_runs.c
        found: dict[str, int] = {}
        with self._reading() as conn:
            for start in range(0, len(run_ids), 500):
                stmt = (
                    sa.select(c.run_id, sa.func.max(c.id))
                    .where(c.run_id.in_(list(run_ids[start : start + 500])))
                    .group_by(c.run_id)
                )
                found.update((str(run_id), int(largest)) for run_id, largest in conn.execute(stmt))
        return found

    def attempts(self, run_id: str, step_run_id: int | None = None) -> list[AttemptRecord]:
        """Attempts of one step run, or of the whole run, by step run id and number."""
        c = t.attempts.c
        stmt = sa.select(t.attempts).where(c.run_id == run_id)
        if step_run_id is not None:
            stmt = stmt.where(c.step_run_id == step_run_id)
        stmt = stmt.order_by(c.step_run_id, c.number)
        with self._reading() as conn:
            found = [AttemptRecord(**row._asdict()) for row in conn.execute(stmt)]
            if not found:
                self._require_run(conn, run_id)
        return found

    # -- logs, metrics, events -----------------------------------------------------------

    def logs(
        self,
        run_id: str,
        step_run_id: int | None = None,
        *,
        attempt: int | None = None,
        after_id: int = 0,
        limit: int = 10_000,
    ) -> list[LogRecord]:
        """Log lines with ids above ``after_id`` in the order written, at most ``limit``."""
        c = t.logs.c
        stmt = sa.select(t.logs).where(c.run_id == run_id, c.id > after_id)
        if step_run_id is not None:
            stmt = stmt.where(c.step_run_id == step_run_id)
        if attempt is not None:
            stmt = stmt.where(c.attempt == attempt)
        stmt = stmt.order_by(c.id).limit(limit)
        with self._reading() as conn:
            found = [LogRecord(**row._asdict()) for row in conn.execute(stmt)]
            if not found:
                self._require_run(conn, run_id)
        return found

    def metrics(self, run_id: str, step_run_id: int | None = None) -> list[MetricRecord]:
        """Metrics of a run (or one step run) in the order reported."""
        c = t.metrics.c
        stmt = sa.select(t.metrics).where(c.run_id == run_id)
        if step_run_id is not None:
            stmt = stmt.where(c.step_run_id == step_run_id)
        with self._reading() as conn:
            found = [MetricRecord(**row._asdict()) for row in conn.execute(stmt.order_by(c.id))]
            if not found:
                self._require_run(conn, run_id)
        return found

    def events(
        self, run_id: str | None = None, *, after_id: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events with ids above ``after_id``, oldest first, of one run or of all runs."""
        c = t.events.c
        stmt = sa.select(t.events).where(c.id > after_id)
        if run_id is not None:
            stmt = stmt.where(c.run_id == run_id)
        stmt = stmt.order_by(c.id).limit(limit)
        with self._reading() as conn:
            found = [_event_record(row) for row in conn.execute(stmt)]
            if not found and run_id is not None:
                self._require_run(conn, run_id)
        return found

    def step_events(
        self, run_id: str, step_run_id: int, *, kind: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest ``limit`` events of one step run (of ``kind``), newest first."""
        c = t.events.c
        stmt = sa.select(t.events).where(c.run_id == run_id, c.step_run_id == step_run_id)
        if kind is not None:
            stmt = stmt.where(c.kind == kind)
        with self._reading() as conn:
            return [
                _event_record(row) for row in conn.execute(stmt.order_by(c.id.desc()).limit(limit))
            ]

    # -- memoization and lineage -----------------------------------------------------------

    def get_cache_entry(self, key: str) -> CacheEntryRecord | None:
        """The cache entry with this key, if any."""
        stmt = sa.select(t.cache_entries).where(t.cache_entries.c.key == key)
        with self._reading() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else CacheEntryRecord(**row._asdict())

    def get_cache_entries(self, keys: Sequence[str]) -> dict[str, CacheEntryRecord]:
        """The cache entries among ``keys``: 500 keys per query, on the driver's cursor (the
        engine looks up whole windows of foreach items; SQLAlchemy rows cost too much here)."""
        found: dict[str, CacheEntryRecord] = {}
        unique_keys = list(dict.fromkeys(keys))
        mark = "?" if self._dbapi.paramstyle == "qmark" else "%s"
        columns = ", ".join(_CACHE_FIELDS)
        with self._wrap("reading cache entries"), self._guard():
            connection = self._engine.raw_connection()
            try:
                cursor = connection.cursor()
                for start in range(0, len(unique_keys), 500):
                    chunk = unique_keys[start : start + 500]
                    marks = ", ".join([mark] * len(chunk))
                    cursor.execute(
                        f"SELECT {columns} FROM cache_entries WHERE key IN ({marks})", chunk
                    )
                    for row in cursor.fetchall():
                        values = dict(zip(_CACHE_FIELDS, row, strict=True))
                        for name in ("outputs", "components"):
                            if isinstance(values[name], str | bytes):
                                values[name] = json.loads(values[name])
                        entry = CacheEntryRecord(**values)
                        found[entry.key] = entry
                cursor.close()
                connection.commit()
            finally:
                connection.close()
        return found

    def cache_entries(
        self, *, workflow: str | None = None, step_id: str | None = None, limit: int = 100
    ) -> list[CacheEntryRecord]:
        """Cache entries, newest first, optionally of one workflow and step id."""
        c = t.cache_entries.c
        stmt = sa.select(t.cache_entries)
        if workflow is not None:
            stmt = stmt.where(c.workflow == workflow)
        if step_id is not None:
            stmt = stmt.where(c.step_id == step_id)
        stmt = stmt.order_by(c.created_at.desc(), c.key).limit(limit)
        with self._reading() as conn:
            return [CacheEntryRecord(**row._asdict()) for row in conn.execute(stmt)]

    def delete_cache_entries(
        self, *, workflow: str | None = None, step_id: str | None = None
    ) -> int:
        """Invalidate cache entries (all of them without filters); returns how many."""
        c = t.cache_entries.c
        stmt = sa.delete(t.cache_entries)
        if workflow is not None:
            stmt = stmt.where(c.workflow == workflow)
        if step_id is not None:
            stmt = stmt.where(c.step_id == step_id)
        with (
            self._wrap("deleting cache entries"),
            self._write_guard(),
            self._writer.begin() as conn,
        ):
            return int(conn.execute(stmt).rowcount)

    def artifacts(
        self,
        *,
        run_id: str | None = None,
        hash: str | None = None,
        consumer_of: str | None = None,
        limit: int = 10_000,
    ) -> list[ArtifactRecord]:
        """Artifact lineage records in creation order."""
        c = t.artifacts.c
        stmt = sa.select(t.artifacts)
        if run_id is not None:
            stmt = stmt.where(c.run_id == run_id)
        if hash is not None:
            stmt = stmt.where(c.hash == hash)
        with self._reading() as conn:
            rows = [ArtifactRecord(**row._asdict()) for row in conn.execute(stmt.order_by(c.id))]
        if consumer_of is not None:
            rows = [r for r in rows if consumer_of in (r.inputs or [])]
        return rows[:limit]

    def referenced_hashes(self) -> set[str]:
        """Every blob hash a recorded artifact points to."""
        with self._reading() as conn:
            return set(conn.execute(sa.select(t.artifacts.c.hash).distinct()).scalars())

    # -- signals ---------------------------------------------------------------------------

    def signals(
        self,
        *,
        name: str | None = None,
        after_id: int = 0,
        since: float | None = None,
        limit: int = 1000,
    ) -> list[SignalRecord]:
        """Signals with ids above ``after_id``, oldest first."""
        c = t.signals.c
        stmt = sa.select(t.signals).where(c.id > after_id)
        if name is not None:
            stmt = stmt.where(c.name == name)
        if since is not None:
            stmt = stmt.where(c.at >= since)
        stmt = stmt.order_by(c.id).limit(limit)
        with self._reading() as conn:
            found = []
            for row in conn.execute(stmt):
                values = row._asdict()
                values["params"] = values["params"] or {}
                found.append(SignalRecord(**values))
            return found

    def add_signal(self, record: SignalRecord) -> SignalRecord:
        """Store one signal under the feed lock; returns it with its id."""
        values = {name: getattr(record, name) for name in _SIGNAL_FIELDS}
        with self.writing(f"storing signal {record.name}") as conn:
            lock_feed(conn)
            key = conn.execute(sa.insert(t.signals).values(**values)).inserted_primary_key
        assert key is not None
        record.id = int(key[0])
        return record

    def signal_cursor_since(self, since: float) -> int:
        """One below the first signal received at or after ``since`` (index ``ix_signals_at``);
        the newest id when there is none yet (later signals get larger ids)."""
        c = t.signals.c
        with self._reading() as conn:
            # Through the index on ``at`` (a bare ``min(id)`` would walk the ids from 1).
            recent = sa.select(c.id).where(c.at >= since).order_by(c.at).subquery()
            first = conn.scalar(sa.select(sa.func.min(recent.c.id)))
            if first is not None:
                return int(first) - 1
            return int(conn.scalar(sa.select(sa.func.max(c.id))) or 0)

    def last_event_id(self) -> int:
        """The largest committed event id (0 when none): the primary key's last entry."""
        with self._reading() as conn:
            return int(conn.scalar(sa.select(sa.func.max(t.events.c.id))) or 0)

    # -- commands and leases -------------------------------------------------------------

    def pending_commands_of(self, run_ids: Collection[str]) -> dict[str, list[CommandRecord]]:
        """Commands not yet done of the given runs: one query on the partial index of
        pending commands (``ix_commands_pending``), so its cost follows the commands waiting,
        not the number of runs held; commands of runs that no longer run are left out."""
        c, r = t.commands.c, t.runs.c
        wanted = set(run_ids)
        active = [s.value for s in RUN_ACTIVE]
        stmt = (
            sa.select(t.commands)
            .join(t.runs, r.id == c.run_id)
            .where(c.done_at.is_(None), r.status.in_(active))
            .order_by(c.id)
        )
        found: dict[str, list[CommandRecord]] = {}
        if not wanted:
            return found
        with self._reading() as conn:
            for row in conn.execute(stmt):
                if row.run_id in wanted:
                    found.setdefault(row.run_id, []).append(_command_record(row))
        return found

    def pending_commands(self, run_id: str) -> list[CommandRecord]:
        """Commands not yet done for a run, oldest first."""
        c = t.commands.c
        stmt = sa.select(t.commands).where(c.run_id == run_id, c.done_at.is_(None)).order_by(c.id)
        with self._reading() as conn:
            found = [_command_record(row) for row in conn.execute(stmt)]
            if not found:
                self._require_run(conn, run_id)
        return found

    def acquire_lease(
        self, run_id: str, owner: str, ttl: float, *, steal_from: str | None = None
    ) -> int | None:
        """Take over the lease on a run (see :meth:`StateStore.acquire_lease`): one
        conditional UPDATE on the database's clock that increments the lease epoch."""
        c = t.runs.c
        now = self._db_now
        free = [c.owner.is_(None), c.lease_until.is_(None), c.lease_until < now]
        if steal_from:
            free.append(c.owner == steal_from)
        stmt = (
            sa.update(t.runs)
            .where(c.id == run_id, sa.or_(*free))
            .values(owner=owner, lease_until=now + _ttl(ttl), lease_epoch=c.lease_epoch + 1)
        )
        with self._wrap("acquiring a lease"), self._write_guard(), self._writer.begin() as conn:
            if conn.execute(stmt).rowcount != 1:
                self._require_run(conn, run_id)
                return None
            epoch = conn.scalar(sa.select(c.lease_epoch).where(c.id == run_id))
        return int(epoch or 0)

    def acquire_leases(
        self, run_ids: Sequence[str], owner: str, ttl: float
    ) -> list[tuple[RunRecord, int]]:
        """Take over the free leases among ``run_ids`` (see :meth:`StateStore.acquire_leases`):
        one conditional ``UPDATE ... RETURNING`` per 500 runs, in one transaction."""
        if not run_ids:
            return []
        c = t.runs.c
        now = self._db_now
        free = sa.or_(c.owner.is_(None), c.lease_until.is_(None), c.lease_until < now)
        taken: list[tuple[RunRecord, int]] = []
        ids = list(dict.fromkeys(run_ids))
        with self._wrap("acquiring leases"), self._write_guard(), self._writer.begin() as conn:
            for start in range(0, len(ids), 500):
                stmt = (
                    sa.update(t.runs)
                    .where(
                        c.id.in_(ids[start : start + 500]),
                        c.status.in_([s.value for s in RUN_ACTIVE]),
                        free,
                    )
                    .values(owner=owner, lease_until=now + _ttl(ttl), lease_epoch=c.lease_epoch + 1)
                    .returning(*t.runs.c)
                )
                for row in conn.execute(stmt):
                    record = _run_record(row)
                    taken.append((record, int(row.lease_epoch or 0)))
        order = {run_id: n for n, run_id in enumerate(ids)}
        return sorted(taken, key=lambda pair: order[pair[0].id])

    def renew_leases(self, owner: str, epochs: Mapping[str, int], ttl: float) -> set[str]:
        """Extend the leases ``owner`` still holds at these epochs; returns the lost runs."""
        if not epochs:
            return set()
        c = t.runs.c
        lost: set[str] = set()
        ids = sorted(epochs)
        with self._wrap("renewing leases"), self._write_guard(), self._writer.begin() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found = sa.select(c.id, c.owner, c.lease_epoch).where(c.id.in_(chunk))
                if not self._sqlite:
                    found = found.with_for_update()
                held = [
                    run_id
                    for run_id, holder, epoch in conn.execute(found)
                    if holder == owner and epoch == epochs[run_id]
                ]
                lost.update(set(chunk) - set(held))
                if held:
                    conn.execute(
                        sa.update(t.runs)
                        .where(c.id.in_(held))
                        .values(lease_until=self._db_now + _ttl(ttl))
                    )
        return lost

    def release_lease(self, run_id: str, owner: str, epoch: int | None = None) -> None:
        """Give up the lease if ``owner`` holds it (at ``epoch``, when given)."""
        c = t.runs.c
        stmt = sa.update(t.runs).where(c.id == run_id, c.owner == owner)
        if epoch is not None:
            stmt = stmt.where(c.lease_epoch == epoch)
        stmt = stmt.values(owner=None, lease_until=None)
        with self._wrap("releasing a lease"), self._write_guard(), self._writer.begin() as conn:
            conn.execute(stmt)

    def claimable_runs(
        self,
        *,
        limit: int,
        after: tuple[float, str] | None = None,
        skip_workflows: Sequence[str] = (),
    ) -> list[RunRecord]:
        """Unheld pending or running runs, oldest first (see
        :meth:`StateStore.claimable_runs`)."""
        c = t.runs.c
        stmt = sa.select(t.runs).where(
            c.status.in_([s.value for s in RUN_ACTIVE]),
            sa.or_(c.owner.is_(None), c.lease_until.is_(None), c.lease_until < self._db_now),
        )
        if skip_workflows:
            stmt = stmt.where(c.workflow.not_in(list(skip_workflows)))
        if after is not None:
            at, run_id = after
            stmt = stmt.where(sa.or_(c.created_at > at, sa.and_(c.created_at == at, c.id > run_id)))
        stmt = stmt.order_by(c.created_at, c.id).limit(limit)
        if self._sqlite:
            with self._reading() as conn:
                return [_run_record(row) for row in conn.execute(stmt)]
        stmt = stmt.with_for_update(skip_locked=True)
        with self._wrap("claiming runs"), self._writer.begin() as conn:
            return [_run_record(row) for row in conn.execute(stmt)]

    # -- pools, permits and holds (SQL in kaon.store.pools) ----------------------------------

    def pools(self) -> list[PoolRecord]:
        """Every pool, by name."""
        with self._reading() as conn:
            return pool_sql.pools(conn)

    def set_pool(self, record: PoolRecord) -> None:
        """Create or replace a pool."""
        with self.writing("setting a pool") as conn:
            pool_sql.put(conn, schema_pools.pools, "name", asdict(record))

    def delete_pool(self, name: str) -> None:
        """Delete a pool and its holds. Raises NotFoundError."""
        with self.writing("deleting a pool") as conn:
            pool_sql.delete(conn, "pool", name)

    def permits(self) -> list[PermitRecord]:
        """Every tag permit, by tag."""
        with self._reading() as conn:
            return pool_sql.permits(conn)

    def set_permit(self, record: PermitRecord) -> None:
        """Create or replace a tag permit."""
        with self.writing("setting a permit") as conn:
            pool_sql.put(conn, schema_pools.permits, "tag", asdict(record))

    def delete_permit(self, tag: str) -> None:
        """Delete a tag permit and its holds. Raises NotFoundError."""
        with self.writing("deleting a permit") as conn:
            pool_sql.delete(conn, "tag", tag)

    def hold_usage(self) -> list[LimitUsage]:
        """What live holds take of each pool and permit."""
        with self._reading() as conn:
            return list(pool_sql.usage(conn, self._db_now).values())

    def pool_load(self, *, other_than: str | None = None) -> dict[tuple[str, str], int]:
        """Live pool holds per (pool, owner group), of other engines' runs when asked."""
        with self._reading() as conn:
            return pool_sql.pool_load(conn, self._db_now, other_than)

    def claim_holds(
        self,
        owner: str,
        claims: Sequence[HoldClaim],
        *,
        release: Sequence[HoldKey] = (),
        limit: int | None = None,
    ) -> list[bool]:
        """Release ended attempts' holds, then claim the holds of each claim that fits,
        under a lock on the limit rows."""
        if not claims:
            return []
        with self.writing("claiming pool slots and permits") as conn:
            if release:
                rows = [{"h_run": r, "h_path": p, "h_attempt": a} for r, p, a in release]
                conn.execute(pool_sql.RELEASE_ONE, rows)
            return pool_sql.claim(
                conn, self._db_now, time.time(), owner, claims, lock=not self._sqlite, limit=limit
            )

    def release_holds(self, run_id: str, keep: Collection[tuple[str, int]] = ()) -> None:
        """Delete the holds of a run but those of the attempts in ``keep``."""
        with self.writing("releasing holds") as conn:
            pool_sql.release(conn, run_id, keep)

    def close(self) -> None:
        """Close every connection (an in-memory database is gone after this)."""
        with self._pin_lock:
            pinned, self._pinned = self._pinned, None
        if pinned is not None:
            with suppress(Exception):
                pinned.close()
        self._engine.dispose()
        if self._write_engine is not self._engine:
            self._write_engine.dispose()


# -- statements and rows -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    """SQL compiled for one dialect, and the bind processors (JSON encoding) of its params."""

    sql: str
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    @classmethod
    def of(
        cls, statement: sa.ClauseElement, dialect: sa.Dialect, columns: list[str] | None = None
    ) -> _Compiled:
        compiled = statement.compile(dialect=dialect, column_keys=columns, for_executemany=True)
        assert isinstance(compiled, SQLCompiler)
        processors = []
        for name, bind in compiled.binds.items():
            if dialect.name == "sqlite" and isinstance(bind.type, t.Json.__class__):
                processors.append((name, _json_text))
                continue
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((name, process))
        return cls(compiled.string, tuple(processors))


def db_clock(dialect: str) -> sa.ColumnElement[float]:
    """The database's clock in epoch seconds: leases are timed by it, never by the hosts'
    clocks (which drift apart across replicas)."""
    if dialect == "sqlite":
        return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Double())
    return sa.literal_column("(extract(epoch from clock_timestamp())::float8)", sa.Double())


def _ttl(seconds: float) -> sa.BindParameter[float]:
    return sa.bindparam("lease_ttl", seconds, type_=sa.Double())


def _fence_statement(now: sa.ColumnElement[float]) -> sa.Update:
    """Renew a lease only while its holder still owns it at its epoch: the fence."""
    c = t.runs.c
    return (
        sa.update(t.runs)
        .where(
            c.id == sa.bindparam("f_id"),
            c.owner == sa.bindparam("f_owner"),
            c.lease_epoch == sa.bindparam("f_epoch"),
        )
        .values(lease_until=now + sa.bindparam("f_ttl", type_=sa.Double()))
    )


def _fence_rows(fence: Fence, ids: list[str]) -> list[_Row]:
    return [
        {"f_id": r, "f_owner": fence.owner, "f_epoch": fence.epochs[r], "f_ttl": fence.ttl}
        for r in ids
    ]


def _execute(cursor: Any, sql: str, rows: list[_Row]) -> None:
    if len(rows) == 1:
        cursor.execute(sql, rows[0])
    else:
        cursor.executemany(sql, rows)


def _transient(error: BaseException, dbapi: Any) -> bool:
    """Whether a database error is worth retrying: a lost connection, a busy database."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    if not isinstance(error, dbapi.OperationalError | dbapi.InterfaceError):
        return False
    if dbapi.__name__.startswith("sqlite3"):
        text = str(error).lower()
        return "locked" in text or "busy" in text
    return True


def _update_groups(
    name: str, updates: Mapping[Any, dict[str, Any]]
) -> dict[frozenset[str], list[_Row]]:
    """Updates of one table as parameter rows, grouped by the set of columns they change."""
    keys = _KEYS[name]
    groups: dict[frozenset[str], list[_Row]] = {}
    for key, changes in updates.items():
        if not changes:
            continue
        parts = key if isinstance(key, tuple) else (key,)
        row = {f"k_{k}": part for k, part in zip(keys, parts, strict=True)}
        for column, value in changes.items():
            row[f"v_{column}"] = value.value if isinstance(value, Enum) else value
        groups.setdefault(frozenset(changes), []).append(row)
    return groups


def _update_statement(name: str, columns: frozenset[str]) -> sa.Update:
    """``UPDATE name SET column = :v_column ... WHERE key = :k_key ...``."""
    table = t.metadata.tables[name]
    keys = _KEYS[name]
    for column in sorted(columns):
        if column not in table.c or column in keys:
            raise StoreError(f"cannot update field {column!r} of table {name}: no such field")
    return (
        sa.update(table)
        .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in keys))
        .values({c: sa.bindparam(f"v_{c}", type_=table.c[c].type) for c in sorted(columns)})
    )


def _insert_statements(dialect: str) -> dict[str, sa.Insert]:
    """Insert statements per table; definitions are content-addressed, so re-inserting one
    is a no-op."""
    statements: dict[str, sa.Insert] = {
        name: table.insert() for name, table in t.metadata.tables.items()
    }
    # Definitions are content-addressed and the first cache entry of a key wins: re-inserting
    # either is a no-op.
    for name in ("definitions", "cache_entries"):
        table = t.metadata.tables[name]
        if dialect == "sqlite":
            from sqlalchemy.dialects import sqlite as sqlite_dialect

            statements[name] = sqlite_dialect.insert(table).on_conflict_do_nothing()
        elif dialect == "postgresql":
            from sqlalchemy.dialects import postgresql as pg_dialect

            statements[name] = pg_dialect.insert(table).on_conflict_do_nothing()
    return statements


def _run_record(row: sa.Row[Any]) -> RunRecord:
    values = row._asdict()
    values["status"] = RunStatus(values["status"])
    values["params"] = values["params"] or {}
    values["labels"] = values["labels"] or {}
    return RunRecord(**values)


def _step_run_record(row: sa.Row[Any]) -> StepRunRecord:
    values = row._asdict()
    values["status"] = StepStatus(values["status"])
    return StepRunRecord(**values)


def _event_record(row: sa.Row[Any]) -> EventRecord:
    values = row._asdict()
    values["data"] = values["data"] or {}
    return EventRecord(**values)


def _command_record(row: sa.Row[Any]) -> CommandRecord:
    values = row._asdict()
    values["payload"] = values["payload"] or {}
    return CommandRecord(**values)

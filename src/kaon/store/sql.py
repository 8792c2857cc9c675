"""The SQL state store: SQLite (embedded, WAL) and PostgreSQL.

Every statement is one SQLAlchemy Core construct, named by a key in :mod:`kaon.store._queries`.
On PostgreSQL (and an in-memory SQLite database) the store executes the constructs through
SQLAlchemy. On a SQLite file it runs their text, compiled ahead of time, on the standard
library's ``sqlite3`` (:mod:`kaon.store._lite`): a local ``kaon run`` then never imports
SQLAlchemy, which costs more than the rest of its start-up. SQLAlchemy's engine is still
there for what needs it (migrating an old schema, the server's extension stores through
:meth:`SQLStore.reading` and :meth:`SQLStore.writing`), made on first use.

Writes are the hot path: the engine commits one :class:`~kaon.store.base.WriteBatch` per turn
of its loop. A batch is one transaction made of one ``executemany`` per table and per set of
updated columns, run on the driver's cursor directly (SQLAlchemy's per-execution machinery
costs several times the SQL itself on SQLite). How SQLAlchemy's connections begin
transactions is in :mod:`kaon.store._engines`.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from kaon.errors import (
    FencingError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    WriteOutcomeUnknownError,
)
from kaon.model.status import RunStatus, StepStatus
from kaon.store import _lite
from kaon.store._lite import Key, LiteDatabase, like_pattern
from kaon.store._pg_rows import DICTS, RECORDS, UPDATES, PgRows, pg_rows
from kaon.store._rows import (
    ARTIFACT_FIELDS,
    ARTIFACT_USE_FIELDS,
    ATTEMPT_FIELDS,
    CACHE_FIELDS,
    COMMAND_FIELDS,
    DEFINITION_FIELDS,
    EVENT_FIELDS,
    FIRST_COLUMNS,
    INSERTED,
    KEYS,
    LOG_FIELDS,
    METRIC_FIELDS,
    RUN_FIELDS,
    SIGNAL_FIELDS,
    STEP_RUN_COLUMNS,
    Compiled,
    Row,
    command_record,
    event_record,
    execute_rows,
    fence_rows,
    fold_first_attempts,
    held,
    json_processors,
    named_rows,
    plain,
    record_rows,
    run_record,
    sparse_groups,
    step_run_record,
    update_groups,
)
from kaon.store._writers import WriterQueue
from kaon.store.base import (
    ArtifactRecord,
    ArtifactUseRecord,
    AttemptRecord,
    CacheEntryRecord,
    ClaimKey,
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
    QueuePlace,
    RunRecord,
    SignalRecord,
    StateStore,
    StepRunRecord,
    WriteBatch,
)
from kaon.store.feed import lock_feed, locking_insert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from kaon.store._pg_statements import PgStatement

log = logging.getLogger(__name__)

_PG_MIGRATION_LOCK = 0x6B616F6E  # "kaon": the advisory lock key that serialises migrations

# A step of a write's plan: (table, statement, rows, rows an update must match). On SQLite the
# statement is its SQL and a row a dict of named parameters; on PostgreSQL the statement is a
# PgStatement and a row its parameters' values, in order (kaon.store._pg_rows).
_Step = tuple[str, Any, list[Any], int]


class _Transaction(Protocol):
    """Keyed statements inside one write transaction (see :meth:`SQLStore._transaction`)."""

    def rows(self, key: Key, params: Mapping[str, Any]) -> list[Row]: ...

    def execute(self, key: Key, params: Mapping[str, Any]) -> int: ...


class _LiteTransaction:
    def __init__(self, database: LiteDatabase, cursor: sqlite3.Cursor) -> None:
        self._database, self._cursor = database, cursor

    def rows(self, key: Key, params: Mapping[str, Any]) -> list[Row]:
        return self._database.rows(key, params, self._cursor)

    def execute(self, key: Key, params: Mapping[str, Any]) -> int:
        return self._database.execute(self._cursor, key, params)


class _SATransaction:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def rows(self, key: Key, params: Mapping[str, Any]) -> list[Row]:
        from kaon.store._queries import construct

        return [row._asdict() for row in self._conn.execute(construct(key), dict(params))]

    def execute(self, key: Key, params: Mapping[str, Any]) -> int:
        from kaon.store._queries import construct

        return int(self._conn.execute(construct(key), dict(params)).rowcount)


# -- the store ---------------------------------------------------------------------------------


class SQLStore(StateStore):
    """A :class:`StateStore` on SQLite or PostgreSQL.

    Opening migrates the database to the schema head (see :mod:`kaon.store.migrations`).
    Raises :class:`ConfigurationError` for a bad URL, :class:`SchemaVersionError` for a
    database from a newer Kaon, and :class:`StoreError` when the database cannot be opened.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self._statements: dict[tuple[Any, ...], Compiled] = {}
        self._pg_rows: dict[tuple[Any, ...], PgRows] = {}  # PostgreSQL's, by statement
        self._pg_locking: dict[str, PgStatement] = {}  # the feed's locking inserts, by table
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        # The write path's own connection (SQLAlchemy's pool), kept out of the pool between
        # writes (checking one out and back in costs more than a chain step's SQL on
        # SQLite); a writer that finds it busy takes one from the pool.
        self._pinned: Any = None
        self._pin_lock = threading.Lock()
        path = _lite.sqlite_path(url)
        self._lite: LiteDatabase | None = None
        if path is not None:  # a SQLite file: sqlite3 (kaon.store._lite)
            _lite.check_file(path, create=create)
            self._lite = LiteDatabase(path, _lite.shipped_catalogue())
            self._dialect = "sqlite"
            self._where = f"sqlite:///{path}"
            self._lock: threading.RLock | None = None
            # Writers of a SQLite file take turns on an OS lock, not SQLite's busy handler.
            self._queue: WriterQueue | None = WriterQueue.of(str(path))
            self._dbapi: Any = sqlite3
            self._check_rowcount = True
            try:
                if not self._open_lite(create=create):
                    self._migrate(create=create)
            except BaseException:
                self.close()
                raise
            return
        engine, in_memory = self._create_engine(create=create)
        self._dialect = str(engine.dialect.name)
        self._where = engine.url.render_as_string(hide_password=True)
        # One shared connection for ``sqlite://``: threads must take turns on it.
        self._lock = threading.RLock() if in_memory else None
        self._queue = None
        self._dbapi = engine.dialect.loaded_dbapi
        self._check_rowcount = bool(engine.dialect.supports_sane_multi_rowcount)
        try:
            self._migrate(create=create or in_memory)
        except BaseException:
            engine.dispose()
            raise

    # -- SQLAlchemy, made on first use for a SQLite file ------------------------------------

    def _create_engine(self, *, create: bool) -> tuple[Engine, bool]:
        from sqlalchemy import exc as sa_exc

        from kaon.store._engines import create_store_engine, leave_checkpoints_to

        engine, in_memory = create_store_engine(self.url, create=create)
        if self._lite is not None:
            leave_checkpoints_to(engine, self._lite)
        self._errors = (*self._errors, sa_exc.SQLAlchemyError)
        self.__dict__["_engine"] = engine  # the cached property's value from now on
        return engine, in_memory

    @functools.cached_property
    def _engine(self) -> Engine:
        """SQLAlchemy's engine of this store."""
        return self._create_engine(create=False)[0]

    @functools.cached_property
    def _write_engine(self) -> Engine:
        """The engine of the write path: on PostgreSQL one that never pings a connection
        before use (a round trip per transaction); a dead one is discarded and the write
        retried by the engine."""
        if self._dialect == "sqlite":
            return self._engine
        from sqlalchemy import event

        from kaon.store._engines import create_store_engine

        engine = create_store_engine(self.url, pre_ping=False)[0]
        event.listen(engine, "checkout", _refuse_lost)
        return engine

    @functools.cached_property
    def _pg_write(self) -> Callable[[Any, list[_Step]], list[int]]:
        """PostgreSQL's write of a plan (psycopg is an optional dependency: imported here)."""
        from kaon.store._pg_write import write

        return write

    @functools.cached_property
    def _writer(self) -> Engine:
        from kaon.store._engines import WRITE_OPTION

        return self._engine.execution_options(**{WRITE_OPTION: True})

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
        return self._dialect

    def _open_lite(self, *, create: bool) -> bool:
        """Open a SQLite file without SQLAlchemy: True when its schema is at the head (one
        read, no lock: nearly always), or when it was empty and is now created at the head
        from the rendered DDL. False when it needs SQLAlchemy (Alembic): an older revision,
        an unknown one."""
        from kaon.store import migrations

        assert self._lite is not None
        head = migrations.head_revision()
        with self._wrap("opening the store"):
            with self._lite.connection() as connection:
                if _lite.revisions(connection) == [head]:
                    return True
            with self._write_guard(), self._lite.transaction() as cursor:
                found = _lite.revisions(cursor.connection)
                if found == [head]:
                    return True  # another process created it meanwhile
                if found:
                    return False
                names = {str(n) for (n,) in cursor.execute(_TABLES_SQL)}
                has_version = _lite.VERSION_TABLE in names
                tables = sorted(names - {_lite.VERSION_TABLE})
                migrations.check_unstamped(tables, self._where, create=create)
                migrations.create_sqlite_at_head(cursor, head, has_version=has_version)
        return True

    def _migrate(self, *, create: bool) -> None:
        from kaon.store.migrations import upgrade_to_head

        if self._dialect == "postgresql":
            self._migrate_postgres(create=create)
            return
        with self._wrap("opening the store"), self._write_guard(), self._writer.begin() as conn:
            upgrade_to_head(conn, self._where, create=create)

    def _migrate_postgres(self, *, create: bool) -> None:
        """Migrate under a session-level advisory lock, one revision per transaction (see
        :mod:`kaon.store.migrations.online`): a table is locked while its own revision
        changes it, not until the whole upgrade ends, and an index is built concurrently."""
        import sqlalchemy as sa

        from kaon.store.migrations import upgrade_to_head

        lock = sa.select(sa.func.pg_advisory_lock(_PG_MIGRATION_LOCK))
        unlock = sa.select(sa.func.pg_advisory_unlock(_PG_MIGRATION_LOCK))
        with self._wrap("opening the store"), self._writer.connect() as conn:
            conn.execute(lock)
            conn.commit()
            try:
                upgrade_to_head(conn, self._where, create=create, per_revision=True)
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(unlock)
                conn.commit()

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
        except self._errors as error:
            kind = StoreUnavailableError if _transient(error, self._dbapi) else StoreError
            raise kind(f"store {self._where}: {doing} failed: {_cause(error)}") from error

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._wrap("reading"), self._guard(), self._engine.connect() as conn:
            yield conn

    def query(self, key: Key, **params: Any) -> list[Row]:
        """The rows of a keyed statement (:mod:`kaon.store._queries`) as dicts, outside a
        write transaction; for the store's extensions too (:mod:`kaon.store.reads`)."""
        if self._lite is not None:
            with self._wrap("reading"):
                return self._lite.rows(key, params)
        from kaon.store._queries import construct

        statement = construct(key)
        try:
            with self._reading() as conn:
                return [row._asdict() for row in conn.execute(statement, params)]
        except StoreUnavailableError as error:
            # A pooled connection the server closed (a restart, an idle timeout) is found dead
            # only when used, and SQLAlchemy drops it from the pool then: a read is run once
            # more, on a new connection (reads have no effect; a write is the caller's to retry).
            if not getattr(error.__cause__, "connection_invalidated", False):
                raise
        with self._reading() as conn:
            return [row._asdict() for row in conn.execute(statement, params)]

    def query_value(self, key: Key, **params: Any) -> Any:
        """The first column of the keyed statement's first row (None when no row)."""
        found = self.query(key, **params)
        return next(iter(found[0].values())) if found else None

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[_Transaction]:
        """A write transaction for keyed statements, committed on success."""
        with self._wrap(doing), self._write_guard():
            if self._lite is not None:
                with self._lite.transaction() as cursor:
                    yield _LiteTransaction(self._lite, cursor)
            else:
                with self._writer.begin() as conn:
                    yield _SATransaction(conn)

    @contextmanager
    def reads_seen(self) -> Iterator[list[str]]:
        """The SQL of every read this store (and its extensions) runs while inside, in
        order: what tests of a read's cost count."""
        seen: list[str] = []

        def observe(*args: Any) -> None:
            seen.append(str(args[2] if len(args) > 2 else args[0]))

        from sqlalchemy import event

        event.listen(self._engine, "before_cursor_execute", observe)
        if self._lite is not None:
            self._lite.observers.append(observe)
        try:
            yield seen
        finally:
            event.remove(self._engine, "before_cursor_execute", observe)
            if self._lite is not None:
                self._lite.observers.remove(observe)

    def require_run(self, run_id: str) -> None:
        """Raise NotFoundError unless the run exists."""
        if not self.query(("run_exists",), run_id=run_id):
            raise NotFoundError(f"no run {run_id!r} in store {self._where}")

    # -- writing -------------------------------------------------------------------------

    def write(self, batch: WriteBatch) -> None:
        """Commit everything in ``batch`` in one transaction, or nothing.

        A fenced batch (``batch.fence``) first checks the writer's leases with
        ``WHERE id = :r AND owner = :o AND lease_epoch = :e`` (the rows locked until the
        commit on PostgreSQL): a lost lease raises :class:`FencingError` naming the lost
        runs, and nothing is written. Raises :class:`StoreUnavailableError` for a transient
        failure (a dropped connection, a locked database) before the commit was sent,
        :class:`WriteOutcomeUnknownError` when PostgreSQL's connection was lost after it
        (the batch may be committed; a retry that then meets the batch's own rows returns
        as written), and :class:`StoreError` naming the
        table when a row is rejected (a duplicate key, an update of a row that does not
        exist, an unknown field, a value that is not JSON).
        """
        if not batch:
            return
        if batch.maybe_written and self._committed_before(batch):
            batch.maybe_written = False
            return
        plan = self._plan(batch)  # encoded before the transaction: the lock is held briefly
        fence = batch.fence
        ids: list[str] = []
        if fence is not None:
            ids = sorted(fence.epochs)  # every run it names (see Fence)
            if ids:
                fenced = fence_rows(fence, ids)
                plan.insert(0, self._keyed("runs", ("fence", self._dialect), fenced, len(ids)))
        table = ""  # the table being written, once the transaction has begun
        sent = False  # PostgreSQL's round trip began: an error names every table of the batch
        committing = False  # the commit was sent: a lost connection leaves its outcome unknown
        dbapi = self._dbapi
        try:
            lite = self._lite
            transaction = lite.transaction() if lite is not None else self._raw_transaction()
            with self._write_guard(), transaction as cursor:
                if self._dialect == "sqlite":
                    counts = []
                    if ids:  # the fence, a read: the runs still held, before any row
                        table = "runs"
                        counts.append(held(cursor, plan[0][1], plan[0][2]))
                        if fence is not None and counts[0] != len(ids):
                            self._fenced_out(cursor, fence, ids)
                    for step in plan[len(counts) :]:
                        table = step[0]  # named by an error
                        execute_rows(cursor, step[1], step[2])
                        counts.append(cursor.rowcount)
                else:
                    sent = committing = True
                    counts = self._pg_write(cursor, plan)  # one round trip, committed
                if ids and fence is not None and counts[0] != len(ids):
                    self._fenced_out(cursor, fence, ids)
                for (table, _sql, _rows, expected), count in zip(plan, counts, strict=True):
                    if expected and self._check_rowcount and count != expected:
                        raise StoreError(
                            f"store {self._where}: update of {expected - count} "
                            f"missing row(s) in table {table}; nothing in the batch was written"
                        )
        except dbapi.IntegrityError as error:
            if sent:  # named only now: a write that fails needs them, not every write
                table = _tables(plan)
            if batch.maybe_written and _duplicate(error):
                # Its rows are there: the try whose answer was lost had been committed.
                log.warning(
                    "store %s: a write whose answer was lost had been committed; not written again",
                    self._where,
                )
                batch.maybe_written = False
                return
            raise StoreError(
                f"store {self._where}: table {table} rejected a row (duplicate or missing "
                f"key); nothing in the batch was written: {_cause(error)}"
            ) from error
        except (dbapi.Error, *self._errors) as error:
            if sent:
                table = _tables(plan)
            if not _transient(error, dbapi):
                kind: type[StoreError] = StoreError
            elif committing:  # SQLite rolls a failed commit back; a lost server may not have
                batch.maybe_written = True
                raise WriteOutcomeUnknownError(
                    f"store {self._where}: the connection was lost while writing table "
                    f"{table}; the batch may or may not have been written: {_cause(error)}"
                ) from error
            else:
                kind = StoreUnavailableError
            # Before any table: the connection or the transaction's lock (another process
            # holding the database's write lock, a server refusing connections).
            doing = f"writing table {table}" if table else "beginning the write transaction"
            raise kind(
                f"store {self._where}: {doing} failed; nothing in the batch was written: "
                f"{_cause(error)}"
            ) from error
        except (TypeError, ValueError) as error:  # a driver that encodes JSON late
            if sent:
                table = _tables(plan)
            raise StoreError(
                f"cannot store a row of table {table}; nothing in the batch was written: {error}"
            ) from error

    def _committed_before(self, batch: WriteBatch) -> bool:
        """Whether a write of ``batch`` whose answer was lost had been committed, as far as
        its first event tells (a batch without one: False, and a retry that meets its rows
        tells, see :meth:`write`); a fenced batch sent again after its commit would find
        the leases it released gone, a batch of updates and events would add its events
        twice."""
        if not batch.events:
            return False
        event = batch.events[0]
        found = self.query(
            ("event_recorded",),
            run_id=event.run_id,
            kind=event.kind,
            at=event.at,
            step_run_id=event.step_run_id,
        )
        if found:
            log.warning(
                "store %s: a write whose answer was lost had been committed; not written again",
                self._where,
            )
        return bool(found)

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
        mark = ":p{}" if self._dialect == "sqlite" else "%(p{})s"
        marks = ", ".join(mark.format(i) for i in range(len(ids)))
        params = {f"p{i}": run_id for i, run_id in enumerate(ids)}
        sql = f"SELECT id, owner, lease_epoch FROM runs WHERE id IN ({marks})"
        held = {
            run_id
            for run_id, owner, epoch in cursor.execute(sql, params).fetchall()
            if owner == fence.owner and epoch == fence.epochs[run_id]
        }
        return set(ids) - held

    @contextmanager
    def _raw_transaction(self) -> Iterator[Any]:
        """A DBAPI cursor inside a write transaction, committed on success (on PostgreSQL the
        driver's connection, which :mod:`kaon.store._pg_write` sends the batch through).

        The hot path skips SQLAlchemy's per-statement machinery: statements are compiled
        once (:meth:`_compiled`) and run with the driver's ``executemany``. Connections are
        not pinged before use (a round trip per transaction on PostgreSQL): a connection
        found dead is discarded from the pool and the failure reported as
        :class:`StoreUnavailableError`, for the caller to retry.
        """
        if self._lite is not None:
            with self._lite.transaction() as lite_cursor:
                yield lite_cursor
            return
        pinned = self._lock is None and self._pin_lock.acquire(blocking=False)
        connection = self._pinned if pinned else None
        dead = False
        try:  # from here on the kept connection's lock is released whatever fails
            if connection is not None and self._dialect != "sqlite" and _lost(connection):
                with suppress(Exception):  # the database restarted since it was last used
                    connection.invalidate()
                self._pinned = connection = None
            # A database that refuses connections (down, recovering) fails here.
            connection = connection or self._write_engine.raw_connection()
            # PostgreSQL's batch goes to libpq through the driver's connection itself
            # (kaon.store._pg_write): no cursor is made for it.
            sqlite = self._dialect == "sqlite"
            cursor: Any = connection.cursor() if sqlite else connection.dbapi_connection
            try:
                if sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                if sqlite:  # PostgreSQL's batch was committed by its pipeline's Sync
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
                if sqlite:
                    with suppress(Exception):
                        cursor.close()
        finally:
            if pinned:
                self._pinned = None if dead else connection
                self._pin_lock.release()
            if connection is not None and (not pinned or dead):
                connection.close()

    def _plan(self, batch: WriteBatch) -> list[_Step]:
        """The batch's statements and encoded rows (see :data:`_Step`), in write order."""
        plan: list[_Step] = []
        step_runs, step_updates, retries, retry_updates = fold_first_attempts(batch)
        self._plan_inserts(
            plan,
            (
                ("definitions", batch.definitions, DEFINITION_FIELDS),
                ("runs", batch.runs, RUN_FIELDS),
            ),
        )
        if step_runs and self._dialect == "sqlite":
            self._plan_rows(plan, "step_runs", named_rows(STEP_RUN_COLUMNS, step_runs))
        elif step_runs:
            plan.append(self._pg_inserts("step_runs", STEP_RUN_COLUMNS, step_runs))
        self._plan_inserts(plan, (("attempts", retries, ATTEMPT_FIELDS),))
        for name, updates in (
            ("runs", batch.run_updates),
            ("step_runs", step_updates),
            ("attempts", retry_updates),
            ("commands", {k: {"done_at": v} for k, v in batch.commands_done.items()}),
        ):
            if updates and self._dialect == "sqlite":
                for columns, rows in update_groups(name, updates).items():
                    step = self._encoded(name, ("update", columns), rows, len(rows))
                    plan.append(_first_attempts_named(step, columns))
            elif updates:
                self._pg_updates(plan, name, updates)
        self._plan_inserts(
            plan,
            (
                ("logs", batch.logs, LOG_FIELDS),
                ("metrics", batch.metrics, METRIC_FIELDS),
                ("commands", batch.commands, COMMAND_FIELDS),
                ("cache_entries", batch.cache_entries, CACHE_FIELDS),
                ("artifacts", batch.artifacts, ARTIFACT_FIELDS),
                ("artifact_uses", batch.artifact_uses, ARTIFACT_USE_FIELDS),
            ),
        )
        if batch.resets_below:  # after the rows' own updates: the same values
            rows = [{"b_run": r, "b_root": i} for r, i in batch.resets_below]
            plan.append(self._keyed("step_runs", ("reset_below",), rows, 0))
        if batch.holds_released:
            rows = [{"h_run": r, "h_path": s, "h_attempt": a} for r, s, a in batch.holds_released]
            plan.append(self._keyed("holds", ("release_hold",), rows, 0))
        # The feed tables come last, under the feed lock: ids in commit order (kaon.store.feed).
        if batch.events or batch.signals:
            first = len(plan)
            self._plan_inserts(
                plan,
                (
                    ("events", batch.events, EVENT_FIELDS),
                    ("signals", batch.signals, SIGNAL_FIELDS),
                ),
            )
            if self._dialect != "sqlite":  # the first feed row's insert takes the lock
                table, statement, rows, _expected = plan[first]
                plan[first] = (table, self._locking_insert(table, statement), rows[:1], 0)
                if len(rows) > 1:
                    plan.insert(first + 1, (table, statement, rows[1:], 0))
        return plan

    def _plan_inserts(
        self,
        plan: list[_Step],
        entries: Iterable[tuple[str, Collection[Any], tuple[str, ...]]],
    ) -> None:
        for name, records, names in entries:
            if not records:
                continue
            if self._dialect == "sqlite":
                self._plan_rows(plan, name, record_rows(records, names))
            else:  # no dict per row (kaon.store._pg_rows)
                rows = self._pg_rows_of(name, ("insert", names), RECORDS)
                plan.append((name, rows.statement, rows.rows(name, records), 0))

    def _plan_rows(self, plan: list[_Step], name: str, rows: list[Row]) -> None:
        """SQLite: append the inserts of ``rows`` (each with every column of the table's
        :data:`INSERTED`) to ``plan``."""
        names = INSERTED[name]
        if self._lite is not None:
            for columns, group in sparse_groups(name, names, rows):
                plan.append(self._encoded(name, ("insert", columns), group, 0))
        else:
            plan.append(self._encoded(name, ("insert", names), rows, 0))

    def _pg_inserts(
        self, table: str, names: tuple[str, ...], values: Iterable[Sequence[Any]]
    ) -> _Step:
        """PostgreSQL: the insert of rows of ``values`` (each in the order of ``names``)."""
        rows = self._pg_rows_of(table, ("insert", names), names)
        return table, rows.statement, rows.rows(table, values), 0

    def _pg_updates(
        self, plan: list[_Step], name: str, updates: Mapping[Any, dict[str, Any]]
    ) -> None:
        """PostgreSQL: append the updates of table ``name`` (by key: the changes of its row)
        to ``plan``, one step per set of columns they change."""
        groups: dict[frozenset[str], list[tuple[dict[str, Any], tuple[Any, ...]]]] = {}
        for key, changes in updates.items():
            if changes:
                update = (changes, key if type(key) is tuple else (key,))
                groups.setdefault(frozenset(changes), []).append(update)
        for columns, group in groups.items():
            rows = self._pg_rows_of(name, ("update", columns), UPDATES)
            step = (name, rows.statement, rows.rows(name, group), len(group))
            plan.append(_first_attempts_named(step, columns))

    def _encoded(self, table: str, shape: tuple[str, Any], rows: list[Row], expected: int) -> _Step:
        """The step of ``rows`` (dicts of named parameters) of the statement of ``shape``
        (see :meth:`_compiled`), encoded for the database."""
        statement = self._compiled(table, shape)
        try:
            for name, process in statement.processors:
                for row in rows:
                    row[name] = process(row[name])
        except (TypeError, ValueError) as error:
            raise StoreError(f"cannot store a row of table {table}: {error}") from error
        return table, statement.sql, rows, expected

    def _keyed(self, table: str, key: Key, rows: list[Row], expected: int) -> _Step:
        """The step of ``rows`` (dicts of named parameters) of a keyed statement."""
        if self._dialect == "sqlite":
            return table, self._compiled_key(key).sql, rows, expected
        pg = self._pg_rows.get(key)
        if pg is None:
            compiled = self._compiled_key(key)
            pg = pg_rows(compiled.sql, compiled.processors, checked=bool(expected), source=DICTS)
            self._pg_rows[key] = pg
        return table, pg.statement, pg.rows(table, rows), expected

    def _pg_rows_of(
        self, table: str, shape: tuple[str, Any], source: str | tuple[str, ...]
    ) -> PgRows:
        """PostgreSQL's rows of the statement of ``shape`` (see :meth:`_compiled`; an update
        is checked) made from ``source`` (see :func:`~kaon.store._pg_rows.pg_rows`)."""
        key = (table, *shape)
        found = self._pg_rows.get(key)
        if found is None:
            compiled = self._compiled(table, shape)
            checked = shape[0] == "update"
            found = pg_rows(
                compiled.sql,
                compiled.processors,
                checked=checked,
                source=source,
                keys=KEYS.get(table, ()),
            )
            self._pg_rows[key] = found
        return found

    def _locking_insert(self, table: str, insert: PgStatement) -> PgStatement:
        """PostgreSQL: ``insert`` (a feed table's) made to take the feed lock first
        (:func:`~kaon.store.feed.locking_insert`), with the same parameters."""
        found = self._pg_locking.get(table)
        if found is None:
            from kaon.store._pg_statements import pg_statement

            sql = self._compiled(table, ("insert", INSERTED[table])).sql
            found = pg_statement(locking_insert(sql), False)
            if found.params != insert.params:
                raise StoreError(f"the locking insert of table {table} takes other parameters")
            self._pg_locking[table] = found
        return found

    def _compiled(self, table: str, shape: tuple[str, Any]) -> Compiled:
        """The statement that inserts (``("insert", fields)``) or updates (``("update",
        columns)``) rows of ``table``, compiled for this database once."""
        key = (table, *shape)
        found = self._statements.get(key)
        if found is not None:
            return found
        kind, columns = shape
        if kind == "insert" and self._lite is not None:
            statement = _lite.insert_statement(table, columns)
            found = Compiled(statement.sql, json_processors(statement.json_params))
        elif kind == "insert":
            found = self._compiled_key(("insert", self._dialect, table, *columns))
        else:
            known = _lite.table_columns(table)
            ordered = sorted(columns)
            for column in ordered:
                if column not in known or column in KEYS[table]:
                    raise StoreError(
                        f"cannot update field {column!r} of table {table}: no such field"
                    )
            if self._lite is not None:
                statement = _lite.update_statement(table, KEYS[table], ordered)
                found = Compiled(statement.sql, json_processors(statement.json_params))
            else:
                found = self._compiled_key(("update", table, KEYS[table], *ordered))
        self._statements[key] = found
        return found

    def _compiled_key(self, key: Key) -> Compiled:
        """A keyed statement's SQL for the driver and its parameters' encoders."""
        found = self._statements.get(key)
        if found is None:
            if self._lite is not None:
                statement = self._lite.statement(key)
                found = Compiled(statement.sql, json_processors(statement.json_params))
            else:
                from kaon.store._queries import compiled_for, construct

                sql, processors = compiled_for(construct(key), self._engine.dialect)
                found = Compiled(sql, processors)
            self._statements[key] = found
        return found

    # -- definitions and runs ------------------------------------------------------------

    def get_definition(self, definition_hash: str) -> DefinitionRecord:
        """The stored definition with this hash. Raises NotFoundError."""
        found = self.query(("definition",), hash=definition_hash)
        if not found:
            raise NotFoundError(f"no workflow definition {definition_hash!r} in {self._where}")
        return DefinitionRecord(**found[0])

    def get_definitions(self, hashes: Collection[str]) -> dict[str, DefinitionRecord]:
        """See :meth:`StateStore.get_definitions` (by chunks of 500 hashes)."""
        wanted = sorted(set(hashes))
        found: dict[str, DefinitionRecord] = {}
        for start in range(0, len(wanted), 500):
            for row in self.query(("definitions",), hashes=wanted[start : start + 500]):
                found[row["hash"]] = DefinitionRecord(**row)
        return found

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id. Raises NotFoundError."""
        found = self.query(("run",), run_id=run_id)
        if not found:
            raise NotFoundError(f"no run {run_id!r} in store {self._where}")
        return run_record(found[0])

    def find_runs(self, prefix: str) -> list[str]:
        """Ids of runs starting with ``prefix``, in id order, at most 10."""
        pattern = like_pattern(prefix)[1:]  # anchored at the start
        return [row["id"] for row in self.query(("find_runs",), prefix_pattern=pattern)]

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
        """Runs, newest first (ties by id, descending; or oldest first, ties by id), filtered
        by workflow and statuses; see :meth:`StateStore.list_runs` for ``after``."""
        key = ("list_runs", workflow is not None, statuses is not None, oldest_first)
        at, run_id = after if after is not None else (0.0, "")
        rows = self.query(
            (*key, after is not None),
            workflow=workflow,
            statuses=[plain(s) for s in statuses or ()],
            limit=limit,
            offset=offset,
            after_at=float(at),
            after_id=run_id,
        )
        return [run_record(row) for row in rows]

    def last_ended_run(
        self, workflow: str, status: RunStatus, *, after: float, until: float | None = None
    ) -> RunRecord | None:
        """See :meth:`StateStore.last_ended_run`."""
        bounds = {"after": float(after)} | ({} if until is None else {"until": float(until)})
        key = ("last_ended_run", until is not None)
        rows = self.query(key, workflow=workflow, status=plain(status), **bounds)
        return run_record(rows[0]) if rows else None

    def ping(self) -> None:
        """See :meth:`StateStore.ping`."""
        self.query(("ping",))

    def queue_place(self, run: RunRecord, limit: int) -> QueuePlace:
        """See :meth:`StateStore.queue_place`."""
        (row,) = self.query(
            ("queue_place",),
            workflow=run.workflow,
            run_id=run.id,
            priority=run.priority,
            created_at=run.created_at,
            limit=limit,
        )
        active, ahead = (min(int(row[name]), limit) for name in ("active", "ahead"))
        return QueuePlace(active=active, ahead=ahead)

    def active_runs(self, workflow: str, limit: int) -> list[RunRecord]:
        """See :meth:`StateStore.active_runs`."""
        rows = self.query(("active_runs",), workflow=workflow, limit=limit)
        return [run_record(row) for row in rows]

    def delete_runs(
        self,
        run_ids: Iterable[str],
        *,
        chunk_rows: int = 1000,
        by: str = "",
        by_token: str | None = None,
    ) -> int:
        """Delete finished runs and their rows in bounded transactions (see
        :meth:`StateStore.delete_runs` and :mod:`kaon.store.deletion`)."""
        from kaon.store import deletion

        return deletion.delete_runs(self, run_ids, chunk_rows=chunk_rows, by=by, by_token=by_token)

    def abandoned_deletions(self, *, limit: int = 100) -> list[str]:
        """See :meth:`StateStore.abandoned_deletions` (:func:`kaon.store.deletion.abandoned`)."""
        from kaon.store import deletion

        return deletion.abandoned(self, limit)

    def cache_users(self, run_id: str, *, limit: int = 10_000) -> list[tuple[str, int, str]]:
        """Step runs that reused ``run_id``'s outputs (``ix_step_runs_cached_from``)."""
        from kaon.store import deletion

        return [
            (row["run_id"], int(row["id"]), row["cached_from"][len(run_id) + 1 :])
            for row in deletion.cache_users(self, run_id, limit)
        ]

    def expired_runs(
        self,
        *,
        before: float,
        keep_last: int = 0,
        workflow: str | None = None,
        limit: int = 1000,
    ) -> list[RunRecord]:
        """Finished runs past retention (see :meth:`StateStore.expired_runs`): one read
        ranking each workflow's finished runs, newest first."""
        key = ("expired_runs", workflow is not None)
        params = {
            "before": before,
            "keep": max(keep_last, 0),
            "workflow": workflow,
            "limit": limit,
        }
        return [run_record(row) for row in self.query(key, **params)]

    def run_status_changes(self, run_id: str, since: float) -> list[tuple[float, str]]:
        """See :meth:`StateStore.run_status_changes` (``ix_events_run_step``)."""
        rows = self.query(("run_status_events",), run_id=run_id, since=float(since))
        return [(float(row["at"]), str((row["data"] or {}).get("status", ""))) for row in rows]

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
        key = ("step_runs", all_levels, parent_id is None, statuses is not None)
        rows = self.query(
            key,
            run_id=run_id,
            parent_id=parent_id,
            statuses=[plain(s) for s in statuses or ()],
        )
        if not rows:
            self.require_run(run_id)
        return [step_run_record(row) for row in rows]

    def children_of(self, run_id: str, parent_ids: Iterable[int]) -> list[StepRunRecord]:
        """See :meth:`StateStore.children_of` (500 parents a query)."""
        ids = sorted(set(parent_ids))
        found: list[StepRunRecord] = []
        for start in range(0, len(ids), 500):
            rows = self.query(("children_of",), run_id=run_id, parent_ids=ids[start : start + 500])
            found.extend(step_run_record(row) for row in rows)
        if len(ids) > 500:
            found.sort(key=lambda row: row.id)
        return found

    def get_step_run(self, run_id: str, path: str) -> StepRunRecord:
        """The step run at ``path``. Raises NotFoundError."""
        found = self.query(("step_run",), run_id=run_id, path=path)
        if not found:
            hint = self._closest_step(run_id, path)
            raise NotFoundError(f"no step run {path!r} in run {run_id!r}{hint}")
        return step_run_record(found[0])

    def _closest_step(self, run_id: str, path: str) -> str:
        """``" (did you mean 'train'?)"`` when the top-level step ``path`` starts with is not
        one of the run's and one is close to it (a read of the top level only: any run's
        cost is its workflow's size, not its foreach's)."""
        first = re.split(r"[.\[]", path, maxsplit=1)[0]
        top = {row.step_id for row in self.step_runs(run_id)} if 0 < len(first) <= 200 else set()
        if not top or first in top:
            return ""
        close = difflib.get_close_matches(first, sorted(top), n=1)
        return f" (did you mean {close[0] + path[len(first) :]!r}?)" if close else ""

    def child_outputs(self, run_id: str, parent_id: int) -> list[tuple[int, dict[str, Any] | None]]:
        """``(index, outputs)`` of the frame rows under ``parent_id``, ordered by index."""
        rows = self.query(("child_outputs",), run_id=run_id, parent_id=parent_id)
        if not rows:
            self.require_run(run_id)
        return [(int(row["index"]), row["outputs"]) for row in rows]

    def child_counts(self, run_id: str, parent_id: int) -> dict[StepStatus, int]:
        """How many children of ``parent_id`` are in each status (absent: none)."""
        rows = self.query(("child_counts",), run_id=run_id, parent_id=parent_id)
        if not rows:
            self.require_run(run_id)
        return {StepStatus(row["status"]): int(row["n"]) for row in rows}

    def summary_step_runs(self, run_id: str) -> list[StepRunRecord]:
        """See :meth:`StateStore.summary_step_runs` (filtered in the database)."""
        rows = self.query(("summary_step_runs",), run_id=run_id)
        if not rows:
            self.require_run(run_id)
        return [step_run_record(row) for row in rows]

    def status_counts(self, run_id: str) -> dict[tuple[str, StepStatus], int]:
        """See :meth:`StateStore.status_counts` (counted in the database)."""
        rows = self.query(("kind_status_counts", False), run_id=run_id)
        return {(row["kind"], StepStatus(row["status"])): int(row["n"]) for row in rows}

    def frame_counts(self, run_id: str) -> dict[int, dict[StepStatus, int]]:
        """See :meth:`StateStore.frame_counts` (counted in the database)."""
        counts: dict[int, dict[StepStatus, int]] = {}
        for row in self.query(("frame_counts",), run_id=run_id):
            if row["parent_id"] is not None:
                counts.setdefault(row["parent_id"], {})[StepStatus(row["status"])] = int(row["n"])
        return counts

    def attempts_of(self, run_id: str, step_run_ids: Iterable[int]) -> list[AttemptRecord]:
        """See :meth:`StateStore.attempts_of` (selected in the database, 500 ids a query)."""
        ids = sorted(set(step_run_ids))
        found: list[AttemptRecord] = []
        for start in range(0, len(ids), 500):
            rows = self.query(("attempts_of",), run_id=run_id, ids=ids[start : start + 500])
            found.extend(AttemptRecord(**row) for row in rows)
        return found

    def max_step_run_id(self, run_id: str) -> int:
        """The largest step run id used in a run (0 when none). Raises NotFoundError."""
        largest = self.query_value(("max_step_run_id",), run_id=run_id)
        if largest is None:
            self.require_run(run_id)
        return int(largest or 0)

    def max_step_run_ids(self, run_ids: Sequence[str]) -> dict[str, int]:
        """The largest step run id of each run that has any (one grouped query per 500)."""
        found: dict[str, int] = {}
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            rows = self.query(("max_step_run_ids",), run_ids=chunk)
            found.update((str(row["run_id"]), int(row["n"])) for row in rows)
        return found

    def attempts(self, run_id: str, step_run_id: int | None = None) -> list[AttemptRecord]:
        """Attempts of one step run, or of the whole run, by step run id and number."""
        key = ("attempts", step_run_id is not None)
        rows = self.query(key, run_id=run_id, step_run_id=step_run_id)
        if not rows:
            self.require_run(run_id)
        return [AttemptRecord(**row) for row in rows]

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
        key = ("logs", step_run_id is not None, attempt is not None)
        rows = self.query(
            key,
            run_id=run_id,
            step_run_id=step_run_id,
            attempt=attempt,
            after_id=after_id,
            limit=limit,
        )
        if not rows:
            self.require_run(run_id)
        return [LogRecord(**row) for row in rows]

    def metrics(self, run_id: str, step_run_id: int | None = None) -> list[MetricRecord]:
        """Metrics of a run (or one step run) in the order reported."""
        key = ("metrics", step_run_id is not None, False, False)
        rows = self.query(key, run_id=run_id, step_run_id=step_run_id)
        if not rows:
            self.require_run(run_id)
        return [MetricRecord(**row) for row in rows]

    def events(
        self, run_id: str | None = None, *, after_id: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events with ids above ``after_id``, oldest first, of one run or of all runs."""
        key = ("events", run_id is not None)
        rows = self.query(key, run_id=run_id, after_id=after_id, limit=limit)
        if not rows and run_id is not None:
            self.require_run(run_id)
        return [event_record(row) for row in rows]

    def step_events(
        self, run_id: str, step_run_id: int, *, kind: str | None = None, limit: int = 100
    ) -> list[EventRecord]:
        """The newest ``limit`` events of one step run (of ``kind``), newest first."""
        key = ("step_events", kind is not None)
        rows = self.query(key, run_id=run_id, step_run_id=step_run_id, kind=kind, limit=limit)
        return [event_record(row) for row in rows]

    # -- memoization and lineage -----------------------------------------------------------

    def get_cache_entry(self, key: str) -> CacheEntryRecord | None:
        """The cache entry with this key, if any."""
        found = self.query(("cache_entries_of",), keys=[key])
        return CacheEntryRecord(**found[0]) if found else None

    def get_cache_entries(self, keys: Sequence[str]) -> dict[str, CacheEntryRecord]:
        """The cache entries among ``keys``, 500 keys per query (the engine looks up whole
        windows of foreach items)."""
        found: dict[str, CacheEntryRecord] = {}
        unique_keys = list(dict.fromkeys(keys))
        for start in range(0, len(unique_keys), 500):
            chunk = unique_keys[start : start + 500]
            for row in self.query(("cache_entries_of",), keys=chunk):
                entry = CacheEntryRecord(**row)
                found[entry.key] = entry
        return found

    def cache_entries(
        self, *, workflow: str | None = None, step_id: str | None = None, limit: int = 100
    ) -> list[CacheEntryRecord]:
        """Cache entries, newest first, optionally of one workflow and step id."""
        key = ("cache_entries", workflow is not None, step_id is not None)
        rows = self.query(key, workflow=workflow, step_id=step_id, limit=limit)
        return [CacheEntryRecord(**row) for row in rows]

    def delete_cache_entries(
        self, *, workflow: str | None = None, step_id: str | None = None
    ) -> int:
        """Invalidate cache entries (all of them without filters); returns how many."""
        import sqlalchemy as sa

        from kaon.store import schema as t

        c = t.cache_entries.c
        stmt = sa.delete(t.cache_entries)
        if workflow is not None:
            stmt = stmt.where(c.workflow == workflow)
        if step_id is not None:
            stmt = stmt.where(c.step_id == step_id)
        with self.writing("deleting cache entries") as conn:
            return int(conn.execute(stmt).rowcount)

    def artifacts(
        self,
        *,
        run_id: str | None = None,
        hash: str | None = None,
        limit: int = 10_000,
    ) -> list[ArtifactRecord]:
        """Artifact lineage records in creation order."""
        key = ("artifacts", run_id is not None, hash is not None)
        records = [ArtifactRecord(**row) for row in self.query(key, run_id=run_id, hash=hash)]
        return records[:limit]

    def artifact_uses(
        self, hash: str, *, after_id: int = 0, limit: int = 10_000
    ) -> list[ArtifactUseRecord]:
        """The attempts that read blob ``hash`` (``ix_artifact_uses_hash``), oldest first."""
        rows = self.query(("artifact_uses",), hash=hash, after_id=after_id, limit=limit)
        return [ArtifactUseRecord(**row) for row in rows]

    def referenced_hashes(self) -> set[str]:
        """Every blob hash a recorded artifact points to."""
        return {row["hash"] for row in self.query(("referenced_hashes",))}

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
        key = ("signals", name is not None, since is not None)
        found = []
        for values in self.query(key, name=name, after_id=after_id, since=since, limit=limit):
            values["params"] = values["params"] or {}
            found.append(SignalRecord(**values))
        return found

    def add_signal(self, record: SignalRecord) -> SignalRecord:
        """Store one signal under the feed lock; returns it with its id."""
        import sqlalchemy as sa

        from kaon.store import schema as t

        values = {name: getattr(record, name) for name in SIGNAL_FIELDS}
        with self.writing(f"storing signal {record.name}") as conn:
            lock_feed(conn)
            key = conn.execute(sa.insert(t.signals).values(**values)).inserted_primary_key
        assert key is not None
        record.id = int(key[0])
        return record

    def signal_cursor_since(self, since: float) -> int:
        """One below the first signal received at or after ``since`` (index ``ix_signals_at``);
        the newest id when there is none yet (later signals get larger ids).

        The newest id is read first: a signal committed between the two reads then has a
        larger id and is found by the second (read the other way round, it would be found
        by neither and never delivered)."""
        newest = int(self.query_value(("signal_max",)) or 0)
        first = self.query_value(("signal_first_since",), since=since)
        if first is not None:
            return int(first) - 1
        return newest

    def last_event_id(self) -> int:
        """The largest committed event id (0 when none): the primary key's last entry."""
        return int(self.query_value(("event_max", False)) or 0)

    # -- commands and leases -------------------------------------------------------------

    def pending_commands_of(self, run_ids: Collection[str]) -> dict[str, list[CommandRecord]]:
        """Commands not yet done of the given runs: one query on the partial index of
        pending commands (``ix_commands_pending``), so its cost follows the commands waiting,
        not the number of runs held; commands of runs that no longer run are left out."""
        wanted = set(run_ids)
        found: dict[str, list[CommandRecord]] = {}
        if not wanted:
            return found
        for row in self.query(("pending_commands",)):
            if row["run_id"] in wanted:
                found.setdefault(row["run_id"], []).append(command_record(row))
        return found

    def pending_commands(self, run_id: str) -> list[CommandRecord]:
        """Commands not yet done for a run, oldest first."""
        rows = self.query(("run_pending_commands",), run_id=run_id)
        if not rows:
            self.require_run(run_id)
        return [command_record(row) for row in rows]

    def acquire_lease(
        self, run_id: str, owner: str, ttl: float, *, steal_from: str | None = None
    ) -> int | None:
        """Take over the lease on a run (see :meth:`StateStore.acquire_lease`): one
        conditional UPDATE on the database's clock that increments the lease epoch."""
        key = ("acquire_lease", self._dialect, bool(steal_from))
        params = {"run_id": run_id, "owner": owner, "lease_ttl": ttl, "steal_from": steal_from}
        with self._transaction("acquiring a lease") as tx:
            if tx.execute(key, params) != 1:
                taken = None
            else:
                taken = tx.rows(("lease_epoch",), {"run_id": run_id})
        if taken is None:
            self.require_run(run_id)
            return None
        return int(taken[0]["lease_epoch"] or 0)

    def acquire_leases(
        self, run_ids: Sequence[str], owner: str, ttl: float
    ) -> list[tuple[RunRecord, int]]:
        """Take over the free leases among ``run_ids`` (see :meth:`StateStore.acquire_leases`):
        one conditional ``UPDATE ... RETURNING`` per 500 runs, in one transaction."""
        if not run_ids:
            return []
        import sqlalchemy as sa

        from kaon.model.status import RUN_ACTIVE
        from kaon.store import schema as t
        from kaon.store._queries import db_clock

        c = t.runs.c
        now = db_clock(self._dialect)
        free = sa.or_(c.owner.is_(None), c.lease_until.is_(None), c.lease_until < now)
        taken: list[tuple[RunRecord, int]] = []
        ids = list(dict.fromkeys(run_ids))
        ttl_param: sa.BindParameter[float] = sa.bindparam("lease_ttl", ttl, type_=sa.Double())
        with self.writing("acquiring leases") as conn:
            for start in range(0, len(ids), 500):
                stmt = (
                    sa.update(t.runs)
                    .where(
                        c.id.in_(ids[start : start + 500]),
                        c.status.in_([s.value for s in RUN_ACTIVE]),
                        free,
                    )
                    .values(owner=owner, lease_until=now + ttl_param, lease_epoch=c.lease_epoch + 1)
                    .returning(*t.runs.c)
                )
                for row in conn.execute(stmt):
                    record = run_record(row._asdict())
                    taken.append((record, int(row.lease_epoch or 0)))
        order = {run_id: n for n, run_id in enumerate(ids)}
        return sorted(taken, key=lambda pair: order[pair[0].id])

    def renew_leases(self, owner: str, epochs: Mapping[str, int], ttl: float) -> set[str]:
        """Extend the leases ``owner`` still holds at these epochs; returns the lost runs."""
        if not epochs:
            return set()
        lost: set[str] = set()
        ids = sorted(epochs)
        lock = self._dialect != "sqlite"
        with self._transaction("renewing leases") as tx:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                held = [
                    row["id"]
                    for row in tx.rows(("lease_holders", lock), {"ids": chunk})
                    if row["owner"] == owner and row["lease_epoch"] == epochs[row["id"]]
                ]
                lost.update(set(chunk) - set(held))
                if held:
                    tx.execute(("renew_leases", self._dialect), {"ids": held, "lease_ttl": ttl})
        return lost

    def release_lease(self, run_id: str, owner: str, epoch: int | None = None) -> None:
        """Give up the lease if ``owner`` holds it (at ``epoch``, when given)."""
        key = ("release_lease", epoch is not None)
        with self._transaction("releasing a lease") as tx:
            tx.execute(key, {"run_id": run_id, "holder": owner, "epoch": epoch})

    def lease_owners(self) -> list[str]:
        """Owners of unexpired leases on unfinished runs (see
        :meth:`StateStore.lease_owners`)."""
        rows = self.query(("lease_owners", self._dialect))
        return sorted(str(row["owner"]) for row in rows)

    def release_leases_of(self, owner: str) -> int:
        """Void the leases of a dead engine (see :meth:`StateStore.release_leases_of`)."""
        with self._transaction("releasing a dead engine's leases") as tx:
            return tx.execute(("release_leases_of",), {"dead_owner": owner})

    def claimable_runs(
        self,
        *,
        limit: int,
        after: ClaimKey | None = None,
        skip_workflows: Sequence[str] = (),
    ) -> list[RunRecord]:
        """Unheld pending or running runs in claiming order (see
        :meth:`StateStore.claimable_runs`)."""
        key = ("claimable_runs", self._dialect, bool(skip_workflows), after is not None)
        rank, at, after_id = after if after is not None else (None, None, None)
        params = {
            "limit": limit,
            "skip": list(skip_workflows),
            "after_priority": None if rank is None else -rank,
            "after_at": at,
            "after_id": after_id,
        }
        return [run_record(row) for row in self.query(key, **params)]

    # -- pools, permits and holds (SQL in kaon.store.pools) ----------------------------------

    def pools(self) -> list[PoolRecord]:
        """Every pool, by name."""
        return [PoolRecord(**row) for row in self.query(("pools",))]

    def set_pool(self, record: PoolRecord) -> None:
        """Create or replace a pool."""
        from kaon.store import pools as pool_sql
        from kaon.store import schema_pools

        with self.writing("setting a pool") as conn:
            pool_sql.put(conn, schema_pools.pools, "name", asdict(record))

    def delete_pool(self, name: str) -> None:
        """Delete a pool and its holds. Raises NotFoundError."""
        from kaon.store import pools as pool_sql

        with self.writing("deleting a pool") as conn:
            pool_sql.delete(conn, "pool", name)

    def permits(self) -> list[PermitRecord]:
        """Every tag permit, by tag."""
        return [PermitRecord(**row) for row in self.query(("permits",))]

    def set_permit(self, record: PermitRecord) -> None:
        """Create or replace a tag permit."""
        from kaon.store import pools as pool_sql
        from kaon.store import schema_pools

        with self.writing("setting a permit") as conn:
            pool_sql.put(conn, schema_pools.permits, "tag", asdict(record))

    def delete_permit(self, tag: str) -> None:
        """Delete a tag permit and its holds. Raises NotFoundError."""
        from kaon.store import pools as pool_sql

        with self.writing("deleting a permit") as conn:
            pool_sql.delete(conn, "tag", tag)

    def hold_usage(self) -> list[LimitUsage]:
        """What live holds take of each pool and permit."""
        from kaon.store import pools as pool_sql
        from kaon.store._queries import db_clock

        with self._reading() as conn:
            return list(pool_sql.usage(conn, db_clock(self._dialect)).values())

    def pool_load(self, *, other_than: str | None = None) -> dict[tuple[str, str], int]:
        """Live pool holds per (pool, owner group), of other engines' runs when asked."""
        from kaon.store import pools as pool_sql
        from kaon.store._queries import db_clock

        with self._reading() as conn:
            return pool_sql.pool_load(conn, db_clock(self._dialect), other_than)

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
        from kaon.store import pools as pool_sql
        from kaon.store._queries import db_clock

        lock = self._dialect != "sqlite"
        with self.writing("claiming pool slots and permits") as conn:
            if release:
                rows = [{"h_run": r, "h_path": p, "h_attempt": a} for r, p, a in release]
                conn.execute(pool_sql.RELEASE_ONE, rows)
            now = db_clock(self._dialect)
            return pool_sql.claim(conn, now, time.time(), owner, claims, lock=lock, limit=limit)

    def release_holds(self, run_id: str, keep: Collection[tuple[str, int]] = ()) -> None:
        """Delete the holds of a run but those of the attempts in ``keep``."""
        from kaon.store import pools as pool_sql

        with self.writing("releasing holds") as conn:
            pool_sql.release(conn, run_id, keep)

    def close(self) -> None:
        """Close every connection (an in-memory database is gone after this)."""
        with self._pin_lock:
            pinned, self._pinned = self._pinned, None
        if pinned is not None:
            with suppress(Exception):
                pinned.close()
        if self._lite is not None:
            self._lite.close()
        engines = [self.__dict__.get(name) for name in ("_engine", "_write_engine")]
        for engine in dict.fromkeys(e for e in engines if e is not None):
            engine.dispose()


# -- statements and rows -----------------------------------------------------------------------

_TABLES_SQL = "SELECT name FROM sqlite_master WHERE type = 'table'"


def _first_attempts_named(step: _Step, columns: frozenset[str]) -> _Step:
    """An update of step runs that only sets their first attempt's columns, named as one of
    ``attempts`` in errors."""
    if step[0] == "step_runs" and columns <= FIRST_COLUMNS:
        return ("attempts", *step[1:])
    return step


def _tables(plan: list[_Step]) -> str:
    """The tables a plan writes, in its order: PostgreSQL's errors name them all (the batch
    is one round trip)."""
    return ", ".join(dict.fromkeys(step[0] for step in plan))


def _lost(connection: Any) -> bool:
    """Whether a pooled PostgreSQL connection is known dead (see ``_pg_write``)."""
    # From the module, not its package: an import from a package runs Python code each time.
    from kaon.store._pg_write import connection_lost

    return connection_lost(connection.dbapi_connection)


def _refuse_lost(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """The write engine's check as a connection leaves its pool: a dead one is discarded and
    another taken (SQLAlchemy's ``DisconnectionError`` protocol), with no round trip."""
    from sqlalchemy import exc as sa_exc

    from kaon.store import _pg_write

    if _pg_write.connection_lost(dbapi_connection):
        raise sa_exc.DisconnectionError("the database closed this connection")


def _cause(error: BaseException) -> str:
    """A database error as one line: the driver's type and message. SQLAlchemy's wrapper
    adds the SQL text, its parameters and a documentation link on lines of their own, and a
    driver's message may span lines (psycopg's hint): the CLI prints an error on one line,
    and those details stay in the chained exception, for a server's log."""
    original = getattr(error, "orig", None)  # the driver's error SQLAlchemy wraps
    if isinstance(original, BaseException):
        error = original
    kind = type(error)
    module = kind.__module__.split(".")[0]
    name = kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    return f"({name}) {' '.join(str(error).split())}"


def _duplicate(error: BaseException) -> bool:
    """Whether an integrity error is a unique key's violation (a row already there), not a
    missing key or a failed check."""
    original = getattr(error, "orig", error)
    if isinstance(original, sqlite3.IntegrityError):
        return "UNIQUE constraint" in str(original) or "PRIMARY KEY" in str(original)
    return getattr(original, "sqlstate", None) == "23505"  # PostgreSQL's unique_violation


def _transient(error: BaseException, dbapi: Any) -> bool:
    """Whether a database error is worth retrying: a lost connection, a busy database."""
    if getattr(error, "connection_invalidated", False):  # SQLAlchemy's DBAPIError
        return True
    original = getattr(error, "orig", None)  # the driver's error SQLAlchemy wraps
    if isinstance(original, BaseException):
        error = original
    if isinstance(error, sqlite3.Error):
        return _lite.transient(error)
    return isinstance(error, dbapi.OperationalError | dbapi.InterfaceError)

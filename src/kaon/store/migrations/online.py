"""Schema changes a revision makes while servers keep reading the database (PostgreSQL).

Kaon migrates PostgreSQL one revision per transaction, under a session-level migration lock
(see :meth:`kaon.store.sql.SQLStore._migrate`), so a revision can step out of its
transaction: an index is built with ``CREATE INDEX CONCURRENTLY`` (writes and reads go on
meanwhile; a plain build blocks every write to the table until the upgrade commits), a
backfill commits batch by batch (no table-long row locks, no giant WAL burst), a table
rewrite commits table by table (an ``ACCESS EXCLUSIVE`` lock lasts that table's rewrite,
not the whole upgrade).

Every helper is safe to run again after a crash halfway: a concurrent build that failed
leaves an INVALID index, which is dropped and built again; a backfill only fills rows not
yet filled. On SQLite (one transaction for the whole upgrade; WAL readers are never
blocked) and when Alembic runs inside a caller's transaction (``alembic`` against a URL,
tests), the helpers do the plain transactional statement.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kaon.errors import StoreUnavailableError

BATCH = 10_000  # rows of a backfill's UPDATE (ids in range), each batch committed on its own
# An ACCESS EXCLUSIVE statement waits this long for its lock, then lets the queries queued
# behind it run and tries again, up to LOCK_TRIES times (LOCK_PAUSE_S apart). Waiting
# without a bound behind one long transaction (a report, a pg_dump) would stop every read
# of the table queued behind the waiting ALTER for as long as that transaction lasts.
LOCK_TIMEOUT_MS = 2_000
LOCK_TRIES = 150
LOCK_PAUSE_S = 0.5


def is_online() -> bool:
    """True when this revision may leave its transaction (PostgreSQL, one transaction per
    revision)."""
    context = op.get_context()
    return bool(
        context.dialect.name == "postgresql" and context.opts.get("transaction_per_migration")
    )


def _drop_invalid(name: str) -> None:
    """Drop ``name`` if a concurrent build of it failed earlier (an INVALID index)."""
    invalid = op.get_bind().execute(
        sa.text(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name AND NOT i.indisvalid"
        ),
        {"name": name},
    )
    if invalid.first() is not None:
        op.execute(sa.text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))


def create_index(
    name: str,
    table: str,
    columns: Sequence[str | sa.ColumnElement[object]],
    where: sa.TextClause | None = None,
) -> None:
    """Create an index; on PostgreSQL concurrently, outside the revision's transaction."""
    if not is_online():
        op.create_index(name, table, list(columns), sqlite_where=where, postgresql_where=where)
        return
    with op.get_context().autocommit_block():
        _drop_invalid(name)
        op.create_index(
            name,
            table,
            list(columns),
            postgresql_where=where,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def drop_index(name: str, table: str) -> None:
    """Drop an index; on PostgreSQL concurrently, outside the revision's transaction."""
    if not is_online():
        op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def remake_index(
    name: str,
    table: str,
    columns: Sequence[str | sa.ColumnElement[object]],
    where: sa.TextClause | None = None,
) -> None:
    """Replace index ``name`` by one over ``columns`` (``where``). On PostgreSQL the new one
    is built concurrently under a temporary name beside the old one, which serves the reads
    until it is dropped (concurrently); then the new one takes the name."""
    if not is_online():
        op.drop_index(name, table_name=table)
        op.create_index(name, table, list(columns), sqlite_where=where, postgresql_where=where)
        return
    building = f"{name}__new"
    create_index(building, table, columns, where)
    drop_index(name, table)
    with op.get_context().autocommit_block():
        op.execute(sa.text(f'ALTER INDEX "{building}" RENAME TO "{name}"'))


def update_in_batches(table: str, assignments: str, where: str) -> None:
    """``UPDATE table SET assignments WHERE where`` over ranges of :data:`BATCH` ids (the table's
    integer primary key ``id``). On PostgreSQL each range commits on its own; ``where`` must
    exclude the rows already updated, so that a rerun after a crash goes on where it stopped."""
    bind = op.get_bind()
    statement = sa.text(
        f"UPDATE {table} SET {assignments} WHERE id >= :low AND id < :high AND ({where})"
    )
    if not is_online():
        _ranges(bind, table, statement, BATCH)
        return
    with op.get_context().autocommit_block():
        _ranges(op.get_bind(), table, statement, BATCH)


def _ranges(bind: sa.Connection, table: str, statement: sa.TextClause, batch: int) -> None:
    low, high = bind.execute(sa.text(f"SELECT MIN(id), MAX(id) FROM {table}")).one()
    if low is None:
        return
    for start in range(int(low), int(high) + 1, batch):
        bind.execute(statement, {"low": start, "high": start + batch})


def retype_columns(table: str, columns: Sequence[str], kind: str) -> None:
    """Change ``columns`` of ``table`` to type ``kind`` (PostgreSQL), in ONE ``ALTER TABLE``
    (one rewrite of the table, not one per column); online, committed on its own, so that
    the table's ``ACCESS EXCLUSIVE`` lock lasts its own rewrite only."""
    changes = ", ".join(f'ALTER COLUMN "{c}" TYPE {kind} USING "{c}"::{kind}' for c in columns)
    statement = sa.text(f"ALTER TABLE {table} {changes}")
    if not is_online():
        op.execute(statement)
        return
    with op.get_context().autocommit_block():
        _exclusive(statement, table)


def _exclusive(statement: sa.TextClause, table: str) -> None:
    """Run ``statement`` (it takes ``table`` ACCESS EXCLUSIVE) outside a transaction with a
    bounded lock wait, retried (see :data:`LOCK_TIMEOUT_MS`); raises
    :class:`StoreUnavailableError` naming the sessions that kept the lock from it."""
    bind = op.get_bind()
    for _ in range(LOCK_TRIES):
        bind.exec_driver_sql(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")
        try:
            bind.execute(statement)
            return
        except sa.exc.OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
        finally:
            bind.exec_driver_sql("SET lock_timeout = 0")
        time.sleep(LOCK_PAUSE_S)
    holders = bind.execute(
        sa.text(
            "SELECT DISTINCT l.pid, left(a.query, 80) FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.relation = CAST(:table AS regclass) "
            "AND l.pid <> pg_backend_pid() ORDER BY l.pid LIMIT 5"
        ),
        {"table": table},
    ).all()
    shown = "; ".join(f"pid {pid}: {query!r}" for pid, query in holders) or "none left"
    raise StoreUnavailableError(
        f"migration could not lock table {table} ({LOCK_TRIES} tries of "
        f"{LOCK_TIMEOUT_MS} ms): other sessions hold it ({shown}); end them (or wait for "
        "them) and open the store again: the upgrade goes on from this revision"
    )

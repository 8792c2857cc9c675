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

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BATCH = 10_000  # rows of a backfill's UPDATE (ids in range), each batch committed on its own


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
        op.execute(statement)

"""Alembic environment of Kaon's state store.

Kaon runs it programmatically (see ``kaon.store.sql``) with an open connection in
``config.attributes["connection"]``: on SQLite inside a transaction that already holds the
migration lock; on PostgreSQL (``config.attributes["per_revision"]``) outside one, under a
session-level migration lock, and each revision runs in a transaction of its own, so that a
revision may build an index concurrently or backfill in committed batches (see
:mod:`kaon.store.migrations.online`). Developers can also use the ``alembic``
command with ``alembic.ini`` in this folder and ``-x url=...`` (or ``sqlalchemy.url``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from kaon.store.schema import VERSION_TABLE, metadata


def _run(connection: Connection, *, per_revision: bool = False) -> None:
    context.configure(
        connection=connection,
        transaction_per_migration=per_revision,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection, per_revision=bool(config.attributes.get("per_revision")))
        return
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()

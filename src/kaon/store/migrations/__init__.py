"""Schema migrations of the state store: run Alembic to head on an open connection.

The revisions live in ``versions/`` next to this file and ship as package data; no
``alembic.ini`` is read. :func:`upgrade_to_head` is called by the SQL store on open, inside a
transaction that holds a migration lock, so two processes opening one database at once
migrate it once.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from kaon.errors import ForeignDatabaseError, SchemaVersionError, StoreError, StoreNotFoundError
from kaon.store.schema import VERSION_TABLE

MIGRATIONS_DIR = Path(__file__).resolve().parent


def _config() -> Config:
    config = Config()
    # ConfigParser interpolates '%': escape it in the path.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions this Kaon ships (parsed once per process)."""
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The newest schema revision this Kaon knows."""
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise StoreError(f"no schema revisions found in {MIGRATIONS_DIR}")
    return head


def known_revisions() -> frozenset[str]:
    """Every schema revision this Kaon knows."""
    return frozenset(script.revision for script in script_directory().walk_revisions())


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions the database is stamped with (empty for a new database)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return tuple(context.get_current_heads())


def upgrade_to_head(connection: Connection, where: str, *, create: bool = True) -> None:
    """Bring the database behind ``connection`` to the head revision; no-op when it is there.

    ``connection`` must be inside a transaction that holds the migration lock; the DDL runs
    in that transaction. ``where`` names the database in messages (a URL without password).

    Raises :class:`SchemaVersionError` when the database carries a revision this Kaon does
    not know (a newer Kaon migrated it), :class:`ForeignDatabaseError` when it holds tables
    but no Kaon schema, and (unless ``create``) :class:`StoreNotFoundError` when it is empty.
    """
    head = head_revision()
    current = current_revisions(connection)
    if not current:
        tables = sa.inspect(connection).get_table_names()
        check_unstamped([t for t in tables if t != VERSION_TABLE], where, create=create)
    known = known_revisions()
    for revision in current:
        if revision not in known:
            raise SchemaVersionError(
                f"database at {where} has schema revision {revision}, newer than this Kaon "
                f"(knows up to {head}); upgrade Kaon"
            )
    if current == (head,):
        return
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def check_unstamped(tables: list[str], where: str, *, create: bool) -> None:
    """Refuse a database without Kaon's schema stamp that Kaon must not make its own.

    ``tables`` are the tables it holds. Tables of another application: refused by name
    (:class:`ForeignDatabaseError`); no tables and not ``create``: there is no Kaon store
    there (:class:`StoreNotFoundError`).
    """
    if tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ForeignDatabaseError(
            f"{where} is not a Kaon store: it holds other tables ({shown}); "
            "point --db or KAON_DB at Kaon's own database"
        )
    if not create:
        raise StoreNotFoundError(f"no Kaon store at {where} (the database is empty)")

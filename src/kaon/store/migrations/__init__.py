"""Schema migrations of the state store: bring an open connection's database to the head.

The revisions live in ``versions/`` next to this file and ship as package data; no
``alembic.ini`` is read. :func:`upgrade_to_head` is called by the SQL store on open, inside a
transaction that holds a migration lock, so two processes opening one database at once
migrate it once.

Opening is cheap when nothing is to be done, which is nearly always: the stamped revision is
read with one query and compared with the head, which is read from the revision files'
``revision``/``down_revision`` lines, without importing Alembic. An empty database is created
from the schema module (:data:`kaon.store.schema.metadata`) and stamped with the head, as
Alembic's documentation recommends for new databases; on SQLite from the schema module's DDL
rendered ahead of time (:mod:`kaon.store._ddl`, so that no statement is compiled). The tests
check that this gives the same database as running every revision. Only a database at an
older revision runs Alembic.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from kaon.errors import ForeignDatabaseError, SchemaVersionError, StoreError, StoreNotFoundError
from kaon.store import _ddl
from kaon.store._lite import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent
_REVISION_LINE = re.compile(
    r"^(?P<key>revision|down_revision)\s*(?::[^=]*)?=\s*(?:None|[\"'](?P<id>[\w-]+)[\"'])\s*$",
    re.MULTILINE,
)


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolates '%': escape it in the path.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions this Kaon ships, parsed by Alembic (once per process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


@functools.cache
def _revision_graph() -> dict[str, str | None] | None:
    """``revision -> down_revision`` read from the revision files' text, or None when a file
    does not have the simple one-parent form (then Alembic answers)."""
    graph: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        found = {m["key"]: m["id"] for m in _REVISION_LINE.finditer(path.read_text("utf-8"))}
        if "revision" not in found or found["revision"] is None or "down_revision" not in found:
            return None
        graph[found["revision"]] = found["down_revision"]
    return graph or None


def head_revision() -> str:
    """The newest schema revision this Kaon knows."""
    graph = _revision_graph()
    if graph is not None:
        heads = set(graph) - set(graph.values())
        if len(heads) == 1:
            return heads.pop()
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise StoreError(f"no schema revisions found in {MIGRATIONS_DIR}")
    return head


def known_revisions() -> frozenset[str]:
    """Every schema revision this Kaon knows."""
    graph = _revision_graph()
    if graph is not None:
        return frozenset(graph)
    return frozenset(script.revision for script in script_directory().walk_revisions())


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions the database is stamped with (empty for a new database)."""
    import sqlalchemy as sa

    if not connection.dialect.has_table(connection, VERSION_TABLE):
        return ()
    version = _ddl.version_table()
    rows = connection.execute(sa.select(version.c.version_num)).scalars().all()
    return tuple(rows)


def upgrade_to_head(
    connection: Connection, where: str, *, create: bool = True, per_revision: bool = False
) -> None:
    """Bring the database behind ``connection`` to the head revision; no-op when it is there.

    ``connection`` must hold the migration lock. Unless ``per_revision``, it is inside a
    transaction and the DDL runs in that transaction. With ``per_revision`` (PostgreSQL:
    the lock is a session's) the checks' transaction is committed and each revision runs in
    a transaction of its own, which it may leave to build an index concurrently or backfill
    in batches (:mod:`kaon.store.migrations.online`); an upgrade that stops halfway leaves
    the database stamped with the last revision done, and the next open goes on from there.
    ``where`` names the database in messages (a URL without password).

    Raises :class:`SchemaVersionError` when the database carries a revision this Kaon does
    not know (a newer Kaon migrated it), :class:`ForeignDatabaseError` when it holds tables
    but no Kaon schema, and (unless ``create``) :class:`StoreNotFoundError` when it is empty.
    """
    head = head_revision()
    current = current_revisions(connection)
    if current == (head,):
        return
    tables: set[str] | None = None
    if not current:
        tables = _table_names(connection)
        check_unstamped(sorted(tables - {VERSION_TABLE}), where, create=create)
    known = known_revisions()
    for revision in current:
        if revision not in known:
            raise SchemaVersionError(
                f"database at {where} has schema revision {revision}, newer than this Kaon "
                f"(knows up to {head}); upgrade Kaon"
            )
    from kaon.store.schema import metadata

    if tables is not None and not tables & set(metadata.tables):
        create_at_head(connection, head)  # no table of Kaon's yet (an empty version table may)
        return
    if current:
        check_no_engine_drives(connection, where, current, head)
    from alembic import command

    config = _config()
    config.attributes["connection"] = connection
    if per_revision:
        connection.commit()
        config.attributes["per_revision"] = True
    command.upgrade(config, "head")


def check_no_engine_drives(
    connection: Connection, where: str, current: tuple[str, ...], head: str
) -> None:
    """Refuse to migrate a store that engines of the Kaon it was made by are driving runs in.

    Such an engine goes on writing rows in the shape of its own schema into the migrated
    one (revision 0012, say, moved first attempts out of ``attempts``): its runs are failed
    on a "missing row" and left half recorded, and runs read back wrong. An engine shows
    itself by the unexpired lease it holds on each unfinished run it drives (by the
    database's clock); a crashed one's lease runs out within its time to live. Reads only
    the columns every revision has (``runs.status``, ``owner``, ``lease_until``).

    Raises :class:`SchemaVersionError` naming the engines, a run of each and how long
    their leases last.
    """
    import sqlalchemy as sa

    if connection.dialect.name == "sqlite":
        now = "((julianday('now') - 2440587.5) * 86400.0)"
    else:
        now = "(extract(epoch from clock_timestamp())::float8)"
    rows = connection.execute(
        sa.text(
            f"SELECT owner, MIN(id), COUNT(*), MAX(lease_until) - {now} FROM runs "
            "WHERE status IN ('pending', 'running', 'paused') AND owner IS NOT NULL "
            f"AND lease_until >= {now} GROUP BY owner ORDER BY owner"
        )
    ).all()
    if not rows:
        return
    held = "; ".join(
        f"{owner} drives {count} run{'' if count == 1 else 's'} ({run_id}"
        f"{', ...' if count > 1 else ''}), lease for {max(float(left), 0.0):.0f}s more"
        for owner, run_id, count, left in rows[:5]
    )
    raise SchemaVersionError(
        f"database at {where} has schema revision {', '.join(current)}, older than this "
        f"Kaon's {head}, and engines of the Kaon that made it are running: {held}. Stop "
        "them (every `kaon run`, `kaon resume` and `kaon server` of that version) or let "
        "their runs end, then run this command again: it migrates the database then (a "
        "crashed engine's lease runs out by itself)"
    )


def _table_names(connection: Connection) -> set[str]:
    """The tables of the database (on SQLite one query of its catalogue)."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(name) for (name,) in rows}
    import sqlalchemy as sa

    return set(sa.inspect(connection).get_table_names())


def create_at_head(connection: Connection, head: str) -> None:
    """Create every table of the schema module in an empty database and stamp it ``head``.

    On SQLite the statements are the pre-rendered ``schema_sqlite.sql`` (see
    :mod:`kaon.store._ddl`), run as they are in ``connection``'s transaction."""
    if connection.dialect.name == "sqlite":
        has_version = connection.dialect.has_table(connection, VERSION_TABLE)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            create_sqlite_at_head(cursor, head, has_version=has_version)
        finally:
            cursor.close()
        return
    import sqlalchemy as sa

    from kaon.store.schema import metadata

    version = _ddl.version_table()
    metadata.create_all(connection)
    version.create(connection, checkfirst=True)
    connection.execute(sa.insert(version).values(version_num=head))


def create_sqlite_at_head(cursor: sqlite3.Cursor, head: str, *, has_version: bool) -> None:
    """Run the pre-rendered ``schema_sqlite.sql`` in ``cursor``'s transaction and stamp the
    database ``head`` (``has_version``: the version table exists already, empty)."""
    for statement in _ddl.read_script():
        if has_version and statement.startswith(f"CREATE TABLE {VERSION_TABLE} "):
            continue  # stamped with no revision: the table is there, empty
        cursor.execute(statement)
    cursor.execute(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:head)", {"head": head})


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

"""Engines for store URLs: SQLite (WAL, BEGIN IMMEDIATE for writes) and PostgreSQL (psycopg).

SQLite connections get their pragmas on connect and leave BEGIN to SQLAlchemy's ``begin``
hook, which emits ``BEGIN IMMEDIATE`` on connections carrying :data:`WRITE_OPTION` (so two
writers queue on the busy timeout instead of failing on a lock upgrade) and nothing for
reads (each statement reads a consistent WAL snapshot).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from kaon.errors import ConfigurationError, ForeignDatabaseError, StoreNotFoundError
from kaon.store.migrations import check_unstamped
from kaon.store.schema import VERSION_TABLE, postgresql_options

WRITE_OPTION = "kaon_write"  # execution option: this connection's transactions write
# A PostgreSQL session idle inside a transaction this long is ended by the server. Kaon's
# transactions never wait on anything but the database; a client that stops mid-transaction
# (a replica frozen by SIGSTOP, a VM paused) would otherwise hold its row locks, and so the
# leases of its runs, for as long as it is stopped.
IDLE_IN_TRANSACTION_MS = 5000
BUSY_TIMEOUT_S = 10.0
# Stored JSON is standard JSON: NaN and Infinity are refused, never written as bare words.
_json_serializer = functools.partial(json.dumps, allow_nan=False)


def _sqlite_engine(url: sa.URL, *, create: bool) -> tuple[Engine, bool]:
    if url.get_driver_name() != "pysqlite":
        raise ConfigurationError(f"unsupported SQLite driver in store URL: {url.drivername}")
    database = url.database or ""
    in_memory = database in ("", ":memory:")
    connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
    # Named parameters: the write path hands dict rows straight to the driver.
    if in_memory:
        engine = sa.create_engine(
            "sqlite://",
            poolclass=StaticPool,
            connect_args=connect_args,
            paramstyle="named",
            json_serializer=_json_serializer,
        )
    else:
        path = Path(database).expanduser()
        _check_sqlite_file(path, create=create)
        engine = sa.create_engine(
            url.set(database=str(path)),
            connect_args=connect_args,
            paramstyle="named",
            json_serializer=_json_serializer,
        )
    sa.event.listen(engine, "connect", _on_sqlite_connect)
    sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine, in_memory


def _check_sqlite_file(path: Path, *, create: bool) -> None:
    """Look at a SQLite store's file before SQLAlchemy opens it (which would create it and
    switch it to WAL): refuse a missing store when reading, another application's database
    always, and a folder Kaon cannot create or write in."""
    if path.exists():
        if not path.is_file():
            raise ConfigurationError(f"the state store {path} is not a file")
        tables = _sqlite_tables(path)
        if VERSION_TABLE not in tables:
            check_unstamped(tables, str(path), create=create)
        # A stamped but empty version table: the migration decides (see upgrade_to_head).
        return
    if not create:
        raise StoreNotFoundError(f"no Kaon store at {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(
            f"cannot create the state folder {path.parent}: {error.strerror or error}"
        ) from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigurationError(f"the state folder {path.parent} is not writable")


def _sqlite_tables(path: Path) -> list[str]:
    """The tables of an existing SQLite file, read without changing it."""
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ConfigurationError(f"cannot open the state store {path}: {error}") from None
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        names = [str(row[0]) for row in rows]
    except sqlite3.DatabaseError as error:
        raise ForeignDatabaseError(f"{path} is not a Kaon store: {error}") from None
    finally:
        connection.close()
    return names


def _on_sqlite_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    # Take BEGIN away from pysqlite: SQLAlchemy's "begin" hook below decides.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = OFF")  # the engine guarantees the order of writes
    finally:
        cursor.close()


def _enable_wal(cursor: DBAPICursor) -> None:
    """Switch to WAL, retrying while another connection holds a lock.

    Switching needs an exclusive lock, and SQLite reports a busy database at once instead of
    calling the busy handler when connections opening a new file at the same time could
    deadlock; so retry until the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def _on_sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_store_engine(
    url: str, *, pre_ping: bool = True, create: bool = True
) -> tuple[Engine, bool]:
    """An engine for a store URL and whether it is an in-memory SQLite database.

    ``pre_ping`` (PostgreSQL): test each connection with a round trip when it leaves the
    pool; the engine's hot write path goes without, and retries on a dead connection.

    Raises :class:`ConfigurationError` for a malformed URL or an unsupported backend; for a
    SQLite file, see :func:`_check_sqlite_file` (``create`` as in
    :func:`kaon.store.open_store`).
    """
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as error:
        raise ConfigurationError(f"malformed store URL {url!r}: {error}") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, create=create)
    if backend == "postgresql":
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        postgresql_options()
        try:
            options = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
            engine = sa.create_engine(
                parsed,
                pool_pre_ping=pre_ping,
                json_serializer=_json_serializer,
                connect_args={"options": options},
            )
            return engine, False
        except ImportError as error:
            raise ConfigurationError(  # the wording of kaon.steptypes.requirements
                "a PostgreSQL store needs psycopg, which is not installed: "
                f"pip install 'kaon[postgres]' ({error})"
            ) from error
    raise ConfigurationError(
        f"unsupported store URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///path/to/kaon.db, sqlite:// (in memory) or postgresql+psycopg://..."
    )

"""Engines for store URLs: SQLite (WAL, BEGIN IMMEDIATE for writes) and PostgreSQL (psycopg).

SQLite connections get their pragmas on connect and leave BEGIN to SQLAlchemy's ``begin``
hook, which emits ``BEGIN IMMEDIATE`` on connections carrying :data:`WRITE_OPTION` (so two
writers queue on the busy timeout instead of failing on a lock upgrade) and nothing for
reads (each statement reads a consistent WAL snapshot).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from kaon.errors import ConfigurationError

WRITE_OPTION = "kaon_write"  # execution option: this connection's transactions write
# A PostgreSQL session idle inside a transaction this long is ended by the server. Kaon's
# transactions never wait on anything but the database; a client that stops mid-transaction
# (a replica frozen by SIGSTOP, a VM paused) would otherwise hold its row locks, and so the
# leases of its runs, for as long as it is stopped.
IDLE_IN_TRANSACTION_MS = 5000
BUSY_TIMEOUT_S = 10.0


def _sqlite_engine(url: sa.URL) -> tuple[Engine, bool]:
    if url.get_driver_name() != "pysqlite":
        raise ConfigurationError(f"unsupported SQLite driver in store URL: {url.drivername}")
    database = url.database or ""
    in_memory = database in ("", ":memory:")
    connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
    # Named parameters: the write path hands dict rows straight to the driver.
    if in_memory:
        engine = sa.create_engine(
            "sqlite://", poolclass=StaticPool, connect_args=connect_args, paramstyle="named"
        )
    else:
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url.set(database=str(path)), connect_args=connect_args, paramstyle="named"
        )
    sa.event.listen(engine, "connect", _on_sqlite_connect)
    sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine, in_memory


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


def create_store_engine(url: str, *, pre_ping: bool = True) -> tuple[Engine, bool]:
    """An engine for a store URL and whether it is an in-memory SQLite database.

    ``pre_ping`` (PostgreSQL): test each connection with a round trip when it leaves the
    pool; the engine's hot write path goes without, and retries on a dead connection.

    Raises :class:`ConfigurationError` for a malformed URL or an unsupported backend.
    """
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as error:
        raise ConfigurationError(f"malformed store URL {url!r}: {error}") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            options = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
            return (
                sa.create_engine(parsed, pool_pre_ping=pre_ping, connect_args={"options": options}),
                False,
            )
        except ImportError as error:
            raise ConfigurationError(
                f"PostgreSQL store needs the psycopg driver: pip install 'psycopg[binary]' "
                f"({error})"
            ) from error
    raise ConfigurationError(
        f"unsupported store URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///path/to/kaon.db, sqlite:// (in memory) or postgresql+psycopg://..."
    )

"""Engines for store URLs: SQLite (WAL, BEGIN IMMEDIATE for writes) and PostgreSQL (psycopg).

SQLite connections get their pragmas on connect and leave BEGIN to SQLAlchemy's ``begin``
hook, which emits ``BEGIN IMMEDIATE`` on connections carrying :data:`WRITE_OPTION` (so two
writers queue on the busy timeout instead of failing on a lock upgrade) and nothing for
reads (each statement reads a consistent WAL snapshot).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from kaon.errors import ConfigurationError
from kaon.store._lite import (
    BUSY_TIMEOUT_S,
    LiteDatabase,
    check_file,
    configure,
    leave_checkpoints,
)
from kaon.store.schema import postgresql_options

WRITE_OPTION = "kaon_write"  # execution option: this connection's transactions write
# A PostgreSQL session idle inside a transaction this long is ended by the server. Kaon's
# transactions never wait on anything but the database; a client that stops mid-transaction
# (a replica frozen by SIGSTOP, a VM paused) would otherwise hold its row locks, and so the
# leases of its runs, for as long as it is stopped.
IDLE_IN_TRANSACTION_MS = 5000
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
        check_file(path, create=create)
        engine = sa.create_engine(
            url.set(database=str(path)),
            connect_args=connect_args,
            paramstyle="named",
            json_serializer=_json_serializer,
        )
    sa.event.listen(engine, "connect", _on_sqlite_connect)
    sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine, in_memory


def _on_sqlite_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    # The same set-up as the store's own sqlite3 connections; BEGIN is left to the "begin"
    # hook below.
    configure(dbapi_connection)  # type: ignore[arg-type]


def leave_checkpoints_to(engine: Engine, database: LiteDatabase) -> None:
    """Make ``engine``'s connections to ``database``'s file leave the write-ahead log to its
    :class:`~kaon.store._lite.Checkpointer` (no commit checkpoints), and report their
    commits to it, as the file's own connections do."""

    def connected(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        leave_checkpoints(dbapi_connection)  # type: ignore[arg-type]

    def committed(connection: Connection) -> None:
        database.checkpointer.wrote()  # looked up now: a forked child has its own

    sa.event.listen(engine, "connect", connected)
    sa.event.listen(engine, "commit", committed)


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
            sa.event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
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


def _without_nul(
    connection: Connection,
    cursor: object,
    statement: str,
    parameters: object,
    context: object,
    executemany: bool,
) -> tuple[str, object]:
    """PostgreSQL's text cannot hold a NUL character (U+0000), and Kaon stores each one as
    U+FFFD (:func:`kaon.model.text.readable_text`): a statement's text parameters get the
    same, so a name or filter carrying one (``GET /runs/a%00b``) matches what it can, never a
    driver error. The hot write path does not come here (``kaon.store._pg_write``)."""
    if isinstance(parameters, dict):
        return statement, _nul_free(parameters)
    if isinstance(parameters, list | tuple) and executemany:
        return statement, type(parameters)(_nul_free(p) for p in parameters)
    return statement, parameters


def _nul_free(parameters: object) -> object:
    if not isinstance(parameters, dict):
        return parameters
    found = False
    for value in parameters.values():
        if isinstance(value, str) and "\x00" in value:
            found = True
            break
    if not found:
        return parameters
    return {
        k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in parameters.items()
    }

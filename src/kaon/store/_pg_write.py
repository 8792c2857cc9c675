"""PostgreSQL's write path: a whole batch, and its durable commit, in one round trip.

:meth:`SQLStore.write <kaon.store.sql.SQLStore.write>` plans a batch into steps ``(table,
SQL, rows, rows an update must match)``. On PostgreSQL, :func:`write` sends all of them at
once in libpq's pipeline mode, as prepared statements (a ``Parse`` the first time a
connection runs one), ended by a single ``Sync``, then waits once. Without an explicit
``BEGIN``, the statements up to a ``Sync`` run as one implicit transaction that the ``Sync``
commits if every statement succeeded and rolls back otherwise (PostgreSQL's protocol
documentation, "Pipelining"): the batch is atomic, and nothing is committed unless the
``Sync`` arrives, which is only sent after every row was encoded.

The rows an update matches are checked by the server, so that a mismatch aborts the
transaction: each checked statement runs as ::

    WITH u AS (UPDATE ... RETURNING 1)
    SELECT CASE WHEN count(*) = 1 THEN 0
                ELSE CAST('kaon-mismatch:' || count(*) AS int) END FROM u

once per row (every checked row matches one row by its key). The ``ELSE`` depends on
``count(*)``, so the planner cannot fold it into an error at plan time. The failed cast tells
:func:`write` which step came short; it reports the step's count as one short, for the
caller to raise :class:`~kaon.errors.FencingError` or :class:`~kaon.errors.StoreError`.

The statements go to libpq directly (psycopg's ``PGconn``), not through psycopg cursors: a
cursor in pipeline mode flushes the socket and polls it after every statement, which cost
more client and server CPU than the statements themselves. Parameters are encoded by
psycopg's adapters (the connection's, with its JSON settings) in text format, and their types
are inferred by the server from the SQL (the compiled SQL casts where it matters).
"""

from __future__ import annotations

import re
import select
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

_Step = tuple[str, str, list[dict[str, Any]], int]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
_MISMATCH = "kaon-mismatch:"
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


@dataclass(frozen=True, slots=True)
class _Statement:
    """A statement in PostgreSQL's own form: ``$n`` placeholders, named for preparing."""

    name: bytes
    query: bytes
    params: tuple[str, ...]  # the parameter of each $n, in order


_statements: dict[tuple[str, bool], _Statement] = {}
_statements_lock = threading.Lock()
# The statements each connection has prepared (by name); a new connection prepares afresh.
_prepared: WeakKeyDictionary[Any, set[bytes]] = WeakKeyDictionary()


def _statement(sql: str, checked: bool) -> _Statement:
    """``sql`` (pyformat, as SQLAlchemy compiles it for psycopg) in ``$n`` form; a checked
    ``UPDATE`` is wrapped to fail unless it matches exactly one row."""
    key = (sql, checked)
    found = _statements.get(key)
    if found is not None:
        return found
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] is None:
            return "%"
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    query = _PLACEHOLDER.sub(number, sql)
    if checked:
        query = (
            f"WITH u AS ({query} RETURNING 1) SELECT CASE WHEN count(*) = 1 THEN 0 "
            f"ELSE CAST('{_MISMATCH}' || count(*) AS int) END FROM u"
        )
    with _statements_lock:
        found = _statements.setdefault(
            key, _Statement(f"kaon_w{len(_statements)}".encode(), query.encode(), tuple(names))
        )
    return found


def write(cursor: Any, plan: Sequence[_Step]) -> list[int]:
    """Run ``plan`` and commit it in one round trip on ``cursor``'s psycopg connection.

    Returns the rows each step matched, as :meth:`SQLStore.write` checks them: a checked
    step's required rows (the server checked them), or one fewer when the server found a
    row missing and rolled the batch back; 0 for unchecked steps. Raises psycopg's errors
    (the batch rolled back), and ``TypeError`` / ``ValueError`` for a value that cannot be
    encoded (before anything is sent).
    """
    connection = cursor.connection
    pgconn = connection.pgconn
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        connection.rollback()  # never the case for the store's connections; be sure
    prepared = _prepared.setdefault(connection, set())
    transformer = Transformer.from_context(connection)
    commands: list[tuple[int, bytes | None]] = []  # (plan step, name it prepares)
    sends: list[tuple[Any, bytes, Any]] = []  # (libpq send function, name, argument)
    for index, (_table, sql, rows, expected) in enumerate(plan):
        statement = _statement(sql, bool(expected))
        formats = [PyFormat.TEXT] * len(statement.params)
        if statement.name not in prepared:
            sends.append((pgconn.send_prepare, statement.name, statement.query))
            commands.append((index, statement.name))
        for row in rows:
            values = transformer.dump_sequence([row[p] for p in statement.params], formats)
            sends.append((pgconn.send_query_prepared, statement.name, values))
            commands.append((index, None))
    pgconn.enter_pipeline_mode()
    try:
        for send, name, argument in sends:
            send(name, argument)
        pgconn.pipeline_sync()
        results = _communicate(pgconn)
    finally:
        if pgconn.status == pq.ConnStatus.OK and pgconn.pipeline_status:
            pgconn.exit_pipeline_mode()
    return _outcome(connection, plan, commands, results, prepared)


def _outcome(
    connection: Any,
    plan: Sequence[_Step],
    commands: list[tuple[int, bytes | None]],
    results: list[pq.abc.PGresult],
    prepared: set[bytes],
) -> list[int]:
    """The counts :func:`write` returns, or the pipeline's error, raised."""
    failed: tuple[int, bytes | None, pq.abc.PGresult] | None = None
    for (index, name), result in zip(commands, results, strict=True):
        if result.status in _OK:
            if name is not None:
                prepared.add(name)  # prepared even if a later statement failed
        elif failed is None and result.status == pq.ExecStatus.FATAL_ERROR:
            failed = index, name, result
    counts = [step[3] for step in plan]
    if failed is None:
        return counts
    index, name, result = failed
    message = (result.error_message or b"").decode(errors="replace")
    if name is None and counts[index] and _MISMATCH in message:
        counts[index] -= 1
        return counts
    raise pg_errors.error_from_result(result, encoding=connection.info.encoding)


def _communicate(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    """Send what libpq holds, then read every result up to the pipeline's sync (reading
    while sending, so that a large batch cannot fill both sockets' buffers)."""
    fileno = pgconn.socket
    while pgconn.flush():
        readable, _writable, _ = select.select([fileno], [fileno], [])
        if readable:
            pgconn.consume_input()
    results: list[pq.abc.PGresult] = []
    while True:
        while pgconn.is_busy():
            select.select([fileno], [], [])
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            if pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError(
                    f"the connection was lost: {pgconn.get_error_message()}"
                )
            continue
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            return results
        results.append(result)

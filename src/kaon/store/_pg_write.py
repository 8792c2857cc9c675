"""PostgreSQL's write path: a whole batch, and its durable commit, in one round trip.

:meth:`SQLStore.write <kaon.store.sql.SQLStore.write>` plans a batch into steps ``(table,
SQL, rows, rows an update must match)``. On PostgreSQL, :func:`write` sends all of them at
once in libpq's pipeline mode, as prepared statements (a ``Parse`` the first time a
connection runs one), ended by a single ``Sync``, then waits once. Without an explicit
``BEGIN``, the statements up to a ``Sync`` run as one implicit transaction that the ``Sync``
commits if every statement succeeded and rolls back otherwise (PostgreSQL's protocol
documentation, "Pipelining"): the batch is atomic, and nothing is committed unless the
``Sync`` arrives, which is only sent after every row was encoded.

The rows an update matches are checked by the server (see :mod:`kaon.store._pg_statements`),
so that a mismatch aborts the transaction; :func:`write` reports the step that came short,
for the caller to raise :class:`~kaon.errors.FencingError` or :class:`~kaon.errors.StoreError`.

A prepared statement is planned once per connection, from the tables' statistics, and
planned again only when they change. Until autovacuum first analyzes a table (a minute or
more after it grows), the planner takes every column to have 200 distinct values: a run's
step runs look few, and the plan of a step run's update (by primary key, ``run_id`` and
``id``) may take another index that starts with ``run_id`` and scan every step run of the run
(the server's time per update grew from 0.07 ms at a chain's start to 0.51 ms over the last
tenth of 4,000 steps: ``bench/pg_statement_times.py``). So each connection analyzes
``step_runs`` after its :data:`ANALYZE_FIRST`-th write, then after four times as many writes,
up to every :data:`ANALYZE_MOST` writes; new statistics make every session plan its
statements again.

The statements go to libpq directly (psycopg's ``PGconn``), not through psycopg cursors: a
cursor in pipeline mode flushes the socket and polls it after every statement, which cost
more client and server CPU than the statements themselves. Parameters are encoded by
psycopg's adapters in text format (a JSON document arrives as its text, encoded by the plan:
:func:`kaon.store._queries.compiled_for`), doubles in binary; the server infers their types
from the SQL (which casts where the column does not tell).
"""

from __future__ import annotations

import logging
import select
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import abc, pq
from psycopg import errors as pg_errors
from psycopg.adapt import Transformer

from kaon.errors import StoreError
from kaon.store._pg_statements import MISMATCH, PgStatement

log = logging.getLogger(__name__)

# A plan's step: (table, statement, each row's parameters in order, rows an update must match).
_Step = tuple[str, PgStatement, list[Sequence[Any]], int]
# A step as sent: its statement, whether this round trip prepares it, its rows' encoded values.
_Sent = tuple[PgStatement, bool, list[Sequence[abc.Buffer | None]]]
_OK = frozenset((pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK))
_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name: a prepared statement is gone
_USABLE = (
    pq.TransactionStatus.IDLE,
    pq.TransactionStatus.INTRANS,
    pq.TransactionStatus.INERROR,
)
ANALYZE_FIRST = 256  # a connection's writes before it first analyzes step_runs
ANALYZE_MOST = 65_536  # the most writes between two of its analyses
# One implicit transaction: it waits briefly for the table's lock (another ANALYZE, a VACUUM)
# and gives up on a long analysis, rather than stall the write that asked for it.
_ANALYZE = b"SET LOCAL lock_timeout = '200ms'; SET LOCAL statement_timeout = '2s'; " + (
    b"ANALYZE step_runs"
)


@dataclass(slots=True)
class _Session:
    """What the store knows of one connection's server session, and the encoder of its
    parameters (psycopg's adapters, looked up once per value type and kept: a connection
    writes from one thread at a time)."""

    transformer: abc.Transformer
    prepared: set[bytes] = field(default_factory=set)  # the statements it holds, by name
    writes: int = 0
    analyze_at: int = ANALYZE_FIRST  # the write after which it analyzes step_runs

    def analysis_due(self) -> bool:
        """Count a write; True when the write is the one to analyze after."""
        self.writes += 1
        if self.writes < self.analyze_at:
            return False
        self.analyze_at += min(3 * self.analyze_at, ANALYZE_MOST)
        return True


# Each connection's session; a new connection prepares afresh.
_sessions: WeakKeyDictionary[Any, _Session] = WeakKeyDictionary()


def write(connection: Any, plan: Sequence[_Step]) -> list[int]:
    """Run ``plan`` and commit it in one round trip on the psycopg ``connection``.

    Returns the rows each step matched, as :meth:`SQLStore.write` checks them: a checked
    step's required rows (the server checked them), or one fewer when the server found a
    row missing and rolled the batch back; 0 for unchecked steps. Raises psycopg's errors
    (the batch rolled back; ``OperationalError`` for a connection an interrupted write left
    unusable, to be replaced), and :class:`StoreError` naming the table of a value that
    cannot be encoded (found before anything is sent).
    """
    pgconn = connection.pgconn
    if pgconn.pipeline_status or pgconn.transaction_status not in _USABLE:
        raise psycopg.OperationalError("the connection was left mid-write by an interruption")
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        connection.rollback()
    session = _sessions.get(connection)
    if session is None:
        session = _sessions[connection] = _Session(Transformer.from_context(connection))
    try:
        counts = _round_trip(connection, plan, session, lost_is_error=False)
    except _StatementsLost:  # the batch was rolled back: prepare everything and run it again
        session.prepared.clear()
        counts = _round_trip(connection, plan, session, lost_is_error=True)
    if session.analysis_due():
        _analyze(pgconn)
    return counts


def _analyze(pgconn: pq.abc.PGconn) -> None:
    """Refresh the statistics of ``step_runs`` (its own transaction, after the batch's commit).
    A failure (the table's lock not had in 200 ms, an analysis over 2 s) is only logged: the
    statistics are an optimisation, and autovacuum gathers them too (a role that does not own
    the table is skipped with a warning by the server)."""
    try:  # the batch is committed: nothing here may fail the write
        result = pgconn.exec_(_ANALYZE)
    except psycopg.Error as error:
        log.warning("analyzing step_runs failed: %s", error)
        return
    if result.status != pq.ExecStatus.COMMAND_OK:
        message = (result.error_message or b"").decode(errors="replace").strip()
        log.warning("analyzing step_runs failed: %s", message)


class _StatementsLost(Exception):
    """The server no longer has a statement this connection prepared (something ran
    ``DEALLOCATE``, or a pooler moved the session): the batch was rolled back."""


def _round_trip(
    connection: Any, plan: Sequence[_Step], session: _Session, *, lost_is_error: bool
) -> list[int]:
    """Send the whole plan and its ``Sync``, wait once, and return :func:`write`'s counts."""
    pgconn = connection.pgconn
    dump, prepared = session.transformer.dump_sequence, session.prepared
    sent: list[_Sent] = []  # every row encoded before anything is sent
    preparing: set[bytes] = set()
    commands = 0  # the results the pipeline returns: a prepare's and a row's each
    for table, statement, rows, _expected in plan:
        name = statement.name
        prepare = name not in prepared and name not in preparing
        if prepare:
            preparing.add(name)
        commands += prepare + len(rows)
        formats = statement.formats
        try:
            sent.append((statement, prepare, [dump(row, formats) for row in rows]))
        except (TypeError, ValueError) as error:  # before anything is sent
            raise StoreError(
                f"cannot store a row of table {table}; nothing in the batch was written: {error}"
            ) from error
    pgconn.enter_pipeline_mode()
    try:
        for statement, prepare, encoded in sent:
            name, wire = statement.name, statement.wire
            if prepare:
                pgconn.send_prepare(name, statement.query, None)
            for values in encoded:
                pgconn.send_query_prepared(name, values, wire)
        pgconn.pipeline_sync()
        results = _communicate(pgconn)
    except BaseException:
        with suppress(psycopg.Error):  # fails with results pending: the next write says so
            pgconn.exit_pipeline_mode()
        raise
    pgconn.exit_pipeline_mode()
    counts = [step[3] for step in plan]
    # Every statement succeeded (the common case), else _outcome finds the one that failed.
    if len(results) == commands and {result.status for result in results} <= _OK:
        prepared.update(preparing)
        return counts
    return _outcome(connection, counts, sent, results, prepared, lost_is_error)


def _outcome(
    connection: Any,
    counts: list[int],
    sent: list[_Sent],
    results: list[pq.abc.PGresult],
    prepared: set[bytes],
    lost_is_error: bool,
) -> list[int]:
    """The counts :func:`write` returns for a pipeline that failed, or its error, raised."""
    commands: list[tuple[int, bytes | None]] = []  # (plan step, the name it prepares)
    for index, (statement, prepare, encoded) in enumerate(sent):
        if prepare:
            commands.append((index, statement.name))
        commands.extend([(index, None)] * len(encoded))
    failed: tuple[int, bytes | None, pq.abc.PGresult] | None = None
    for (index, name), result in zip(commands, results, strict=True):
        if result.status in _OK:
            if name is not None:
                prepared.add(name)  # prepared, even if a later statement failed
        elif failed is None and result.status == pq.ExecStatus.FATAL_ERROR:
            failed = index, name, result
    if failed is None:
        return counts
    index, name, result = failed
    if result.error_field(pq.DiagnosticField.SQLSTATE) == _NO_SUCH_STATEMENT and not lost_is_error:
        raise _StatementsLost
    message = (result.error_message or b"").decode(errors="replace")
    if name is None and counts[index] and MISMATCH in message:
        counts[index] -= 1
        return counts
    raise pg_errors.error_from_result(result, encoding=connection.info.encoding)


def _communicate(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    """Send what libpq holds, then read every result up to the pipeline's sync (reading
    while sending, so that a large batch cannot fill both sockets' buffers)."""
    fileno = pgconn.socket
    while pgconn.flush():
        if _wait(fileno, write=True):
            pgconn.consume_input()
    results: list[pq.abc.PGresult] = []
    while True:
        while pgconn.is_busy():
            _wait(fileno, write=False)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            if pgconn.status != pq.ConnStatus.OK:
                error = pgconn.get_error_message()
                raise psycopg.OperationalError(f"the connection was lost: {error}")
            continue
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            return results
        results.append(result)


# The server closed its end (POLLRDHUP: Linux), or the socket failed.
_HANGUP = (
    select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)
    if hasattr(select, "poll")
    else 0
)


def connection_lost(connection: Any) -> bool:
    """True when an idle psycopg ``connection`` is known to be dead, found without a round
    trip: the server closed it (a restart, an administrator, an idle timeout), or it holds
    input it should not. A pool hands such connections out after a database restart, and the
    write path does not ping (it would cost a round trip per write)."""
    pgconn = connection.pgconn
    if pgconn.status != pq.ConnStatus.OK:
        return True
    if not hasattr(select, "poll"):  # Windows: nothing to tell without a round trip
        return False
    try:
        fileno = pgconn.socket
    except psycopg.OperationalError:
        return True
    poller = select.poll()
    poller.register(fileno, select.POLLIN | _HANGUP)
    ready = poller.poll(0)
    if not ready:
        return False
    if ready[0][1] & _HANGUP:  # the server closed its end
        return True
    try:  # something to read on an idle connection: a notice, or the reason it was closed
        pgconn.consume_input()
    except psycopg.OperationalError:
        return True
    return bool(pgconn.status != pq.ConnStatus.OK)


def _wait(fileno: int, *, write: bool) -> bool:
    """Wait until the socket is readable (or, with ``write``, writable); True if readable."""
    if not hasattr(select, "poll"):  # Windows: select() has no descriptor limit there
        readable, _, _ = select.select([fileno], [fileno] if write else [], [])
        return bool(readable)
    poller = select.poll()
    if not write:  # poll() returns once the socket is readable (or failed: then reading says)
        poller.register(fileno, select.POLLIN)
        poller.poll()
        return True
    poller.register(fileno, select.POLLIN | select.POLLOUT)
    return any(event & ~select.POLLOUT for _fd, event in poller.poll())

"""The event feed: why a reader that remembers the largest id it has seen never skips a row.

Four readers follow the ``events`` and ``signals`` tables by id: the live stream
(``GET /events``), the trigger service's signal cursor, the alert scanner's event cursor, and
the engine's wait steps. Each keeps "the largest id seen" and next asks for ids above it. That
is only lossless if ids become *visible* in increasing order:

* **SQLite** has one writer at a time (``BEGIN IMMEDIATE`` takes the database's write lock
  before anything is inserted, and holds it to the commit), so a row's id is allocated and
  committed before the next writer allocates one: ids are already in commit order.
* **PostgreSQL** allocates ids from a sequence at insert time, but a row becomes visible at
  commit. A transaction that takes id 10 and commits after another one took 11 and committed
  would be skipped forever by a reader that saw 11. So every transaction that inserts into a
  feed table first takes one transaction-scoped advisory lock (:data:`FEED_LOCK_SQL`), just
  before its feed rows and right before its commit. Ids are then allocated in lock order, and
  PostgreSQL releases the lock only after the commit is visible, so a reader that sees id
  ``n`` sees every committed id below it. Rows of transactions that roll back leave gaps;
  gaps are never filled later.

The lock is taken last (after every other row of the batch) so it is held only for the feed
inserts and the commit, and a holder never waits on another lock: no deadlock is possible.
Every writer of a feed table goes through :meth:`SQLStore.write` or :func:`lock_feed`.
:meth:`SQLStore.write` takes it in its first feed row's insert (:func:`locking_insert`), not
in a statement of its own: one statement fewer in every turn of the engine.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# "kfee": the advisory lock key that orders the event feed on PostgreSQL.
FEED_LOCK_KEY = 0x6B666565
FEED_LOCK_SQL = f"SELECT pg_advisory_xact_lock({FEED_LOCK_KEY})"


def lock_feed(conn: Connection) -> None:
    """Take the feed lock in ``conn``'s transaction (PostgreSQL; a no-op on SQLite).

    Call it right before inserting into ``events`` or ``signals`` and commit soon after: the
    lock is held until the transaction ends.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(FEED_LOCK_SQL)


_ONE_ROW = re.compile(r"(INSERT INTO [^(]+\([^)]*\)) VALUES \((.*)\)", re.DOTALL)


@functools.cache
def locking_insert(insert_sql: str) -> str:
    """``insert_sql`` (PostgreSQL's ``INSERT INTO t (...) VALUES (...)`` of one row) made to
    take the feed lock before its row draws its id: ``INSERT INTO t (...) SELECT ... WHERE
    pg_advisory_xact_lock(...) IS NOT NULL``. The condition names no column, so PostgreSQL
    runs it as the plan's one-time filter, before it makes the row (and calls ``nextval``
    for its id); the parameters take the columns' types, as in ``VALUES``. Raises ValueError
    for any other statement."""
    match = _ONE_ROW.fullmatch(insert_sql)
    if match is None:
        raise ValueError(f"not a one-row insert: {insert_sql!r}")
    columns, values = match.groups()
    return f"{columns} SELECT {values} WHERE pg_advisory_xact_lock({FEED_LOCK_KEY}) IS NOT NULL"

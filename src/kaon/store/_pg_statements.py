"""The statements of PostgreSQL's write path (:mod:`kaon.store._pg_write`) in PostgreSQL's form.

A plan step's SQL is compiled by SQLAlchemy for psycopg, with ``%(name)s`` parameters; libpq
takes ``$n`` ones, and a name to prepare the statement under. An update whose rows must match
(``checked``) is wrapped so that the server fails it, and with it the whole transaction,
unless it matched its row::

    WITH u AS (UPDATE ... RETURNING 1)
    SELECT CASE WHEN count(*) = 1 THEN 0
                ELSE CAST('kaon-mismatch:' || count(*) AS int) END FROM u

and so is the write's fence, a ``SELECT ... FOR SHARE`` of the run's row (``WITH u AS
(SELECT ...)``).

It runs once per row: every checked row matches one row by its key. The ``ELSE`` depends on
``count(*)``, so the planner cannot fold it into an error at plan time. (A set-based form,
``UPDATE ... FROM jsonb_populate_recordset(...)`` for all rows at once, was measured: it costs
more than it saves for the few rows of a turn, and its join plan, fixed while the tables are
small, degrades to a scan of the whole table as they grow.)
"""

from __future__ import annotations

import re
import threading
from typing import NamedTuple

from psycopg.adapt import PyFormat

MISMATCH = "kaon-mismatch:"  # the failed cast's text: the rows the update matched follow
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


class PgStatement(NamedTuple):
    """A statement ready for libpq: the name it is prepared under, its text, the plan row's
    key bound to each ``$n``, the format psycopg encodes each in, and the formats libpq is
    told (None: all text). A ``$n::FLOAT8`` (a double, see
    :func:`kaon.store._queries.compiled_for`) is sent in binary, the rest as text."""

    name: bytes
    query: bytes
    params: tuple[str, ...]
    formats: tuple[PyFormat, ...]
    wire: tuple[int, ...] | None


_cache: dict[tuple[str, bool], PgStatement] = {}
_lock = threading.Lock()


def pg_statement(sql: str, checked: bool) -> PgStatement:
    """``sql`` in ``$n`` form; when ``checked``, it fails unless it matches one row."""
    key = (sql, checked)
    found = _cache.get(key)
    if found is not None:
        return found
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] is None:
            return "%"
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    # One line (SQLAlchemy breaks a SELECT's clauses; values are parameters, never literals).
    query = _PLACEHOLDER.sub(number, sql).replace("\n", " ")
    if checked:  # an update returns what it matched; a read (the fence) is what it matched
        rows = query if query.startswith("SELECT") else f"{query} RETURNING 1"
        query = (
            f"WITH u AS ({rows}) SELECT CASE WHEN count(*) = 1 THEN 0 "
            f"ELSE CAST('{MISMATCH}' || count(*) AS int) END FROM u"
        )
    with _lock:  # names are unique per process, whichever thread makes a statement first
        found = _cache.get(key)
        if found is None:
            name = f"kaon_w{len(_cache)}".encode()
            binary = [f"${n}::FLOAT8" in query for n in range(1, len(names) + 1)]
            formats = tuple(PyFormat.BINARY if b else PyFormat.TEXT for b in binary)
            wire = tuple(int(b) for b in binary) if any(binary) else None
            found = PgStatement(name, query.encode(), tuple(names), formats, wire)
            _cache[key] = found
    return found

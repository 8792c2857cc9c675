"""The SQLite query plans of what a read sends: how the store's tests check that a read
uses an index in the order it reads, instead of scanning or sorting what it does not show."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kaon.store.sql import SQLStore


def query_plans(store: SQLStore, path: Path, read: Callable[[], Any]) -> list[str]:
    """The query plan lines of every SELECT that ``read`` sends to the SQLite file ``path``."""
    sent: list[tuple[str, Any]] = []
    lite = store._lite
    assert lite is not None  # a SQLite file: statements run on sqlite3 (kaon.store._lite)
    rows = lite.rows

    def grab(key: Any, params: Any, cursor: Any = None) -> Any:
        sent.append(lite.statement(key).bound(params))
        return rows(key, params, cursor)

    lite.rows = grab  # type: ignore[method-assign]
    try:
        read()
    finally:
        del lite.rows
    raw = sqlite3.connect(path)
    try:
        return [
            row[3]
            for statement, parameters in sent
            if not statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
            for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    finally:
        raw.close()

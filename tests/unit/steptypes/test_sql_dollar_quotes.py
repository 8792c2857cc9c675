"""A DuckDB dollar-quoted string (``$$...$$``, ``$tag$...$tag$``) is a literal: the ``$name``
inside it is text, and its tag no parameter; a query using one is no definition error."""

from __future__ import annotations

import duckdb

from kaon.errors import Location
from kaon.steptypes.sql import duckdb_parameter_names, unbound_parameter_problem

QUERY = "select $$costs $price$$ as a, $tag$it's $y$tag$ as b, $k as c"


def test_dollar_quoted_text_names_no_parameter() -> None:
    assert duckdb_parameter_names(QUERY) == ["k"]
    assert duckdb_parameter_names("select $a$ $b $a$, $$x$$ || $c") == ["c"]
    assert duckdb_parameter_names("select $x, $") == ["x"]  # no closing: as before


def test_a_query_with_dollar_quotes_runs_and_is_no_problem() -> None:
    config = {"query": QUERY, "params": {"k": 1}, "result": "row"}
    assert unbound_parameter_problem("q", config, (), Location()) is None
    row = duckdb.connect().execute(QUERY, {"k": 1}).fetchall()
    assert row == [("costs $price", "it's $y", 1)]

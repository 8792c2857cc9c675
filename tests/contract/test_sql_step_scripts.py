"""A ``sql`` step's script on a SQLAlchemy URL (SQLite and PostgreSQL): one statement at a time
in one transaction, each bound to the parameters it names, the last one's result returned."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.errors import StepError
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType


def run(url: str, query: str, **config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda _e: None)
    return SqlStepType().run(ctx, {"url": url, "query": query, **config}, {})


SCRIPT = """
create table scores (name text, score integer);  -- a comment; with a semicolon
insert into scores values ('ann', :low), ('bob', :high);
insert into scores values ('a;b', 3);
select count(*) from scores where score >= :low
"""


def test_a_script_runs_statement_by_statement_and_returns_the_last_result(url: str) -> None:
    assert run(url, SCRIPT, params={"low": 2, "high": 9}, result="scalar") == 3
    names = run(url, "select name from scores order by name", result="table")
    assert list(names["name"]) == ["a;b", "ann", "bob"]


def test_a_failing_statement_rolls_the_whole_script_back(url: str) -> None:
    script = "create table t (x integer); insert into t values (1); insert into nowhere values (2)"
    with pytest.raises(StepError) as raised:
        run(url, script, result="none")
    assert raised.value.error_type == "SQLError"
    assert "statement 3 of 3" in raised.value.message
    with pytest.raises(StepError):  # the table was not made
        run(url, "select * from t", result="table")


def test_a_script_of_only_comments_is_an_error(url: str) -> None:
    with pytest.raises(StepError, match="no SQL statement"):
        run(url, "-- nothing; here\n/* nor; here */", result="scalar")
    assert run(url, "-- nothing here", result="none") is None


def test_a_sqlite_trigger_body_is_one_statement(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    script = """
    create table t (x integer); create table log (x integer);
    create trigger copy after insert on t begin insert into log values (new.x); end;
    insert into t values (:x);
    select count(*) from log
    """
    assert run(url, script, params={"x": 5}, result="scalar") == 1

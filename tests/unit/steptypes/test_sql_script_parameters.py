"""A DuckDB script (several statements) binds each statement's own ``$name`` parameters:
DuckDB refuses parameters anywhere but in the last statement of one ``execute``. A query
with no statement at all (empty, only comments) is a ``SQLError`` naming that, not a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaon.errors import StepError
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType


def run(inputs: dict[str, Any] | None = None, **config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    return SqlStepType().run(ctx, config, inputs or {})


def test_parameters_in_every_statement_of_a_script_are_bound() -> None:
    script = (
        "create table t as select $low as v;\n"
        "insert into t values ($high);\n"
        "select sum(v) as total, $label as label from t where v >= $low"
    )
    row = run({"high": 5}, query=script, params={"low": 2, "label": "x"}, result="row")
    assert row == {"total": 7, "label": "x"}


def test_a_script_file_writing_to_a_database_binds_its_parameters(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'db.duckdb'}"
    script = "create table if not exists t(i int);\ninsert into t values ($i);\n"
    for i in (1, 2):
        assert run({"i": i}, query=script, url=url, result="none") is None
    assert run(query="select sum(i) from t", url=url, result="scalar") == 3


@pytest.mark.parametrize("query", ["", "  \n", "-- nothing yet\n", "/* todo */"])
@pytest.mark.parametrize("result", ["table", "scalar", "row"])
def test_a_query_without_a_statement_is_a_sql_error(query: str, result: str) -> None:
    with pytest.raises(StepError) as info:
        run(query=query, result=result)
    assert info.value.error_type == "SQLError"
    assert "no SQL statement" in info.value.message


def test_a_query_without_a_statement_returns_nothing_for_result_none() -> None:
    assert run(query="-- nothing yet\n", result="none") is None

"""An input that is a list of tables (a foreach's output: one DataFrame per item) read by
a DuckDB query fails naming it and what it is: DuckDB said "Table with name parts does not
exist!", of an input the step was given. A list the query does not read is left alone."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from kaon.errors import StepError
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType

PARTS = [pd.DataFrame({"v": [1]}), pd.DataFrame({"v": [2]})]


def run(query: str, inputs: dict[str, Any]) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    return SqlStepType().run(ctx, {"query": query, "result": "scalar"}, inputs)


def test_a_list_of_tables_read_as_a_table_is_named() -> None:
    with pytest.raises(StepError) as info:
        run("select sum(v) from parts", {"parts": PARTS})
    assert info.value.error_type == "SQLError"
    message = info.value.message
    assert message.startswith("input 'parts' is a list of 2 tables")
    assert "Python step" in message


def test_a_list_the_query_does_not_read_is_left_alone() -> None:
    assert run("select 1 -- parts come later", {"parts": PARTS}) == 1

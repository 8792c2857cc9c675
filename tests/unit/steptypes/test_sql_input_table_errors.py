"""A DataFrame input DuckDB cannot read as a table fails naming the input (and the column
whose type it does not know): the message was DuckDB's alone ("Data type 'period[M]' not
recognized", "Need a DataFrame with at least one column"), with no word of which of the
step's inputs, or which column, it was about."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from kaon.errors import StepError
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType

GOOD = pd.DataFrame({"a": [1]})


def run(inputs: dict[str, Any]) -> StepError:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    with pytest.raises(StepError) as info:
        SqlStepType().run(ctx, {"query": "select 1"}, inputs)
    return info.value


def test_a_column_of_an_unknown_type_names_the_input_and_the_column() -> None:
    months = pd.DataFrame({"a": [1, 2], "month": pd.period_range("2024-01", periods=2, freq="M")})
    error = run({"users": GOOD, "months": months})
    assert error.error_type == "SQLError"
    assert error.message.startswith("input 'months' (column 'month'): ")
    assert "period[M]" in error.message


def test_a_frame_without_columns_names_the_input() -> None:
    error = run({"users": GOOD, "empty": pd.DataFrame(index=range(3))})
    assert error.error_type == "SQLError"
    assert error.message.startswith("input 'empty': ")
    assert "no columns" in error.message

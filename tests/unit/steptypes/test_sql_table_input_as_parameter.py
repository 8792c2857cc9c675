"""A ``$name`` naming a table input (a DataFrame) fails saying so and how to read it: the
validation takes any input for a value, and DuckDB's message ("Values were not provided
for the following parameters: t") left the author looking for a missing value."""

from __future__ import annotations

import pandas as pd
import pytest

from kaon.errors import StepError
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType


def test_a_table_input_used_as_a_parameter_is_named() -> None:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    query = "select count(*) from users;\nselect * from range(3) where range < $users"
    with pytest.raises(StepError) as info:
        SqlStepType().run(ctx, {"query": query}, {"users": pd.DataFrame({"a": [1]})})
    assert info.value.error_type == "SQLError"
    message = info.value.message
    assert "$users" in message and "table input" in message and "from users" in message

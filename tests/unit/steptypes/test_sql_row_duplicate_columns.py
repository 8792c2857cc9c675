"""A ``row`` result whose columns share a name (``select * from a join b on a.id = b.id``)
fails naming the column: the row's dict kept the last value of each name, silently
dropping the others (``select 1 as a, 2 as a`` gave ``{"a": 2}``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaon.errors import StepError
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType


@pytest.mark.parametrize("url", ["duckdb:///:memory:", "sqlite"])
def test_a_row_with_two_columns_of_one_name_is_an_error(url: str, tmp_path: Path) -> None:
    if url == "sqlite":
        url = f"sqlite:///{tmp_path / 'lite.db'}"
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    config = {"query": "select 1 as a, 2 as a, 3 as b", "url": url, "result": "row"}
    with pytest.raises(StepError) as info:
        SqlStepType().run(ctx, config, {})
    assert info.value.error_type == "SQLResultError"
    assert "'a'" in info.value.message and "distinct" in info.value.message

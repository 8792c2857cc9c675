"""A file input (an upstream step's ``pathlib.Path`` artifact) is bound as its path string:
``read_parquet($p)`` failed with DuckDB's "Unable to transform python value of type
<class 'pathlib.PosixPath'>", and SQLite's driver refused it too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType


def run(inputs: dict[str, Any], **config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    return SqlStepType().run(ctx, config, inputs)


def test_a_path_input_is_bound_as_its_path(tmp_path: Path) -> None:
    parquet = tmp_path / "part.parquet"
    pd.DataFrame({"a": [1, 2, 3]}).to_parquet(parquet)
    total = run({"p": parquet}, query="select sum(a) from read_parquet($p)", result="scalar")
    assert total == 6


def test_a_path_input_is_bound_on_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lite.db'}"
    value = run({"p": tmp_path / "x.csv"}, query="select :p", url=url, result="scalar")
    assert value == str(tmp_path / "x.csv")

"""A ``table`` result keeps DECIMAL columns exact, as ``decimal.Decimal`` values (stored as
Parquet decimals): DuckDB's ``df()`` turns them into float64, so a money column of a
Python step's Decimals passed through ``select *`` came back rounded (12345678901234567.89
became 1.2345678901234568e+16). Every other column converts as before."""

from __future__ import annotations

import decimal
from pathlib import Path
from typing import Any

import pandas as pd

from kaon.artifacts import open_artifact_store
from kaon.model.values import ArtifactRef
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType

MONEY = decimal.Decimal("12345678901234567.89")


def run(inputs: dict[str, Any] | None = None, **config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    return SqlStepType().run(ctx, config, inputs or {})


def test_a_decimal_column_stays_exact_among_the_others() -> None:
    frame = run(
        query="select 1 as i, m, 'x' as s, null::decimal(5,2) as n, 2.5::double as f "
        "from (values (12345678901234567.89::decimal(38,2)), (null)) v(m)"
    )
    assert list(frame.columns) == ["i", "m", "s", "n", "f"]
    assert frame["m"].tolist()[0] == MONEY and frame["m"].tolist()[1] is None
    assert frame["n"].tolist() == [None, None]
    plain = run(query="select 1 as i, 'x' as s, 2.5::double as f from range(2)")
    for column in ("i", "s", "f"):
        assert frame[column].dtype == plain[column].dtype


def test_decimals_of_an_input_round_trip_through_parquet(tmp_path: Path) -> None:
    source = pd.DataFrame(
        {
            "k": ["a", "b"],
            "m": [MONEY, decimal.Decimal("0.10")],
            "c": pd.Categorical(["x", None]),
            "n": pd.array([1, None], dtype="Int64"),
        }
    )
    frame = run({"t": source}, query="select * from t")
    assert frame["m"].tolist() == [MONEY, decimal.Decimal("0.10")]
    without = run({"t": source.drop(columns="m")}, query="select * from t")
    for column in ("k", "c", "n"):
        assert frame[column].dtype == without[column].dtype, column
    store = open_artifact_store(str(tmp_path))
    ref = store.put(frame, name="return")
    assert isinstance(ref, ArtifactRef)
    stored = store.get(ref)
    assert stored["m"].tolist() == [MONEY, decimal.Decimal("0.10")]

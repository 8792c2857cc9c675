"""A DataFrame input's named index (``groupby(...).sum()``, ``set_index``) and each named
level of a MultiIndex are columns of its table: DuckDB reads a frame's columns only, so the
keys were silently dropped and ``select k, v from grouped`` failed ("Referenced column "k"
not found"), or a ``select *`` lost them."""

from __future__ import annotations

from typing import Any

import pandas as pd

from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType


def run(inputs: dict[str, Any], **config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    return SqlStepType().run(ctx, config, inputs)


def test_a_named_index_is_a_column() -> None:
    grouped = pd.DataFrame({"k": ["a", "a", "b"], "v": [1, 2, 3]}).groupby("k").sum()
    frame = run({"grouped": grouped}, query="select k, v from grouped order by k")
    assert frame.to_dict("records") == [{"k": "a", "v": 3}, {"k": "b", "v": 3}]


def test_the_named_levels_of_a_multiindex_are_columns() -> None:
    index = pd.MultiIndex.from_tuples([("x", 1), ("y", 2)], names=["region", "year"])
    table = pd.DataFrame({"v": [10, 20]}, index=index)
    frame = run({"t": table}, query="select * from t order by year")
    assert list(frame.columns) == ["region", "year", "v"]
    assert frame.to_dict("records") == [
        {"region": "x", "year": 1, "v": 10},
        {"region": "y", "year": 2, "v": 20},
    ]


def test_an_unnamed_index_is_no_column_and_the_input_is_left_alone() -> None:
    plain = pd.DataFrame({"v": [1, 2, 3]}).iloc[[0, 2]]
    keyed = pd.DataFrame({"v": [1]}, index=pd.Index(["a"], name="k"))
    frame = run({"plain": plain, "keyed": keyed}, query="select * from plain")
    assert list(frame.columns) == ["v"]
    assert keyed.index.name == "k" and list(keyed.columns) == ["v"]


def test_an_index_named_as_a_column_keeps_the_column() -> None:
    table = pd.DataFrame({"k": [5], "v": [1]}, index=pd.Index(["a"], name="k"))
    frame = run({"t": table}, query="select * from t")
    assert frame.to_dict("records") == [{"k": 5, "v": 1}]

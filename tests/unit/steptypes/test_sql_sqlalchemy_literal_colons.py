"""A ``:word`` inside a string literal, a quoted identifier or a comment of a query run
through SQLAlchemy is text, not a parameter: SQLAlchemy's ``text()`` took every ``:name``
for one, so ``select 'see :note here'`` failed with "A value is required for bind
parameter 'note'" (a ``$name`` in a DuckDB literal was always text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType


def run(tmp_path: Path, **config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    url = f"sqlite:///{tmp_path / 'lite.db'}"
    return SqlStepType().run(ctx, {"url": url, **config}, {})


def test_colons_in_literals_and_comments_are_text(tmp_path: Path) -> None:
    query = (
        "select 'see :note here' as v, -- at :noon\n"
        " :x as \"col :y\", /* :z */ 'already \\:escaped' as w"
    )
    row = run(tmp_path, query=query, params={"x": 1}, result="row")
    assert row == {"v": "see :note here", "col :y": 1, "w": "already :escaped"}  # as before


def test_parameters_outside_literals_are_still_bound(tmp_path: Path) -> None:
    hostile = "x'; drop table t; --"
    value = run(tmp_path, query="select :v || ':v'", params={"v": hostile}, result="scalar")
    assert value == hostile + ":v"

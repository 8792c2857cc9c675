"""A ``row`` or ``scalar`` result holding a list, struct, map or array stays JSON all the
way down: the dates, decimals, UUIDs, intervals and bytes inside one became plain values
only at the top level, so such an output was stored as a pickle, not JSON."""

from __future__ import annotations

import json
from typing import Any

from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType, json_scalar


def run(**config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    return SqlStepType().run(ctx, config, {})


QUERY = """
select {'day': date '2024-01-01', 'price': 1.50::decimal(4,2)} as s,
       [date '2024-01-02', null] as l,
       map {1: interval 1 day} as m,
       ['ab'::blob] as b,
       ([1, 2])::int[2] as arr,
       {'id': '00000000-0000-0000-0000-000000000001'::uuid} as u
"""


def test_nested_values_of_a_row_are_json() -> None:
    row = run(query=QUERY, result="row")
    assert row == {
        "s": {"day": "2024-01-01", "price": 1.5},
        "l": ["2024-01-02", None],
        "m": {"1": 86400.0},
        "b": ["6162"],
        "arr": [1, 2],
        "u": {"id": "00000000-0000-0000-0000-000000000001"},
    }
    assert json.loads(json.dumps(row)) == row


def test_a_nested_scalar_is_json() -> None:
    value = run(query="select [{'d': date '2024-03-04'}]", result="scalar")
    assert value == [{"d": "2024-03-04"}]


def test_json_scalar_keeps_plain_values() -> None:
    assert json_scalar({"a": [1, "x", None, 2.5, True]}) == {"a": [1, "x", None, 2.5, True]}

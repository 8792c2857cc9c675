"""An expression reading a field of a step output that has no fields (a single value, a
list) says so, naming the path and the value, where CEL said "No such overload ... mixing
int with uint or double" or "Unexpected type: got 'string', want 'int|uint'"."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.errors import ExpressionError, Location
from kaon.model.expressions import compile_expression

LOC = Location("wf.yaml", 8, "steps[1].inputs.v")


def evaluate(source: str, steps: dict[str, Any]) -> Any:
    return compile_expression(source, LOC).evaluate({"steps": steps})


def test_a_field_of_a_single_value_output() -> None:
    """A subworkflow (or task) whose output is its sink's single value: ``steps.sub.d``."""
    with pytest.raises(ExpressionError) as info:
        evaluate("steps.sub.d", {"sub": 6})
    message = str(info.value)
    assert "reads steps.sub.d, but steps.sub is an int (6), which has no field 'd'" in message
    assert "uint" not in message
    assert message.startswith("wf.yaml:8: steps[1].inputs.v: expression 'steps.sub.d'")


def test_a_field_inside_a_larger_expression() -> None:
    with pytest.raises(ExpressionError, match=r"steps\.t is an int \(6\), which has no field"):
        evaluate("steps.t.d > 1", {"t": 6})


def test_a_field_of_a_nested_string() -> None:
    with pytest.raises(ExpressionError, match=r"steps\.t\.d is a str \('x'\), which has no f"):
        evaluate("steps.t.d.e", {"t": {"d": "x"}})


def test_a_field_of_a_list_output() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("steps.t.d", {"t": [1, 2]})
    message = str(info.value)
    assert "steps.t is a list of 2 items ([1, 2]), which has no field 'd'" in message
    assert "int|uint" not in message


def test_a_long_value_is_shortened() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("steps.t.d", {"t": "y" * 500})
    assert len(str(info.value)) < 400


def test_fields_that_exist_still_evaluate_and_missing_keys_keep_their_message() -> None:
    assert evaluate("steps.t.d.e + 1", {"t": {"d": {"e": 1}}}) == 2
    with pytest.raises(ExpressionError, match="no such key 'd'"):
        evaluate("steps.t.d + 1", {"t": {"a": 1}})
    with pytest.raises(ExpressionError, match=r"reads a field of steps\.t, which is null"):
        evaluate("steps.t.d + 1", {"t": None})

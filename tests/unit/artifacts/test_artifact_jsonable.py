"""The cheap JSON check used on the hot path of every step."""

from __future__ import annotations

import json
import timeit
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaon.artifacts.jsonable import dumps_compact, inline_json, is_literal_json, is_plain_json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(value=json_values, limit=st.integers(min_value=0, max_value=400))
def test_inline_iff_compact_json_fits(value: Any, limit: int) -> None:
    assert inline_json(value, limit) == (len(dumps_compact(value)) <= limit)


def test_rejects_non_json_exact_types() -> None:
    class MyStr(str):
        pass

    for value in (MyStr("x"), {1: 2}, {"a": {1, 2}}, b"bytes", float("nan"), [float("-inf")]):
        assert not inline_json(value, 10_000)
        assert not is_plain_json(value)
        assert not is_literal_json(value)


def test_tuples_are_literal_json_not_plain_json() -> None:
    value = {"a": (1, (2,))}
    assert inline_json(value, 10_000)
    assert is_literal_json(value)
    assert not is_plain_json(value)  # its JSON text gives lists back


def test_too_deep_is_not_json() -> None:
    deep: Any = 1
    for _ in range(150):
        deep = [deep]
    assert not is_literal_json(deep)
    json.dumps(deep)  # json itself could, but we send such values to a blob


def test_small_values_take_microseconds() -> None:
    value = {"accuracy": 0.93, "rows": 1_000, "model": "rf", "tags": ["a", "b"]}
    number = 2_000
    seconds = min(timeit.repeat(lambda: inline_json(value, 16_384), number=number, repeat=3))
    assert seconds / number < 50e-6  # ~2 us on a laptop; generous for slow CI


@pytest.mark.parametrize(("value", "limit"), [(None, 4), (True, 4), (False, 5), (None, 3)])
def test_null_and_booleans_are_inline_when_their_text_fits(value: Any, limit: int) -> None:
    """The fast path for them took every limit under 5 for too small: ``null`` is 4 bytes."""
    assert inline_json(value, limit) == (len(dumps_compact(value)) <= limit)

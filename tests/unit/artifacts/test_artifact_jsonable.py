"""The cheap JSON check used on the hot path of every step."""

from __future__ import annotations

import json
import timeit
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kaon.artifacts.jsonable import dumps_compact, inline_json, normalize_json

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
    inline, normal = inline_json(value, limit)
    assert inline == (len(dumps_compact(value)) <= limit)
    if inline:
        assert normal == value


def test_rejects_non_json_exact_types() -> None:
    class MyStr(str):
        pass

    for value in (MyStr("x"), {1: 2}, {"a": {1, 2}}, b"bytes", float("nan"), [float("-inf")]):
        assert inline_json(value, 10_000) == (False, None)
        assert normalize_json(value) == (False, None)


def test_normalizes_tuples_without_copying_otherwise() -> None:
    plain = {"a": [1, 2]}
    assert normalize_json(plain)[1] is plain
    assert normalize_json({"a": (1, (2,))}) == (True, {"a": [1, [2]]})


def test_too_deep_is_not_json() -> None:
    deep: Any = 1
    for _ in range(150):
        deep = [deep]
    assert normalize_json(deep) == (False, None)
    json.dumps(deep)  # json itself could, but we send such values to a blob


def test_small_values_take_microseconds() -> None:
    value = {"accuracy": 0.93, "rows": 1_000, "model": "rf", "tags": ["a", "b"]}
    number = 2_000
    seconds = min(timeit.repeat(lambda: inline_json(value, 16_384), number=number, repeat=3))
    assert seconds / number < 50e-6  # ~2 us on a laptop; generous for slow CI

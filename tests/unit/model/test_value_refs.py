"""Value references: a literal holding tuples encodes where they are and decodes to them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaon.model.values import Literal, decode_ref, encode_ref, select, tuple_paths, with_tuples

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=20,
)


@given(value=values)
def test_a_literal_decodes_to_its_value_through_json_text(value: Any) -> None:
    data = json.loads(json.dumps(encode_ref(Literal(value))))
    decoded = decode_ref(data).value  # type: ignore[union-attr]
    assert decoded == value
    assert repr(decoded) == repr(value)  # (1, 2) == [1, 2] is False, but be explicit


def test_a_value_without_tuples_encodes_as_before() -> None:
    assert encode_ref(Literal({"a": [1, 2]})) == {"t": "lit", "v": {"a": [1, 2]}}
    assert tuple_paths("text") == []


def test_tuple_paths_name_each_tuple_outermost_first() -> None:
    assert tuple_paths((1, [(2,), {"k": ()}])) == [[], [1, 0], [1, 1, "k"]]


def test_a_tuple_path_to_no_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a list"):
        with_tuples({"a": 1}, [["a"]])
    with pytest.raises(ValueError, match="leads nowhere"):
        with_tuples({"a": [1]}, [["b"]])


def test_selecting_into_a_tuple_keeps_the_items() -> None:
    assert select(Literal(((1, 2), 3)), 0) == Literal((1, 2))

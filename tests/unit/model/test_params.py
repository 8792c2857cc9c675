from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaon.errors import ParameterError
from kaon.model.params import bind_params, coerce_string, parse_assignments
from kaon.model.specs import Expr, GraphSpec, ParamSpec, ParamType, TaskSpec, WorkflowSpec


def spec(*params: ParamSpec) -> WorkflowSpec:
    return WorkflowSpec(name="w", graph=GraphSpec(steps=(TaskSpec(id="a"),)), params=params)


FLOW = spec(
    ParamSpec("learning_rate", ParamType.FLOAT, 0.1),
    ParamSpec("folds", ParamType.INT),
    ParamSpec("regions", ParamType.LIST, ["eu"]),
    ParamSpec("verbose", ParamType.BOOL, False),
)


def test_defaults_fill_in_and_order_follows_declaration() -> None:
    bound = bind_params(FLOW, {"folds": 5})
    assert bound == {"learning_rate": 0.1, "folds": 5, "regions": ["eu"], "verbose": False}
    assert list(bound) == ["learning_rate", "folds", "regions", "verbose"]


def test_mutable_defaults_are_copied() -> None:
    bound = bind_params(FLOW, {"folds": 5})
    bound["regions"].append("us")
    assert bind_params(FLOW, {"folds": 5})["regions"] == ["eu"]


def test_int_accepted_for_float_and_tuple_for_list() -> None:
    bound = bind_params(FLOW, {"folds": 2, "learning_rate": 1, "regions": ("a", "b")})
    assert bound["learning_rate"] == 1.0 and isinstance(bound["learning_rate"], float)
    assert bound["regions"] == ["a", "b"]


def test_an_int_default_of_a_float_is_a_float_as_a_given_int_is() -> None:
    # `x: {type: float, default: 2}`: the step saw the int 2 by default and 2.0 with
    # `-p x=2`, so the two runs' cache keys differed and the step's type(x) did.
    flow = spec(ParamSpec("x", ParamType.FLOAT, 2), ParamSpec("items", ParamType.LIST, ("a",)))
    default, given = bind_params(flow, {}), bind_params(flow, {"x": "2"}, from_strings=True)
    assert default == given == {"x": 2.0, "items": ["a"]}
    assert isinstance(default["x"], float)
    assert json.dumps(default) == json.dumps(given)


def test_all_problems_reported_together() -> None:
    with pytest.raises(ParameterError) as caught:
        bind_params(FLOW, {"learning_rat": 0.2, "verbose": "yes", "regions": "eu"})
    problems = {p.location.field: p.message for p in caught.value.problems}
    assert set(problems) == {
        "params.learning_rat",
        "params.folds",
        "params.verbose",
        "params.regions",
    }
    assert "did you mean 'learning_rate'" in problems["params.learning_rat"]
    assert "missing required parameter 'folds'" in problems["params.folds"]
    assert "must be of type bool" in problems["params.verbose"]


def test_numpy_numbers_are_taken_as_the_python_number_of_the_same_value() -> None:
    # A notebook's values are often numpy scalars: np.int64(3) for an int parameter was
    # refused ("must be of type int, got int64").
    np = pytest.importorskip("numpy")
    bound = bind_params(FLOW, {"folds": np.int64(3), "learning_rate": np.float32(0.5)})
    assert (bound["folds"], type(bound["folds"])) == (3, int)
    assert (bound["learning_rate"], type(bound["learning_rate"])) == (0.5, float)
    assert json.dumps(bound)  # plain Python values: storable as they are
    for wrong in (np.bool_(True), np.float64(2.0), np.uint64(2**63)):
        with pytest.raises(ParameterError, match=r"params\.folds"):
            bind_params(FLOW, {"folds": wrong})


def test_bool_is_not_an_int() -> None:
    with pytest.raises(ParameterError, match="must be of type int"):
        bind_params(FLOW, {"folds": True})


def test_an_int_past_64_bits_is_refused_not_made_a_float() -> None:
    """Expressions (CEL) have 64-bit ints: a larger one became a float in them, and failed
    far from the parameter (``float + int``)."""
    assert bind_params(FLOW, {"folds": 2**63 - 1})["folds"] == 2**63 - 1
    with pytest.raises(ParameterError, match=r"params\.folds: .*an int of 64 bits"):
        bind_params(FLOW, {"folds": 2**63})
    with pytest.raises(ParameterError, match="64 bits"):
        bind_params(FLOW, {"folds": "99999999999999999999999999"}, from_strings=True)


def test_unknown_parameter_without_declared_ones() -> None:
    with pytest.raises(ParameterError, match="declares no parameters"):
        bind_params(spec(), {"x": 1})


def test_from_strings_coerces_to_declared_types() -> None:
    given_values = {"folds": "7", "learning_rate": "0.5", "regions": '["a"]', "verbose": "Yes"}
    bound = bind_params(FLOW, given_values, from_strings=True)
    assert bound == {"learning_rate": 0.5, "folds": 7, "regions": ["a"], "verbose": True}


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("42", ParamType.INT, 42),
        (" -3 ", ParamType.INT, -3),
        ("1e3", ParamType.FLOAT, 1000.0),
        ("no", ParamType.BOOL, False),
        ("1", ParamType.BOOL, True),
        ("TRUE", ParamType.BOOL, True),
        ('{"a": 1}', ParamType.DICT, {"a": 1}),
        ("[1, 2]", ParamType.ANY, [1, 2]),
        ("not json", ParamType.ANY, "not json"),
        ("12", ParamType.STR, "12"),
    ],
)
def test_coerce_string(text: str, kind: ParamType, expected: Any) -> None:
    assert coerce_string(text, kind) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("1.5", ParamType.INT),
        ("abc", ParamType.FLOAT),
        ("inf", ParamType.FLOAT),
        ("maybe", ParamType.BOOL),
        ("{}", ParamType.LIST),
        ("[", ParamType.DICT),
    ],
)
def test_coerce_string_errors(text: str, kind: ParamType) -> None:
    with pytest.raises(ValueError, match="expected"):
        coerce_string(text, kind)


def test_from_strings_errors_name_the_parameter() -> None:
    with pytest.raises(ParameterError) as caught:
        bind_params(FLOW, {"folds": "five"}, from_strings=True)
    problem = caught.value.problems[0]
    assert problem.location.field == "params.folds"
    assert "expected an int, got 'five'" in problem.message


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b = x=y", "c="]) == {"a": "1", "b": " x=y", "c": ""}
    with pytest.raises(ParameterError) as caught:
        parse_assignments(["novalue", "=3", "a=1", "a=2"])
    text = str(caught.value)
    assert "expected key=value, got 'novalue'" in text
    assert "missing parameter name" in text
    assert "given twice" in text


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
VALUES: dict[ParamType, st.SearchStrategy[Any]] = {
    ParamType.STR: st.text(),
    ParamType.INT: st.integers(min_value=-(2**63), max_value=2**63 - 1),  # CEL's int
    ParamType.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    ParamType.BOOL: st.booleans(),
    ParamType.LIST: st.lists(json_scalars, max_size=4),
    ParamType.DICT: st.dictionaries(st.text(max_size=4), json_scalars, max_size=4),
    ParamType.ANY: st.lists(json_scalars, max_size=3) | st.integers() | st.booleans(),
}


def to_cli(value: Any, kind: ParamType) -> str:
    if kind is ParamType.STR:
        return str(value)
    if kind is ParamType.BOOL:
        return "true" if value else "false"
    if kind in (ParamType.INT, ParamType.FLOAT):
        return repr(value)
    return json.dumps(value)


@given(st.data(), st.sampled_from(ParamType))
@settings(max_examples=300, deadline=None)
def test_string_coercion_round_trip(data: st.DataObject, kind: ParamType) -> None:
    value = data.draw(VALUES[kind])
    workflow = spec(ParamSpec("p", kind))
    bound = bind_params(workflow, {"p": to_cli(value, kind)}, from_strings=True)
    assert bound == {"p": value}
    assert type(bound["p"]) is type(value)


def test_nullable_params_take_null_and_choices_are_the_only_values() -> None:
    flow = spec(
        ParamSpec("lr", ParamType.FLOAT, None, nullable=True),
        ParamSpec("k", ParamType.FLOAT, 1, choices=(1, 2.5)),
        ParamSpec("flag", ParamType.ANY, 1, choices=(1, "x")),
        ParamSpec("name", ParamType.STR, "a", nullable=True, choices=("a", "b")),
    )
    assert bind_params(flow, {}) == {"lr": None, "k": 1.0, "flag": 1, "name": "a"}
    assert bind_params(flow, {"lr": "null", "k": "2.5", "name": "null"}, from_strings=True) == {
        "lr": None,
        "k": 2.5,
        "flag": 1,
        "name": None,
    }
    with pytest.raises(ParameterError) as caught:
        bind_params(flow, {"lr": "x", "k": 2, "flag": True, "name": "c"})
    assert [p.message for p in caught.value.problems] == [
        "parameter 'lr' must be of type float or null, got str 'x'",
        "parameter 'k' must be one of 1, 2.5; got 2.0",
        "parameter 'flag' must be one of 1, 'x'; got True",  # True is not the choice 1
        "parameter 'name' must be one of 'a', 'b'; got 'c'",
    ]
    with pytest.raises(ParameterError):  # null only where the parameter is nullable
        bind_params(flow, {"k": None})


def test_a_computed_default_outside_the_choices_is_refused() -> None:
    flow = spec(
        ParamSpec("k", ParamType.INT, 2),
        ParamSpec("width", ParamType.INT, Expr("params.k * 2"), choices=(2, 8)),
    )
    assert bind_params(flow, {"k": 4})["width"] == 8
    with pytest.raises(ParameterError, match=r"computed default of parameter 'width' must be one"):
        bind_params(flow, {})

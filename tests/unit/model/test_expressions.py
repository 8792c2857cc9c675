from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaon.errors import ExpressionError, Location
from kaon.model.expressions import (
    MAX_SOURCE_LENGTH,
    compile_expression,
    parse_template,
    to_plain,
    truthy,
)
from kaon.model.specs import Const, Expr

LOC = Location("wf.yaml", 12, "steps.train.when")


def evaluate(source: str, **variables: Any) -> Any:
    return compile_expression(source, LOC).evaluate(variables)


# -- compile_expression ------------------------------------------------------------------


def test_compile_exposes_source_variables_and_refs() -> None:
    expr = compile_expression("steps.prepare.train + steps['b-c'].x + params.k")
    assert expr.source == "steps.prepare.train + steps['b-c'].x + params.k"
    assert expr.variables == {"steps", "params"}
    assert expr.step_refs == {"prepare", "b-c"}
    assert expr.param_refs == {"k"}
    assert not expr.steps_dynamic


def test_compile_is_cached() -> None:
    assert compile_expression("params.k + 1", LOC) is compile_expression("params.k + 1", LOC)


def test_step_refs_ignore_string_literals_and_comments() -> None:
    expr = compile_expression('"steps.fake" + string(steps.real) // steps.comment')
    assert expr.step_refs == {"real"}


def test_step_refs_ignore_fields_named_steps() -> None:
    expr = compile_expression("item.steps.a + steps.b")
    assert expr.step_refs == {"b"}


def test_step_refs_with_raw_and_escaped_literals() -> None:
    expr = compile_expression("steps[r\"raw\"] + steps[\"esc\\u0041\"] + steps['''tri''']")
    assert expr.step_refs == {"raw", "escA", "tri"}
    assert not expr.steps_dynamic
    assert compile_expression('steps[b"x"]').steps_dynamic


def test_dynamic_steps_use_is_flagged() -> None:
    assert compile_expression("steps[params.name]").steps_dynamic
    assert compile_expression("size(steps) > 0").steps_dynamic


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("steps.prepare.train", ("steps", "prepare", "train")),
        ("params.k", ("params", "k")),
        ("item", ("item",)),
        ("item.name", ("item", "name")),
        ("steps.a[0]", ("steps", "a", 0)),
        ('steps["a-b"].x', ("steps", "a-b", "x")),
        ("  steps . a [ 2 ] ", ("steps", "a", 2)),
        ("steps['q'][1].z", ("steps", "q", 1, "z")),
    ],
)
def test_simple_path(source: str, path: tuple[str | int, ...]) -> None:
    assert compile_expression(source).simple_path == path


@pytest.mark.parametrize(
    "source", ["steps.a + 1", "true", "null", "params.k == 1", "steps.a.size()", 'steps["\\n"]']
)
def test_not_a_simple_path(source: str) -> None:
    assert compile_expression(source).simple_path is None


def test_syntax_error_quotes_parser_and_location() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("1 +", LOC)
    problem = caught.value.problems[0]
    assert problem.location == LOC
    assert "Syntax error" in problem.message


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ("params.in + 1", 'write params["in"] for params.in'),
        ("steps.check.true", 'write steps.check["true"] for steps.check.true'),
        ("item . null > 2", 'write item["null"] for item.null'),
    ],
)
def test_a_field_named_by_a_reserved_word_gets_the_index_form(source: str, hint: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, LOC)
    assert "Syntax error" in str(caught.value) and hint in str(caught.value)


def test_no_reserved_word_hint_for_other_syntax_errors_or_inside_strings() -> None:
    for source in ("1 +", '"params.in" +'):
        with pytest.raises(ExpressionError) as caught:
            compile_expression(source, LOC)
        assert "reserved word" not in str(caught.value)
    assert compile_expression('params["in"] + 1').variables == frozenset({"params"})


def test_too_long_source_is_rejected() -> None:
    with pytest.raises(ExpressionError, match="limit is 4096"):
        compile_expression("1" + " + 1" * MAX_SOURCE_LENGTH)


def test_comprehension_nesting_limit() -> None:
    compile_expression("[[1]].map(x, x.map(y, y + 1))")
    with pytest.raises(ExpressionError, match="3 deep"):
        compile_expression("[[[1]]].map(x, x.map(y, y.map(z, z)))")


def test_sequential_comprehensions_are_not_nested() -> None:
    compile_expression("[1].map(x, x).filter(y, y > 0).all(z, z > 0)")


def test_unknown_root_variable() -> None:
    with pytest.raises(ExpressionError, match="unknown variable 'region'") as caught:
        compile_expression("region + 'x'", LOC)
    assert caught.value.problems[0].location == LOC


def test_extra_variables_allowed() -> None:
    assert compile_expression("region.name", variables={"region"}).variables == {"region"}


def test_macro_variables_are_not_roots() -> None:
    assert compile_expression("params.xs.map(x, x * 2)").variables == {"params"}


def test_macro_variable_may_not_shadow_a_root() -> None:
    with pytest.raises(ExpressionError, match="shadows"):
        compile_expression("params.xs.map(item, item)")


def test_non_utf8_source_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        compile_expression("'\ud800'")


# -- evaluate ------------------------------------------------------------------------------


def test_evaluate_arithmetic_and_params() -> None:
    assert evaluate("params.k * 2 + 1", params={"k": 3}) == 7


def test_evaluate_simple_path_without_cel_returns_any_object() -> None:
    marker = object()
    assert evaluate("steps.a.model", steps={"a": {"model": marker}}) is marker


def test_evaluate_only_converts_referenced_steps() -> None:
    steps = {"a": {"x": 2}, "unrelated": object()}
    assert evaluate("steps.a.x * 2", steps=steps) == 4


class LazySteps(Mapping[str, Any]):
    """A steps mapping that fails when a step the expression does not name is read."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def __getitem__(self, key: str) -> Any:
        if key == "poison":
            raise AssertionError("read a step the expression does not reference")
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_evaluate_reads_only_referenced_steps_of_a_lazy_mapping() -> None:
    steps = LazySteps({"a": [1, 2], "poison": None})
    assert evaluate("size(steps.a) + 1", steps=steps) == 3


def test_evaluate_list_index_and_tuple_results() -> None:
    assert evaluate("steps.a[1]", steps={"a": (5, 6)}) == 6
    assert evaluate("steps.a", steps={"a": (5, (6,))}) == [5, [6]]


def test_evaluate_returns_plain_python() -> None:
    assert evaluate('{"a": [1, 2.5, true, null]}') == {"a": [1, 2.5, True, None]}
    assert evaluate('b"hi"') == "hi"
    assert evaluate('timestamp("2024-01-02T03:04:05Z")') == "2024-01-02T03:04:05Z"
    assert evaluate('duration("90s")') == 90.0


@pytest.mark.parametrize(
    ("source", "variables", "fragment"),
    [
        ("steps.a.missing", {"steps": {"a": {}}}, "no such key 'missing'"),
        ("1 / 0", {}, "division by zero"),
        ('1 + "a"', {}, "No such overload"),
        ("steps.a[3]", {"steps": {"a": [1]}}, "index out of range"),
        ("item + 1", {}, "'item' is not bound"),
        ("params.k == 1", {"params": {"k": {1, 2}}}, "type set cannot be read"),
    ],
)
def test_evaluation_errors_are_wrapped(
    source: str, variables: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ExpressionError, match=fragment) as caught:
        compile_expression(source, LOC).evaluate(variables)
    problem = caught.value.problems[0]
    assert problem.location == LOC
    assert repr(source) in problem.message


@pytest.mark.parametrize("template", ['"arr=" + string(item.a)', "size(item.a) == 2", "item.a[0]"])
def test_an_array_or_a_frame_is_refused_by_name_not_read_as_bytes(template: str) -> None:
    """An ndarray reached CEL through the buffer protocol: a small one read as its bytes
    (``"arr=\\x00\\x01\\x02"``), a large one failed in the conversion with a ValueError that
    escaped as no ExpressionError (and quarantined the run). Both are refused, naming the
    type."""
    numpy = pytest.importorskip("numpy")
    pandas = pytest.importorskip("pandas")
    for value, name in (
        (numpy.arange(3), "numpy.ndarray"),
        (numpy.array([1000, 2000]), "numpy.ndarray"),
        (pandas.DataFrame({"x": [1, 2]}), "pandas.DataFrame"),
        (memoryview(b"ab"), "memoryview"),
    ):
        with pytest.raises(ExpressionError, match=f"a value of type {name} cannot be read"):
            evaluate(template, item={"a": value})
    assert evaluate('"n=" + string(item.a)', item={"a": numpy.float64(2.5)}) == "n=2.5"


def test_string_extends_to_every_json_value() -> None:
    assert evaluate("string(item)", item=True) == "true"
    assert evaluate("string(item)", item=None) == "null"
    assert evaluate("string(item)", item=[1, "a"]) == '[1, "a"]'
    assert evaluate("string(item)", item=1.5) == "1.5"


def test_to_plain_keeps_unchanged_containers() -> None:
    value = {"a": [1, 2]}
    assert to_plain(value) is value


# -- truthy ----------------------------------------------------------------------------------


def test_truthy_requires_bool() -> None:
    assert truthy(True) is True
    assert truthy(False) is False
    with pytest.raises(ExpressionError, match="condition 'x' must be a bool, got int") as caught:
        truthy(1, "x", LOC)
    assert caught.value.problems[0].location == LOC
    with pytest.raises(ExpressionError, match="got null"):
        truthy(None)


# -- parse_template ------------------------------------------------------------------------


def test_template_without_expression_is_const() -> None:
    assert parse_template("plain $ {{ text }}") == Const("plain $ {{ text }}")


def test_template_single_expression_keeps_type() -> None:
    assert parse_template("${{ params.k }}") == Expr("params.k")
    assert parse_template("  ${{params.k}}") != Expr("params.k")


def test_template_concatenates_with_escaping() -> None:
    template = parse_template('model-"${{ item }}"\\\n${{ params.k * 2 }}!')
    assert isinstance(template, Expr)
    value = compile_expression(template.source).evaluate({"item": "eu", "params": {"k": 2}})
    assert value == 'model-"eu"\\\n4!'


def test_template_renders_non_string_values() -> None:
    template = parse_template("flag=${{ item }}")
    assert isinstance(template, Expr)
    assert compile_expression(template.source).evaluate({"item": False}) == "flag=false"


def test_template_allows_braces_and_closing_text_in_strings() -> None:
    template = parse_template('x ${{ {"a": {"b": "}}"}}.a.b }} y')
    assert isinstance(template, Expr)
    assert compile_expression(template.source).evaluate({}) == "x }} y"


@pytest.mark.parametrize("text", ["${{ params.k", "a ${{ }} b", "${{ 1 + }}", "${{ x } }}"])
def test_template_errors(text: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_template(text, LOC)
    assert caught.value.problems[0].location == LOC


@given(st.text(alphabet=st.sampled_from(list("${}\"' \\ab.+1()[]\n")), max_size=30) | st.text())
@settings(max_examples=400, deadline=None)
def test_parse_template_raises_only_expression_errors(text: str) -> None:
    try:
        result = parse_template(text)
    except ExpressionError:
        return
    if isinstance(result, Const):
        assert result.value == text
    else:
        assert "${{" in text


@given(st.lists(st.text(max_size=6).filter(lambda s: "${{" not in s), min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_template_literal_text_round_trips(parts: list[str]) -> None:
    text = "${{ item }}".join(parts)
    expected = "7".join(parts)
    if not _encodable(text):  # text that is not valid Unicode cannot reach CEL
        with pytest.raises(ExpressionError):
            parse_template(text)
        return
    template = parse_template(text)
    if isinstance(template, Const):
        assert template.value == expected
        return
    value = compile_expression(template.source).evaluate({"item": 7})
    assert value == (7 if parts == ["", ""] else expected)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_a_field_of_a_null_step_output_is_named_as_such() -> None:
    """`steps.x.v` where x failed or was skipped read as CEL's "No such overload ... mixing
    int with uint or double"."""
    expression = compile_expression("steps.ex2.v + 1")
    with pytest.raises(ExpressionError, match=r"reads a field of steps\.ex2, which is null"):
        expression.evaluate({"steps": {"ex2": None}})
    assert expression.evaluate({"steps": {"ex2": {"v": 1}}}) == 2

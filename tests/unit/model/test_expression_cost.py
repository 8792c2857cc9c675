"""Expression cost limits: the parser, the estimator, and the refusals at validation and run time.

The three expressions of issue 12 that got through (a string doubled 40 times by chained
``map``, two nested comprehensions over a 300-item list, ``filter``/``exists`` over a
600-item literal list) are refused when validating when their sizes are literal, and at run
time, before evaluating, when their sizes come from data.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kaon.dsl.yaml_loader import load_yaml_file
from kaon.errors import DefinitionError, ExpressionError, Location
from kaon.model import cel_syntax
from kaon.model.expression_cost import (
    UNKNOWN,
    Estimate,
    ExpressionBudget,
    OverBudget,
    estimate,
    linear_bound,
    measure,
    measure_all,
    measure_totals,
)
from kaon.model.expressions import (
    compile_expression,
    configure_budget,
    current_budget,
    static_estimate,
)
from kaon.model.specs import GraphSpec, ParamSpec, ParamType, TaskSpec, WorkflowSpec
from kaon.model.validation import validate_workflow

DOUBLING = '["ab"]' + ".map(x, x + x)" * 40
NESTED = "params.L.map(a, params.L.map(b, params.L))"
LIST_600 = "[" + ",".join(["1"] * 600) + "]"
FILTER_EXISTS = f"{LIST_600}.filter(a, {LIST_600}.exists(b, {LIST_600}.size() < 0))"
LOC = Location("wf.yaml", 7, "steps.a.when")


def test_the_repro_expressions_are_valid_cel_of_the_reported_sizes() -> None:
    assert len(DOUBLING) < 830 and len(FILTER_EXISTS) < 3700
    for source in (DOUBLING, NESTED, FILTER_EXISTS):
        cel_syntax.parse(source)


@pytest.mark.parametrize("source", [DOUBLING, FILTER_EXISTS], ids=["doubling", "filter-exists"])
def test_literal_bombs_are_refused_when_compiled(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, LOC)
    problem = caught.value.problems[0]
    assert problem.location == LOC
    assert "over its budget" in problem.message and "budget 100.0 ms" in problem.message


def test_doubling_is_estimated_at_terabytes() -> None:
    estimate_ = static_estimate(DOUBLING)
    assert estimate_.peak_bytes > 2**40  # 2 characters doubled 40 times
    assert estimate_.result.item is not None and estimate_.result.item.length == 2 * 2**40


def _workflow(when: str, params: tuple[ParamSpec, ...]) -> WorkflowSpec:
    step = TaskSpec(
        id="a",
        config={"command": "true"},
        step_type="shell",
        when=when,
        location=Location("wf.yaml", 7),
    )
    return WorkflowSpec(name="wf", graph=GraphSpec(steps=(step,)), params=params)


def test_nested_comprehension_over_a_parameter_default_is_refused_at_validation() -> None:
    default = ParamSpec("L", ParamType.LIST, list(range(300)))
    problems = validate_workflow(_workflow(f"size({NESTED}) > 0", (default,)))
    (problem,) = problems
    assert problem.location == Location("wf.yaml", 7, "when")
    assert "step 'a'" in problem.message and "over its budget" in problem.message
    assert "with the parameters' defaults" in problem.message
    # a small default is fine
    small = ParamSpec("L", ParamType.LIST, list(range(5)))
    assert validate_workflow(_workflow(f"size({NESTED}) > 0", (small,))) == []


def test_kaon_validate_reports_file_line_field_and_estimate(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(
        "name: bomb\nsteps:\n  - id: a\n    shell: echo hi\n"
        f"    when: ${{{{ size({DOUBLING}) > 0 }}}}\n"
    )
    with pytest.raises(DefinitionError) as caught:
        load_yaml_file(str(path))
    (problem,) = caught.value.problems
    assert problem.location.file == str(path) and problem.location.line == 5
    assert problem.location.field is not None and problem.location.field.endswith("when")
    assert "about" in problem.message and "TiB" in problem.message


def _variables(**values: Any) -> dict[str, Any]:
    return {"params": values, "steps": {}, "run": {}}


def test_sizes_from_data_are_refused_before_evaluating() -> None:
    compiled = compile_expression(f"size({NESTED}) > 0", LOC)  # fine for small lists
    assert compiled.evaluate(_variables(L=[1, 2, 3])) is True
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as caught:
        compiled.evaluate(_variables(L=list(range(300))))
    assert time.perf_counter() - started < 0.5  # refused, not run (that takes minutes)
    problem = caught.value.problems[0]
    assert problem.location == LOC and "over its budget" in problem.message
    assert "params (1 entries" in problem.message


def test_doubling_a_string_from_data_is_refused_by_its_size() -> None:
    source = "[params.s]" + ".map(x, x + x)" * 10
    compiled = compile_expression(source, LOC)
    assert compiled.evaluate(_variables(s="ab")) == ["ab" * 1024]
    with pytest.raises(ExpressionError, match="values of up to"):
        compiled.evaluate(_variables(s="a" * 100_000))


def test_filter_exists_over_a_list_from_data_is_refused() -> None:
    compiled = compile_expression("params.L.filter(a, params.L.exists(b, params.L.size() < 0))")
    assert compiled.evaluate(_variables(L=list(range(20)))) == []
    with pytest.raises(ExpressionError, match="over its budget"):
        compiled.evaluate(_variables(L=list(range(600))))


def test_the_budget_is_settable() -> None:
    compiled = compile_expression("params.L.map(x, x + 1)")
    big = _variables(L=list(range(1500)))
    with pytest.raises(ExpressionError, match="over its budget"):
        compiled.evaluate(big)
    generous = ExpressionBudget(time_ms=60_000, max_bytes=1 << 30)
    assert len(compiled.evaluate(big, generous)) == 1500
    previous = current_budget()
    configure_budget(ExpressionBudget(time_ms=0.0001))
    try:
        with pytest.raises(ExpressionError, match="over its budget"):
            compile_expression('"a" + "b" + "c" + "d"')  # static check, new budget
    finally:
        configure_budget(previous)
    assert compile_expression('"a" + "b" + "c" + "d"').evaluate({}) == "abcd"


def test_huge_inputs_are_refused_without_walking_them_all() -> None:
    huge = list(range(10_000_000))
    started = time.perf_counter()
    with pytest.raises(OverBudget, match="inputs alone"):
        measure([huge, "x"])
    assert time.perf_counter() - started < 2.0


def test_deeply_nested_values_are_refused() -> None:
    value: Any = 1
    for _ in range(100):
        value = [value]
    with pytest.raises(OverBudget, match="nested more than"):
        measure(value)


@pytest.mark.parametrize(
    ("source", "grows"),
    [
        ("params.s + params.s", "linear"),
        ("params.L + params.L", "linear"),
        ("params.L.map(x, x)", "quadratic"),
        ("params.L.filter(x, x > 0)", "quadratic"),
        ("params.L.exists(x, x > 0)", "linear"),
        ("params.L.all(x, params.L.exists(y, y == x))", "quadratic"),
        ("params.L.map(x, params.L.map(y, params.L))", "quartic"),
        ("string(params.L)", "linear"),
        ("params.s.matches('a+b')", "affine"),
        ("x in params.L", "linear"),
    ],
)
def test_costs_grow_with_data_as_the_interpreter_does(source: str, grows: str) -> None:
    tree = cel_syntax.parse(source)

    def cost(n: int) -> int:
        shapes = {"params": measure({"s": "a" * n, "L": list(range(n))}), "x": UNKNOWN}
        return estimate(tree, shapes, convert=False).time_ns

    ratio = cost(4000) / cost(1000)
    minimum = {"affine": 1.1, "linear": 3, "quadratic": 12, "quartic": 200}[grows]
    assert ratio > minimum, (source, ratio)


def test_conditional_costs_its_dearest_branch_only() -> None:
    shapes = {"params": measure({"L": list(range(1000))})}
    both = estimate(cel_syntax.parse("true ? params.L.map(x, x) : 1"), shapes).time_ns
    alone = estimate(cel_syntax.parse("params.L.map(x, x)"), shapes).time_ns
    assert alone <= both < alone * 1.1


def test_parser_keeps_long_chains_flat_and_limits_nesting() -> None:
    chain = "a" + ".b" * 1500
    node = cel_syntax.parse(chain)
    assert isinstance(node, cel_syntax.Member) and len(node.suffixes) == 1500
    sums = cel_syntax.parse(" + ".join(["1"] * 1500))
    assert isinstance(sums, cel_syntax.Binary) and len(sums.rest) == 1499
    with pytest.raises(cel_syntax.CelSyntaxError, match="levels deep"):
        cel_syntax.parse("(" * 40 + "1" + ")" * 40)


@pytest.mark.parametrize(
    "source",
    [
        "a ? b : c ? d : e",
        '{"a": [1, 2u, 3.5, .5e3, 0x1F], b"x": r"\\d"}',
        "!!a && -b < 0 || x in [1,]",
        "has(a.b) && a.?c.orValue(1) == x[?0]",
        "'''tri'ple''' + \"s\\\"q\" + R'raw'",
        "a.map(x, x > 1, x * 2)",
        ".pkg.Type{field: 1}",
        "// a comment\n1",
    ],
)
def test_parser_accepts_the_grammar(source: str) -> None:
    cel_syntax.parse(source)


def test_an_evaluation_past_its_time_budget_has_its_result_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wall-clock guard behind the estimate: were the estimate ever too low, a result
    that took longer than the budget is still refused."""
    import kaon.model.expression_cost as cost

    compiled = compile_expression("params.L.map(x, params.L.map(y, y)).size()")
    monkeypatch.setattr(cost, "estimate", lambda *a, **k: Estimate(0, 0, UNKNOWN))
    tight = ExpressionBudget(time_ms=1, max_bytes=1 << 30)
    refused = r"over 2 times its budget of 1\.0 ms; its result is refused"
    with pytest.raises(ExpressionError, match=refused):
        compiled.evaluate(_variables(L=list(range(200))), tight)


@pytest.mark.parametrize(
    "source",
    [
        '"model-" + string(params.L) + params.s',
        "(params.s + params.s) + (params.s + params.s)",
        "params.L + [1, 2] + params.L",
        "params.L[0] < 3 ? {'a': params.L} : {'b': [params.s, params.s]}",
        "size(params.s) > 2 && params.s in ['a', 'b'] || -params.L[1] == 0",
    ],
)
def test_the_quick_bound_is_above_the_full_estimate(source: str) -> None:
    tree = cel_syntax.parse(source)
    bound = linear_bound(tree)
    assert bound is not None
    for n in (0, 10, 1000):
        values = {"params": {"s": "a" * n, "L": list(range(n))}}
        quick = bound.estimate(measure_totals(values, ExpressionBudget(time_ms=1e9)))
        full = estimate(tree, measure_all(values, ExpressionBudget(time_ms=1e9)))
        assert quick.time_ns >= full.time_ns and quick.peak_bytes >= full.peak_bytes


def test_the_quick_bound_leaves_comprehensions_and_regexes_to_the_estimator() -> None:
    assert linear_bound(cel_syntax.parse("params.L.map(x, x)")) is None
    assert linear_bound(cel_syntax.parse("size(params.L.filter(x, x > 1))")) is None
    assert linear_bound(cel_syntax.parse("params.s.matches('a')")) is None
    assert linear_bound(cel_syntax.parse("matches(params.s, 'a')")) is None

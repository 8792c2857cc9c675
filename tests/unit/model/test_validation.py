from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kaon_model_strategies import workflows

from kaon.errors import DefinitionError, Location, Problem
from kaon.model.specs import (
    Const,
    Expr,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    ParamSpec,
    ParamType,
    RetrySpec,
    StepDefaults,
    StepSpec,
    SubworkflowSpec,
    TaskSpec,
    WorkflowSpec,
)
from kaon.model.validation import CHECKS, raise_if_invalid, validate_workflow


def at(line: int) -> Location:
    return Location("wf.yaml", line)


def task(step_id: str, *needs: str, line: int = 1, **inputs: str) -> TaskSpec:
    return TaskSpec(
        id=step_id, needs=needs, inputs={k: Expr(v) for k, v in inputs.items()}, location=at(line)
    )


def workflow(*steps: StepSpec, **kwargs: Any) -> WorkflowSpec:
    return WorkflowSpec(name="flow", graph=GraphSpec(steps=steps), **kwargs)


def messages(spec: WorkflowSpec, **kwargs: Any) -> list[str]:
    return [str(p) for p in validate_workflow(spec, **kwargs)]


def only(spec: WorkflowSpec, **kwargs: Any) -> Problem:
    problems = validate_workflow(spec, **kwargs)
    assert len(problems) == 1, problems
    return problems[0]


def pipeline() -> WorkflowSpec:
    regional = ForeachSpec(
        id="regional",
        items=Expr("steps.prepare.regions"),
        item_name="region",
        concurrency=4,
        body=GraphSpec(
            steps=(
                task("train", data="steps.prepare.train", region="region", i="index"),
                task("check", model="steps.train", k="params.k"),
            )
        ),
    )
    loop = LoopSpec(
        id="tune",
        body=GraphSpec(steps=(task("fit", it="iteration", models="steps.regional"),)),
        until="steps.fit.stable || iteration >= 3",
        max_iterations=5,
    )
    return workflow(
        task("prepare"),
        regional,
        loop,
        task("publish", "tune", when="steps.tune.stable"),
        params=(ParamSpec("k", ParamType.INT, 3),),
    )


def test_valid_pipeline_has_no_problems() -> None:
    assert validate_workflow(pipeline()) == []
    raise_if_invalid([])


def test_checks_are_named_functions() -> None:
    assert all(check.__name__.startswith("check_") and check.__doc__ for check in CHECKS)


def test_invalid_ids() -> None:
    spec = dataclasses.replace(workflow(task("a.b", line=4)), name="my flow")
    found = messages(spec)
    assert any("invalid workflow name 'my flow'" in m for m in found)
    assert any("wf.yaml:4: id: invalid step id 'a.b'" in m for m in found)


def test_duplicate_ids_within_graph_but_not_across_bodies() -> None:
    body = GraphSpec(steps=(task("a"),))
    spec = workflow(task("a", line=1), task("a", line=7), LoopSpec(id="l", body=body, until="true"))
    problem = only(spec)
    assert problem.location == at(7).with_field("id")
    assert "duplicate step id 'a'" in problem.message
    assert "wf.yaml:1" in problem.message


def test_unknown_needs_with_suggestion() -> None:
    problem = only(workflow(task("prepare"), task("train", "prepar", line=3)))
    assert problem.location == at(3).with_field("needs")
    assert "unknown step 'prepar'" in problem.message
    assert "did you mean 'prepare'" in problem.message


def test_expression_syntax_problem_names_field() -> None:
    problem = only(workflow(task("a", line=9, x="1 +")))
    assert problem.location == at(9).with_field("inputs.x")
    assert "Syntax error" in problem.message


def test_every_expression_field_is_checked() -> None:
    foreach = ForeachSpec(id="f", items=Expr("1 +"), when="(", body=GraphSpec(steps=(task("b"),)))
    loop = LoopSpec(id="l", body=GraphSpec(steps=(task("c"),)), until="]", location=at(2))
    fields = {p.location.field for p in validate_workflow(workflow(foreach, loop))}
    assert fields == {"items", "when", "until"}


def test_unknown_step_reference() -> None:
    problem = only(workflow(task("a"), task("b", line=5, x="steps.c.out")))
    assert "unknown step 'c'" in problem.message
    assert problem.location == at(5).with_field("inputs.x")


def test_body_steps_are_not_visible_outside() -> None:
    spec = pipeline()
    leaking = task("leak", x="steps.train")
    spec = dataclasses.replace(spec, graph=GraphSpec(steps=(*spec.graph.steps, leaking)))
    problem = only(spec)
    assert "inside the body of 'regional'" in problem.message


def _fan(*body: StepSpec, output: str | None = None) -> ForeachSpec:
    return ForeachSpec(
        id="fan", items=Expr("[1, 2]"), body=GraphSpec(steps=body, output=output), location=at(2)
    )


def test_a_field_of_a_foreach_output_is_refused_where_it_is_read() -> None:
    # A foreach's output is a list: steps.fan.sq fails every run, so it is a definition error.
    two_sinks = _fan(task("sq", x="item"), task("cube", x="item"))
    problem = only(workflow(two_sinks, task("total", line=7, vals="steps.fan.sq")))
    assert problem.location == at(7).with_field("inputs.vals")
    assert "foreach 'fan' gives a list" in problem.message
    assert "has no field 'sq'" in problem.message
    assert "steps.fan.map(i, i.sq)" in problem.message
    # The same read through a string index, in a condition, inside an enclosing loop's body.
    loop = LoopSpec(
        id="again",
        body=GraphSpec(
            steps=(TaskSpec(id="use", when='steps.fan["cube"].size() > 0', location=at(9)),)
        ),
        until="true",
    )
    problem = only(workflow(two_sinks, loop))
    assert problem.location == at(9).with_field("when") and "no field 'cube'" in problem.message


def test_the_hint_follows_what_an_item_output_is() -> None:
    one_sink = _fan(task("sq", x="item"))
    problem = only(workflow(one_sink, task("total", vals="steps.fan.sq")))
    assert "each item's output is step 'sq''s own: steps.fan is the list of them" in str(problem)
    two_sinks = _fan(task("sq", x="item"), task("cube", x="item"))
    problem = only(workflow(two_sinks, task("total", vals="steps.fan.rmse")))
    assert "a map of its last steps' outputs ('sq', 'cube')" in problem.message
    chosen = _fan(task("sq", x="item"), task("cube", x="item"), output="sq")
    problem = only(workflow(chosen, task("total", vals="steps.fan.rmse")))
    assert "steps.fan.map(i, i.rmse)" in problem.message


def test_a_foreach_output_read_whole_or_by_method_is_valid() -> None:
    fan = _fan(task("sq", x="item"))
    for source in (
        "steps.fan",
        "steps.fan.map(i, i.sq)",
        "steps.fan[0].sq",
        "size(steps.fan)",
        "steps.fan.size() > 1",
    ):
        assert messages(workflow(fan, task("total", vals=source))) == [], source
    # A task's or a loop's output is whatever it returned: its fields are not checked.
    assert messages(pipeline()) == []


def test_undeclared_param() -> None:
    problem = only(workflow(task("a", x="params.kk"), params=(ParamSpec("k", ParamType.INT, 1),)))
    assert "undeclared parameter 'kk'" in problem.message
    assert "did you mean 'k'" in problem.message


def test_item_and_iteration_only_inside_their_bodies() -> None:
    spec = workflow(task("a", x="item", y="iteration", z="index"))
    found = messages(spec)
    assert len(found) == 3
    assert any("'item' is only bound inside a foreach body" in m for m in found)
    assert any("'iteration' is only bound inside a loop body" in m for m in found)


def test_custom_item_name_replaces_item() -> None:
    foreach = ForeachSpec(
        id="f",
        items=Const([1]),
        item_name="region",
        body=GraphSpec(steps=(task("b", x="item"),)),
    )
    message = only(workflow(foreach)).message
    assert "'item' is not bound here; the enclosing foreach item is 'region'" in message


def test_a_step_id_with_a_dash_read_as_a_field_names_the_index_form() -> None:
    # CEL reads steps.pre-process.v as steps.pre - process.v: one problem, saying so.
    spec = workflow(task("pre-process"), task("use", line=4, x="steps.pre-process.v"))
    problem = only(spec)
    assert problem.location == at(4).with_field("inputs.x")
    assert "reads step 'pre-process' as steps.pre-process" in problem.message
    assert 'write steps["pre-process"]' in problem.message
    # The longest id wins; the index form is valid; a real subtraction is left alone.
    spec = workflow(task("a-b"), task("a-b-c"), task("use", x="steps.a-b-c.v"))
    assert "reads step 'a-b-c'" in only(spec).message
    assert messages(workflow(task("pre-process"), task("use", x='steps["pre-process"].v'))) == []
    spec = workflow(task("pre"), task("use", x="steps.pre - 1"))
    assert messages(spec) == []


def test_dynamic_step_reference_is_a_problem() -> None:
    spec = workflow(task("a", x="steps[params.s]"), params=(ParamSpec("s", ParamType.STR, "a"),))
    assert "literal id" in only(spec).message


def test_cycles_are_reported_not_raised() -> None:
    spec = workflow(task("a", "b", line=2), task("b", line=3, x="steps.a"))
    problem = only(spec)
    assert "dependency cycle" in problem.message
    assert "wf.yaml:2" in problem.message and "wf.yaml:3" in problem.message


def test_param_problems() -> None:
    spec = workflow(
        task("a"),
        params=(
            ParamSpec("n", ParamType.INT, "3", location=at(2)),
            ParamSpec("flag", ParamType.BOOL, 1),
            ParamSpec("ok", ParamType.FLOAT, 1),
            ParamSpec("bad-name", ParamType.ANY),
            ParamSpec("n", ParamType.INT, 3),
        ),
    )
    problems = validate_workflow(spec)
    assert len(problems) == 4
    assert problems[0].location == at(2).with_field("params.n.default")
    text = "\n".join(map(str, problems))
    assert "must be of type bool" in text
    assert "invalid parameter name 'bad-name'" in text
    assert "duplicate parameter 'n'" in text


def test_retry_timeout_concurrency_and_loop_limits() -> None:
    bad_retry = RetrySpec(max_attempts=0, delay_s=-1, platform_attempts=-1)
    spec = workflow(
        TaskSpec(id="a", retry=bad_retry, timeout_s=0),
        ForeachSpec(id="f", items=Const([]), concurrency=0, body=GraphSpec(steps=(task("x"),))),
        LoopSpec(id="l", body=GraphSpec(steps=(task("y"),)), until="true", max_iterations=10_001),
        timeout_s=-5,
        defaults=StepDefaults(retry=RetrySpec(max_delay_s=-2)),
    )
    fields = sorted(str(p.location.field) for p in validate_workflow(spec))
    assert fields == [
        "concurrency",
        "defaults.retry.max_delay_s",
        "max_iterations",
        "retry.delay_s",
        "retry.max_attempts",
        "retry.platform_attempts",
        "timeout_s",
        "timeout_s",
    ]


def test_a_misspelt_retry_on_name_is_a_problem_at_its_field() -> None:
    """``retry_on: [ValueErorr]`` was accepted, and the step was then never retried on the
    ValueError it meant; a user's own exception names stay accepted."""
    retry = RetrySpec(max_attempts=3, retry_on=("TransientError", "ValueErorr", ""))
    spec = workflow(
        TaskSpec(id="fit", retry=retry, location=at(7)),
        defaults=StepDefaults(retry=RetrySpec(retry_on=("mypkg.KeyEror",))),
        location=at(1),
    )
    found = [(str(p.location), p.message) for p in validate_workflow(spec)]
    assert found == [
        (
            "wf.yaml:1: defaults.retry.retry_on[0]",
            "workflow defaults: retry.retry_on[0]: unknown exception type 'mypkg.KeyEror': "
            "did you mean 'KeyError'?",
        ),
        (
            "wf.yaml:7: retry.retry_on[1]",
            "step 'fit': retry.retry_on[1]: unknown exception type 'ValueErorr': "
            "did you mean 'ValueError'?",
        ),
        (
            "wf.yaml:7: retry.retry_on[2]",
            "step 'fit': retry.retry_on[2]: an exception type name cannot be empty",
        ),
    ]


def test_retry_on_a_container_is_refused_not_ignored() -> None:
    # A container has no attempts of its own: a retry set on it used to be accepted and
    # never applied. The check names the step, its kind and where to set it instead.
    body = GraphSpec(steps=(task("x"),))
    spec = workflow(
        ForeachSpec(id="f", items=Const([1]), body=body, retry=RetrySpec(max_attempts=2)),
        LoopSpec(id="l", body=GraphSpec(steps=(task("y"),)), until="true", retry=RetrySpec()),
    )
    problems = validate_workflow(spec)
    assert [str(p.location.field) for p in problems] == ["retry", "retry"]
    assert "step 'f': retry applies to task steps only (a foreach step" in problems[0].message
    assert "set it on the steps inside" in problems[0].message
    assert "(a loop step is not retried as a whole)" in problems[1].message


def test_empty_graphs() -> None:
    spec = workflow(LoopSpec(id="l", body=GraphSpec(), until="true"))
    assert "loop 'l' has an empty body" in only(spec).message
    assert "has no steps" in only(workflow()).message


def test_graph_output_must_exist() -> None:
    spec = WorkflowSpec(name="w", graph=GraphSpec(steps=(task("a"),), output="b"))
    assert "names unknown step 'b'" in only(spec).message


def test_foreach_item_name_must_be_free() -> None:
    foreach = ForeachSpec(
        id="f", items=Const([]), item_name="steps", body=GraphSpec(steps=(task("b"),))
    )
    assert "reserved" in only(workflow(foreach)).message


def test_subworkflow_unresolved_and_recursive() -> None:
    inner = WorkflowSpec(
        name="inner",
        graph=GraphSpec(steps=(task("x", "nope", line=40),)),
        params=(ParamSpec("n", ParamType.INT),),
    )
    spec = workflow(
        SubworkflowSpec(id="s1", workflow="missing"),
        SubworkflowSpec(id="s2", workflow="inner", spec=inner, inputs={"m": Const(1)}),
    )
    found = messages(spec)
    assert any("'missing' is not resolved" in m for m in found)
    assert any("has no parameter 'm'" in m for m in found)
    assert any("required parameter 'n'" in m for m in found)
    assert any(
        m.startswith("wf.yaml:40: needs: in subworkflow 's2' (inner):") and "'nope'" in m
        for m in found
    )


def test_step_type_callback_sees_every_task() -> None:
    seen: list[str] = []

    def check(step_type: str, config: Mapping[str, Any], location: Location) -> list[Problem]:
        seen.append(step_type)
        if step_type == "bogus":
            return [Problem("unknown step type 'bogus'", location.with_field("type"))]
        return []

    nested = TaskSpec(id="n", step_type="shell")
    spec = workflow(
        TaskSpec(id="a", step_type="bogus", location=at(3)),
        LoopSpec(id="l", body=GraphSpec(steps=(nested,)), until="true"),
    )
    problem = only(spec, check_step_type=check)
    assert problem.location == at(3).with_field("type")
    assert sorted(seen) == ["bogus", "shell"]


def test_raise_if_invalid() -> None:
    with pytest.raises(DefinitionError) as caught:
        raise_if_invalid([Problem("x", at(1)), Problem("y")])
    assert len(caught.value.problems) == 2


# -- properties ----------------------------------------------------------------------------

weird_ids = st.text(max_size=6)
weird_sources = st.text(max_size=20) | st.sampled_from(["steps.zz", "item", "[[[1]]].map(x, 1)"])


@st.composite
def mangled_workflows(draw: st.DrawFn) -> WorkflowSpec:
    spec = draw(workflows())
    steps = list(spec.graph.steps)
    index = draw(st.integers(0, len(steps) - 1))
    step = steps[index]
    steps[index] = dataclasses.replace(
        step,
        id=draw(st.one_of(st.just(step.id), weird_ids)),
        when=draw(st.none() | weird_sources),
        inputs={**step.inputs, "z": Expr(draw(weird_sources))},
        timeout_s=draw(st.none() | st.floats()),
    )
    return dataclasses.replace(spec, graph=GraphSpec(steps=tuple(steps)))


@given(mangled_workflows())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_validation_never_raises(spec: WorkflowSpec) -> None:
    problems = validate_workflow(spec)
    assert all(isinstance(p, Problem) for p in problems)


@given(workflows(), st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_injected_duplicates_and_unknown_needs_are_reported(
    spec: WorkflowSpec, data: st.DataObject
) -> None:
    steps = list(spec.graph.steps)
    duplicate = dataclasses.replace(
        data.draw(st.sampled_from(steps)), location=Location("dup.yaml", 999)
    )
    needy = TaskSpec(id="zz_needy", needs=("no_such_step",), location=Location("needs.yaml", 7))
    mangled = dataclasses.replace(spec, graph=GraphSpec(steps=(*steps, duplicate, needy)))
    problems = validate_workflow(mangled)
    assert any(
        p.location == Location("dup.yaml", 999, "id") and "duplicate step id" in p.message
        for p in problems
    )
    assert any(
        p.location == Location("needs.yaml", 7, "needs") and "no_such_step" in p.message
        for p in problems
    )

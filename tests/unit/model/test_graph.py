from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kaon_model_strategies import graphs

from kaon.errors import DefinitionError, ExpressionError, Location
from kaon.model.graph import compile_graph, step_refs_of
from kaon.model.specs import Const, Expr, ForeachSpec, GraphSpec, LoopSpec, StepSpec, TaskSpec


def task(step_id: str, *needs: str, line: int | None = None, **inputs: str) -> TaskSpec:
    return TaskSpec(
        id=step_id,
        needs=needs,
        inputs={k: Expr(v) for k, v in inputs.items()},
        location=Location("wf.yaml", line),
    )


def test_order_deps_successors_roots_sinks() -> None:
    graph = GraphSpec(
        steps=(
            task("publish", "validate"),
            task("select"),
            task("prepare", data="steps.select"),
            task("validate", a="steps.prepare.train", b="steps['prepare'].test"),
        )
    )
    compiled = compile_graph(graph)
    assert compiled.order == ("select", "prepare", "validate", "publish")
    assert compiled.deps == {
        "publish": ("validate",),
        "select": (),
        "prepare": ("select",),
        "validate": ("prepare",),
    }
    assert compiled.successors["prepare"] == ("validate",)
    assert compiled.roots == ("select",)
    assert compiled.sinks == ("publish",)
    assert compiled.output_ids == ("publish",)
    assert compiled.external_refs == frozenset()


def test_order_is_stable_for_independent_steps() -> None:
    graph = GraphSpec(steps=(task("c"), task("a"), task("b")))
    assert compile_graph(graph).order == ("c", "a", "b")


def test_output_ids_prefer_declared_output() -> None:
    graph = GraphSpec(steps=(task("a"), task("b")), output="a")
    assert compile_graph(graph).output_ids == ("a",)
    assert compile_graph(GraphSpec(steps=(task("a"), task("b")))).output_ids == ("a", "b")


def test_when_and_items_are_dependencies() -> None:
    graph = GraphSpec(
        steps=(
            task("a"),
            task("b"),
            ForeachSpec(
                id="each",
                items=Expr("steps.a.regions"),
                when="steps.b == true",
                body=GraphSpec(steps=(task("inner"),)),
            ),
        )
    )
    assert compile_graph(graph).deps["each"] == ("a", "b")


def test_container_depends_on_references_inside_its_body() -> None:
    inner_loop = LoopSpec(
        id="tune",
        body=GraphSpec(steps=(task("fit", data="steps.global_model + steps.step1"),)),
        until="steps.fit.ok",
    )
    foreach = ForeachSpec(
        id="regional",
        items=Expr("steps.prepare.regions"),
        body=GraphSpec(steps=(task("step1", x="item"), inner_loop)),
    )
    graph = GraphSpec(steps=(task("prepare"), task("global_model"), foreach))
    compiled = compile_graph(graph)
    assert compiled.deps["regional"] == ("prepare", "global_model")
    body = compile_graph(foreach.body)
    assert body.deps["tune"] == ("step1",)
    assert body.external_refs == {"global_model"}
    assert compile_graph(inner_loop.body).external_refs == {"global_model", "step1"}


def test_loop_until_refs_to_body_are_not_dependencies() -> None:
    loop = LoopSpec(
        id="loop", body=GraphSpec(steps=(task("fit"),)), until="steps.fit.ok && steps.pre.ok"
    )
    compiled = compile_graph(GraphSpec(steps=(task("pre"), loop)))
    assert compiled.deps["loop"] == ("pre",)


def test_references_to_enclosing_steps_are_external() -> None:
    graph = GraphSpec(steps=(task("x", a="steps.outer.value"),))
    compiled = compile_graph(graph)
    assert compiled.deps["x"] == ()
    assert compiled.external_refs == {"outer"}


def test_step_refs_of() -> None:
    step = ForeachSpec(
        id="f",
        items=Expr("steps.a"),
        when="steps.b",
        inputs={"k": Expr("steps.c.x"), "d": Const("steps.d")},
        body=GraphSpec(steps=(task("in", v="steps.e"),)),
    )
    assert step_refs_of(step) == {"a", "b", "c"}


def test_cycle_raises_with_locations() -> None:
    graph = GraphSpec(
        steps=(task("a", "c", line=3), task("b", "a", line=5), task("c", "b", line=8))
    )
    with pytest.raises(DefinitionError) as caught:
        compile_graph(graph)
    message = str(caught.value)
    assert "dependency cycle" in message
    for fragment in ("a (wf.yaml:3)", "b (wf.yaml:5)", "c (wf.yaml:8)"):
        assert fragment in message


def test_self_reference_is_a_cycle() -> None:
    with pytest.raises(DefinitionError, match="cycle"):
        compile_graph(GraphSpec(steps=(task("a", x="steps.a"),)))


def test_duplicate_ids_and_unknown_needs_raise() -> None:
    with pytest.raises(DefinitionError, match="duplicate step id 'a'"):
        compile_graph(GraphSpec(steps=(task("a"), task("a"))))
    with pytest.raises(DefinitionError, match="unknown step 'zz'"):
        compile_graph(GraphSpec(steps=(task("a", "zz"),)))


def test_invalid_expression_raises_expression_error() -> None:
    with pytest.raises(ExpressionError):
        compile_graph(GraphSpec(steps=(task("a", x="1 +"),)))


def test_compile_graph_is_cached_per_object() -> None:
    graph = GraphSpec(steps=(task("a"),))
    assert compile_graph(graph) is compile_graph(graph)
    equal = GraphSpec(steps=(task("a"),))
    assert compile_graph(equal) is not compile_graph(graph)
    assert compile_graph(equal).order == compile_graph(graph).order


@st.composite
def shuffled_dags(draw: st.DrawFn) -> GraphSpec:
    graph = draw(graphs(depth=1, max_steps=6))
    steps: list[StepSpec] = list(draw(st.permutations(graph.steps)))
    return GraphSpec(steps=tuple(steps), output=graph.output)


@given(shuffled_dags())
@settings(max_examples=60, deadline=None)
def test_order_respects_every_dependency(graph: GraphSpec) -> None:
    compiled = compile_graph(graph)
    assert sorted(compiled.order) == sorted(s.id for s in graph.steps)
    position = {step_id: i for i, step_id in enumerate(compiled.order)}
    for step in graph.steps:
        for dep in compiled.deps[step.id]:
            assert position[dep] < position[step.id]
        for need in step.needs:
            assert need in compiled.deps[step.id]
        assert step_refs_of(step) & {s.id for s in graph.steps} <= set(compiled.deps[step.id])
        for successor in compiled.successors[step.id]:
            assert step.id in compiled.deps[successor]

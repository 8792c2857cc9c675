"""Scenario grid: graph shapes x executors (each test runs on inline and process)."""

from __future__ import annotations

from conftest import E, Harness, flow, task

from kaon.model.specs import (
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    ParamSpec,
    ParamType,
    SubworkflowSpec,
    TriggerRule,
)
from kaon.model.status import RunStatus, StepStatus


def test_chain_passes_values_and_params(harness: Harness) -> None:
    spec = flow(
        task("a", "add", inputs={"a": E("params.x"), "b": 1}),
        task("b", "add", inputs={"a": E("steps.a"), "b": E("params.x * 10")}),
        params=(ParamSpec("x", ParamType.INT, 2),),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "b") == 23


def test_diamond_runs_branches_in_parallel_and_joins(harness: Harness) -> None:
    spec = flow(
        task("src", "pair", inputs={"x": 3}),
        task("left", "sleeper", inputs={"seconds": 0.3, "state": str(harness.state), "name": "l"}),
        task("right", "sleeper", inputs={"seconds": 0.3, "state": str(harness.state), "name": "r"}),
        task("join", "total", inputs={"values": E("[steps.left, steps.right, steps.src.twice]")}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "join") == 6.6
    # Both branches started before either ended: they overlapped.
    starts = [float((harness.state / f"{n}_start").read_text().split()[1]) for n in "lr"]
    ends = [float((harness.state / f"{n}_end").read_text().split()[1]) for n in "lr"]
    assert max(starts) < min(ends)


def test_foreach_over_runtime_list_keeps_item_order(harness: Harness) -> None:
    body = GraphSpec(steps=(task("sq", "add", inputs={"a": E("item"), "b": E("index * 100")}),))
    spec = flow(
        task("src", "pair", inputs={"x": 5}),
        ForeachSpec(id="each", items=E("steps.src.items"), body=body, concurrency=2),
        task("sum", "total", inputs={"values": E("steps.each")}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "each") == [0, 101, 202, 303, 404]
    assert harness.value(run_id, "sum") == 1010
    rows = harness.rows(run_id)
    assert rows["each[3].sq"].status is StepStatus.SUCCEEDED
    assert rows["each[3]"].kind == "item"


def test_nested_foreach_with_custom_item_names(harness: Harness) -> None:
    inner = GraphSpec(steps=(task("cell", "add", inputs={"a": E("row * 10"), "b": E("col")}),))
    outer = GraphSpec(
        steps=(ForeachSpec(id="cols", items=E("[0, 1, 2]"), body=inner, item_name="col"),)
    )
    spec = flow(ForeachSpec(id="rows", items=E("[1, 2]"), body=outer, item_name="row"))
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "rows") == [[10, 11, 12], [20, 21, 22]]
    assert "rows[1].cols[2].cell" in harness.rows(run_id)


def test_empty_foreach_succeeds_with_empty_list(harness: Harness) -> None:
    body = GraphSpec(steps=(task("x", "const", inputs={"value": 1}),))
    spec = flow(ForeachSpec(id="none", items=E("[]"), body=body))
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "none") == []


def test_bounded_loop_repeats_until_condition(harness: Harness) -> None:
    body = GraphSpec(steps=(task("check", "score", inputs={"iteration": E("iteration")}),))
    spec = flow(
        LoopSpec(id="retrain", body=body, until="steps.check.stable", max_iterations=5),
        task("after", "const", inputs={"value": E("steps.retrain.iteration")}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "after") == 2
    rows = harness.rows(run_id)
    assert {"retrain[0]", "retrain[1]", "retrain[2]"} <= set(rows)
    assert "retrain[3]" not in rows


def test_loop_stops_at_its_bound(harness: Harness) -> None:
    body = GraphSpec(steps=(task("check", "score", inputs={"iteration": E("iteration")}),))
    ok = flow(LoopSpec(id="l", body=body, until="false", max_iterations=2))
    status, run_id = harness.run(ok)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "l") == {"iteration": 1, "stable": False}
    strict = flow(
        LoopSpec(id="l", body=body, until="false", max_iterations=2, fail_on_exhausted=True)
    )
    status, run_id = harness.run(strict)
    assert status is RunStatus.FAILED
    assert "reached 2 iterations" in str(harness.rows(run_id)["l"].error)


def test_branch_condition_skips_and_join_rule_merges(harness: Harness) -> None:
    spec = flow(
        task("src", "pair", inputs={"x": 1}),
        task("big", "const", inputs={"value": "big"}, when="steps.src.x > 5", needs=("src",)),
        task("small", "const", inputs={"value": "small"}, when="steps.src.x <= 5", needs=("src",)),
        task("after_big", "const", inputs={"value": 1}, needs=("big",)),
        task(
            "merge",
            "const",
            inputs={"value": E("[steps.big, steps.small]")},
            trigger_rule=TriggerRule.ANY_SUCCEEDED,
        ),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    rows = harness.rows(run_id)
    assert rows["big"].status is StepStatus.SKIPPED
    assert "condition is false" in rows["big"].reason
    assert rows["after_big"].status is StepStatus.SKIPPED
    assert harness.value(run_id, "merge") == [None, "small"]


def _branches(x: int, rule: TriggerRule = TriggerRule.ALL_SUCCEEDED) -> object:
    return flow(
        task("src", "pair", inputs={"x": x}),
        task("big", "const", inputs={"value": "big"}, when="steps.src.x > 5", needs=("src",)),
        task("big2", "const", inputs={"value": E("steps.big + '!'")}),
        task("small", "const", inputs={"value": "small"}, when="steps.src.x <= 5", needs=("src",)),
        task(
            "join",
            "const",
            inputs={"value": E("[steps.big2, steps.small]")},
            trigger_rule=rule,
        ),
    )


def test_a_join_after_a_branch_runs_after_the_branch_taken(inline: Harness) -> None:
    status, run_id = inline.run(_branches(1))
    assert status is RunStatus.SUCCEEDED
    rows = inline.rows(run_id)
    assert rows["big2"].status is StepStatus.SKIPPED
    assert rows["big2"].reason == "branch not taken: big"
    assert rows["join"].status is StepStatus.SUCCEEDED
    assert inline.value(run_id, "join") == [None, "small"]
    status, run_id = inline.run(_branches(9))
    assert inline.value(run_id, "join") == ["big!", None]


def test_strict_rule_keeps_the_old_join_and_no_branch_taken_skips(inline: Harness) -> None:
    _, run_id = inline.run(_branches(1, TriggerRule.ALL_SUCCEEDED_STRICT))
    join = inline.rows(run_id)["join"]
    assert join.status is StepStatus.SKIPPED and join.reason == "upstream skipped: big2"
    spec = flow(
        task("src", "pair", inputs={"x": 1}),
        task("a", "const", inputs={"value": 1}, when="false", needs=("src",)),
        task("b", "const", inputs={"value": 2}, when="false", needs=("src",)),
        task("join", "const", inputs={"value": 3}, needs=("a", "b")),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    join = inline.rows(run_id)["join"]
    assert join.status is StepStatus.SKIPPED and join.reason == "branch not taken: a, b"


def test_subworkflow_gets_params_and_returns_output(harness: Harness) -> None:
    child = flow(
        task("double", "add", inputs={"a": E("params.n"), "b": E("params.n")}),
        name="child",
        params=(ParamSpec("n", ParamType.INT),),
    )
    spec = flow(
        task("src", "pair", inputs={"x": 4}),
        SubworkflowSpec(id="sub", workflow="child", spec=child, inputs={"n": E("steps.src.x")}),
        task("after", "add", inputs={"a": E("steps.sub"), "b": 1}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "after") == 9
    assert harness.rows(run_id)["sub.double"].status is StepStatus.SUCCEEDED


def test_logs_metrics_progress_are_recorded(harness: Harness) -> None:
    status, run_id = harness.run(flow(task("talk", "chatty", inputs={"n": 3})))
    assert status is RunStatus.SUCCEEDED
    row = harness.store.get_step_run(run_id, "talk")
    lines = [r.text for r in harness.store.logs(run_id, row.id)]
    assert lines == ["line 0", "line 1", "line 2"]
    metrics = harness.store.metrics(run_id)
    assert [(m.name, m.step) for m in metrics] == [("loss", 0), ("loss", 1), ("loss", 2)]
    kinds = {e.kind for e in harness.store.events(run_id)}
    assert {"run", "step", "progress"} <= kinds


def test_a_single_value_is_also_its_output_named_return(inline: Harness) -> None:
    """``steps.make.return`` is ``steps.make`` (a step's single output is called ``return``,
    as ``kaon get --output return`` names it), taken by reference like any plain path."""
    spec = flow(
        task("make", "biglist", inputs={"n": 4}),
        task("sum", "total", inputs={"values": E("steps.make.return")}),
        task("first", "const", inputs={"value": E("steps.make.return[1]")}),
        task("more", "const", inputs={"value": E("size(steps.make.return) + 1")}),
        task("when", "const", inputs={"value": 7}, when="steps.make.return[3] == 3"),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert inline.value(run_id, "sum") == 6 and inline.value(run_id, "first") == 1
    assert inline.value(run_id, "more") == 5 and inline.value(run_id, "when") == 7

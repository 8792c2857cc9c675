"""The restart's plan against its former self: the rows ``plan_restart`` resets one by one,
with every row inside the ones it redoes whole, are exactly the rows the former
``restart_run`` reset after reading the whole run (``_restart_reference``), from every step
of runs with nested foreach, loops, subworkflows, branches not taken and failures."""

from __future__ import annotations

from typing import Any

import pytest
from _restart_reference import reference_reset
from conftest import E, Harness, flow, task

from kaon.engine import operations
from kaon.model.specs import (
    FailureMode,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    SubworkflowSpec,
    TriggerRule,
    WorkflowSpec,
)
from kaon.model.status import RunStatus
from kaon.store.base import StepRunRecord

ALL_DONE = TriggerRule.ALL_DONE


def _nested() -> WorkflowSpec:
    inner = GraphSpec(
        steps=(
            task("a", "add", inputs={"a": E("1 / (item - 1)"), "b": 1}),  # item 1 fails
            task("b", "const", inputs={"value": E("item")}, needs=("a",)),
        )
    )
    body = GraphSpec(
        steps=(
            task("x", "add", inputs={"a": E("item"), "b": 1}),
            task("two", "const", inputs={"value": 2}, when="item == 2", needs=("x",)),
            ForeachSpec(
                id="in",
                items=E("[0, 1, 2]"),
                body=inner,
                needs=("x",),
                on_failure=FailureMode.IGNORE,
            ),
            task("y", "const", inputs={"value": E("steps.x")}, needs=("in",)),
        )
    )
    return flow(
        task("src", "const", inputs={"value": [1, 2, 3]}),
        ForeachSpec(id="fe", items=E("steps.src"), body=body, concurrency=2, needs=("src",)),
        task("side", "const", inputs={"value": 1}),
        task("never", "const", inputs={"value": 1}, when="false", needs=("side",)),
        task(
            "join", "const", inputs={"value": 1}, needs=("fe",), trigger_rule=TriggerRule.ALL_DONE
        ),
    )


def _loop_and_sub() -> WorkflowSpec:
    loop_body = GraphSpec(
        steps=(
            task("work", "const", inputs={"value": E("iteration")}),
            task("check", "const", inputs={"value": E("iteration >= 2")}, needs=("work",)),
        ),
        output="check",
    )
    kid_body = GraphSpec(steps=(task("k", "add", inputs={"a": E("item"), "b": 1}),))
    kid = WorkflowSpec(
        name="kid",
        graph=GraphSpec(
            steps=(
                task("pre", "const", inputs={"value": 1}),
                ForeachSpec(id="each", items=E("[1, 2]"), body=kid_body, needs=("pre",)),
                task(
                    "post",
                    "add",
                    inputs={"a": 1, "b": E("1 / 0")},
                    needs=("each",),
                    on_failure=FailureMode.IGNORE,
                ),
                task(  # skipped by its condition after a failure: decided again on restart
                    "maybe",
                    "const",
                    inputs={"value": 1},
                    when="false",
                    needs=("post",),
                    trigger_rule=ALL_DONE,
                ),
                task("last", "add", inputs={"a": 1, "b": E("1 / 0")}, needs=("maybe",)),
            )
        ),
    )
    return flow(
        LoopSpec(id="lp", body=loop_body, until="steps.check", max_iterations=5),
        SubworkflowSpec(id="sub", workflow="kid", spec=kid, needs=("lp",)),
        task(
            "tail", "const", inputs={"value": 1}, needs=("sub",), trigger_rule=TriggerRule.ALL_DONE
        ),
    )


def _planned(h: Harness, run_id: str, rows: list[StepRunRecord], **kwargs: Any) -> set[int]:
    spec = operations.run_spec(h.store, h.store.get_run(run_id))
    plan = operations.plan_restart(h.store, spec, run_id, **kwargs)
    children: dict[int | None, list[int]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row.id)
    found, todo = set(plan.reset), list(plan.below)
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@pytest.mark.parametrize("make", [_nested, _loop_and_sub], ids=["nested", "loop_and_sub"])
def test_the_restart_plan_resets_what_it_reset_before(inline: Harness, make: Any) -> None:
    spec = make()
    status, run_id = inline.run(spec)
    assert status in (RunStatus.FAILED, RunStatus.SUCCEEDED)
    rows = inline.store.step_runs(run_id, all_levels=True)
    assert len(rows) > 15
    steps = [r.path for r in rows if r.kind not in ("item", "iteration")]
    cases: list[tuple[str | None, bool]] = [(None, False)]
    cases += [(path, only) for path in steps for only in (False, True)]
    record_spec = operations.run_spec(inline.store, inline.store.get_run(run_id))
    for from_path, only in cases:
        expected = reference_reset(inline.store, record_spec, run_id, from_path, only)
        planned = _planned(inline, run_id, rows, from_path=from_path, only=only)
        shown = {r.id: r.path for r in rows}
        assert planned == expected, (
            from_path,
            only,
            sorted(shown[i] for i in planned - expected),
            sorted(shown[i] for i in expected - planned),
        )

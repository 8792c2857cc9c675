"""A foreach, loop or subworkflow step's own ``on_failure`` and ``timeout``.

A failure inside a container is handled inside it first; the container then fails, and its
own failure mode decides what that does to the run: ``ignore`` on a foreach lets every item
run and the run go on past it, ``finish_running`` drains, ``fail_fast`` stops the run and shows
the container ``failed`` (not ``cancelled``). A container's ``timeout`` bounds the whole step.
"""

from __future__ import annotations

import time

from conftest import E, Harness, flow, task

from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.params import ParamSpec, ParamType
from kaon.model.specs import (
    Const,
    FailureMode,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    StepDefaults,
    SubworkflowSpec,
    TriggerRule,
)
from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import StepRunRecord


def _failing_foreach(mode: FailureMode | None, **fields: object) -> ForeachSpec:
    """Items 1, 2, 3 one at a time; item 2 divides by zero."""
    body = GraphSpec(steps=(task("x", "add", inputs={"a": E("item"), "b": E("1 / (item - 2)")}),))
    return ForeachSpec(
        id="fe", items=E("[1, 2, 3]"), body=body, concurrency=1, on_failure=mode, **fields
    )


def test_ignore_on_a_foreach_runs_every_item_and_the_run_goes_on(harness: Harness) -> None:
    spec = flow(
        _failing_foreach(FailureMode.IGNORE),
        task(
            "after", "const", inputs={"value": 7}, needs=("fe",), trigger_rule=TriggerRule.ALL_DONE
        ),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED, harness.errors(run_id)
    rows = harness.rows(run_id)
    assert rows["fe[1].x"].status is StepStatus.FAILED
    assert rows["fe[0].x"].status is StepStatus.SUCCEEDED
    assert rows["fe[2].x"].status is StepStatus.SUCCEEDED  # the item after the failure ran
    assert rows["fe"].status is StepStatus.FAILED
    assert rows["fe"].error is not None and "1 of 3 items" in rows["fe"].error["message"]
    # The failed item's own row says which of its steps failed (it ended by itself).
    assert rows["fe[1]"].status is StepStatus.FAILED
    assert _error(rows["fe[1]"]) == _child_failed("step fe[1].x failed")
    assert rows["fe[0]"].error is None
    assert harness.value(run_id, "after") == 7


def _child_failed(message: str) -> tuple[str, str]:
    return ("ChildFailed", message)


def _error(row: StepRunRecord) -> tuple[str, str] | None:
    return None if row.error is None else (row.error["type"], row.error["message"])


def test_ignore_as_the_workflows_default_covers_a_foreach(inline: Harness) -> None:
    spec = flow(_failing_foreach(None), defaults=StepDefaults(on_failure=FailureMode.IGNORE))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert inline.rows(run_id)["fe[2].x"].status is StepStatus.SUCCEEDED


def test_a_steps_own_mode_inside_an_ignored_foreach_still_applies(inline: Harness) -> None:
    """``ignore`` on the inner step: the item succeeds; the foreach too."""
    body = GraphSpec(
        steps=(
            task(
                "x",
                "add",
                inputs={"a": E("item"), "b": E("1 / (item - 2)")},
                on_failure=FailureMode.IGNORE,
            ),
        )
    )
    spec = flow(ForeachSpec(id="fe", items=E("[1, 2, 3]"), body=body))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert inline.rows(run_id)["fe"].status is StepStatus.SUCCEEDED


def test_finish_running_on_a_foreach_starts_no_new_item_and_lets_siblings_finish(
    harness: Harness,
) -> None:
    state = str(harness.state)
    spec = flow(
        _failing_foreach(FailureMode.FINISH_RUNNING),
        task("slow", "sleeper", inputs={"seconds": 1.0, "state": state, "name": "s"}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.FAILED
    rows = harness.rows(run_id)
    assert rows["slow"].status is StepStatus.SUCCEEDED and harness.count("s_end") == 1
    assert "fe[2].x" not in rows  # no new item after the failure
    assert rows["fe"].status is StepStatus.FAILED  # not cancelled: it holds a failed item
    assert rows["fe"].error is not None and rows["fe"].error["type"] == "ChildFailed"


def test_fail_fast_shows_the_foreach_and_its_item_failed_not_cancelled(harness: Harness) -> None:
    spec = flow(
        _failing_foreach(None),
        task("slow", "sleeper", inputs={"seconds": 20}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.FAILED
    rows = harness.rows(run_id)
    assert rows["fe[1].x"].status is StepStatus.FAILED
    assert rows["fe[1]"].status is StepStatus.FAILED
    assert _error(rows["fe[1]"]) == _child_failed("step fe[1].x failed")
    assert rows["fe"].status is StepStatus.FAILED
    assert rows["fe"].error is not None and rows["fe"].error["type"] == "ChildFailed"
    assert rows["slow"].status is StepStatus.CANCELLED


def test_ignore_on_a_subworkflow_contains_its_failure(harness: Harness) -> None:
    child = flow(
        task("bad", "add", inputs={"a": E("params.n"), "b": E("1 / 0")}),
        name="child",
        params=(ParamSpec("n", ParamType.INT),),
    )
    spec = flow(
        SubworkflowSpec(
            id="sub",
            workflow="child",
            spec=child,
            inputs={"n": Const(1)},
            on_failure=FailureMode.IGNORE,
        ),
        task("after", "const", inputs={"value": 3}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED, harness.errors(run_id)
    rows = harness.rows(run_id)
    assert rows["sub"].status is StepStatus.FAILED and rows["sub.bad"].status is StepStatus.FAILED
    assert harness.value(run_id, "after") == 3


def test_ignore_on_a_loop_contains_its_failure(inline: Harness) -> None:
    body = GraphSpec(steps=(task("bad", "boom"),))
    spec = flow(
        LoopSpec(id="lp", body=body, until="true", on_failure=FailureMode.IGNORE),
        task("after", "const", inputs={"value": 4}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert inline.rows(run_id)["lp"].status is StepStatus.FAILED


def _slow_foreach(seconds: float = 20, **fields: object) -> ForeachSpec:
    body = GraphSpec(steps=(task("nap", "sleeper", inputs={"seconds": seconds}),))
    return ForeachSpec(id="fe", items=E("[1, 2]"), body=body, **fields)


def test_a_foreach_timeout_stops_its_items_and_fails_it(harness: Harness) -> None:
    # An inline attempt's thread cannot be killed: it sleeps less, and is only cancelled.
    seconds = 3 if harness.executor_name == "inline" else 20
    started = time.monotonic()
    status, run_id = harness.run(flow(_slow_foreach(seconds, timeout_s=0.5)))
    assert status is RunStatus.FAILED
    assert time.monotonic() - started < seconds - 0.5
    rows = harness.rows(run_id)
    error = rows["fe"].error
    assert rows["fe"].status is StepStatus.FAILED
    assert error is not None and error["type"] == "Timeout" and error["timeout"] is True
    assert "0.5s" in error["message"]
    assert rows["fe[0].nap"].status is StepStatus.CANCELLED


def test_a_timed_out_foreach_under_ignore_lets_the_run_go_on(inline: Harness) -> None:
    spec = flow(
        _slow_foreach(3, timeout_s=0.3, on_failure=FailureMode.IGNORE),
        task(
            "after", "const", inputs={"value": 5}, needs=("fe",), trigger_rule=TriggerRule.ALL_DONE
        ),
    )
    started = time.monotonic()
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED and time.monotonic() - started < 2.5
    assert inline.rows(run_id)["fe"].status is StepStatus.FAILED
    assert inline.value(run_id, "after") == 5


def test_a_loop_and_a_subworkflow_timeout_are_enforced(process: Harness) -> None:
    nap = GraphSpec(steps=(task("nap", "sleeper", inputs={"seconds": 20}),))
    child = flow(task("nap", "sleeper", inputs={"seconds": 20}), name="child")
    spec = flow(
        LoopSpec(id="lp", body=nap, until="false", timeout_s=0.4, on_failure=FailureMode.IGNORE),
        SubworkflowSpec(id="sub", workflow="child", spec=child, timeout_s=0.4),
    )
    started = time.monotonic()
    status, run_id = process.run(spec)
    assert status is RunStatus.FAILED and time.monotonic() - started < 10
    rows = process.rows(run_id)
    for path in ("lp", "sub"):
        error = rows[path].error
        assert rows[path].status is StepStatus.FAILED, path
        assert error is not None and error["type"] == "Timeout", path


def test_the_workflows_default_attempt_timeout_does_not_bound_a_foreach(inline: Harness) -> None:
    """``defaults.timeout`` is each task attempt's limit, not a container's."""
    body = GraphSpec(steps=(task("nap", "sleeper", inputs={"seconds": 0.2}),))
    spec = flow(
        ForeachSpec(id="fe", items=E("[1, 2, 3]"), body=body, concurrency=1),
        defaults=StepDefaults(timeout_s=0.5),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)


def test_a_container_inside_an_ignored_one_keeps_its_own_mode(inline: Harness) -> None:
    """An ``ignore`` foreach around a ``finish_running`` foreach: the inner one starts no new
    item after its failure and ends failed; the outer one absorbs that, and the run goes on."""
    body = GraphSpec(steps=(task("x", "add", inputs={"a": E("item"), "b": E("1 / (item - 2)")}),))
    inner = ForeachSpec(
        id="inner",
        items=E("[1, 2, 3]"),
        body=body,
        concurrency=1,
        on_failure=FailureMode.FINISH_RUNNING,
    )
    outer = ForeachSpec(
        id="outer", items=E("[1]"), body=GraphSpec(steps=(inner,)), on_failure=FailureMode.IGNORE
    )
    spec = flow(outer, task("after", "const", inputs={"value": 9}))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    rows = inline.rows(run_id)
    assert rows["outer[0].inner[1].x"].status is StepStatus.FAILED
    assert "outer[0].inner[2].x" not in rows  # no new item after the inner failure
    assert rows["outer[0].inner"].status is StepStatus.FAILED
    assert rows["outer"].status is StepStatus.FAILED
    assert inline.value(run_id, "after") == 9


def test_fail_fast_inside_an_ignored_foreach_stops_the_items_other_steps(
    harness: Harness,
) -> None:
    """A ``fail_fast`` failure contained by an ``ignore`` foreach stops what runs beside it in
    its item at once (as it stops a whole run outside any container), not when those steps
    end: the item and the inner foreach end failed, their running steps cancelled; the other
    items and the run go on."""
    state = str(harness.state)
    inner_body = GraphSpec(
        steps=(
            task("y", "add", inputs={"a": E("item"), "b": E("1 / (item - 2)")}),
            task("z", "sleeper", inputs={"seconds": 15, "state": state, "name": "z"}),
        )
    )
    inner = ForeachSpec(id="inner", items=E("[0, 2]"), body=inner_body, concurrency=2)
    body = GraphSpec(
        steps=(
            inner,
            task("slow", "sleeper", inputs={"seconds": 15, "state": state, "name": "s"}),
        )
    )
    outer = ForeachSpec(
        id="outer", items=E("[1]"), body=body, on_failure=FailureMode.IGNORE, concurrency=4
    )
    spec = flow(
        outer,
        task(
            "after",
            "const",
            inputs={"value": 9},
            needs=("outer",),
            trigger_rule=TriggerRule.ALL_DONE,
        ),
    )
    began = time.monotonic()
    status, run_id = harness.run(spec)
    assert time.monotonic() - began < 10  # not after the 15 s sleepers
    assert status is RunStatus.SUCCEEDED, harness.errors(run_id)
    rows = harness.rows(run_id)
    assert rows["outer[0].inner[1].y"].status is StepStatus.FAILED
    assert rows["outer[0].inner[1].z"].status is StepStatus.CANCELLED
    assert rows["outer[0].inner[0].z"].status is StepStatus.CANCELLED  # the other item's
    assert rows["outer[0].slow"].status is StepStatus.CANCELLED
    assert rows["outer[0].inner[1]"].status is StepStatus.FAILED
    assert rows["outer[0].inner"].status is StepStatus.FAILED
    assert rows["outer[0]"].status is StepStatus.FAILED
    assert rows["outer"].status is StepStatus.FAILED
    assert harness.value(run_id, "after") == 9
    assert harness.count("s_end") == 0 and harness.count("z_end") == 0


def test_fail_fast_beside_a_running_step_in_an_ignored_subworkflow(inline: Harness) -> None:
    """The failed step and the step it stops are in the same frame (a subworkflow's body):
    the sibling is cancelled at once, the subworkflow fails, the run goes on."""
    state = str(inline.state)
    inner = flow(
        task("bad", "add", inputs={"a": 1, "b": E("1 / 0")}),
        task("slow", "sleeper", inputs={"seconds": 15, "state": state, "name": "s"}),
    )
    sub = SubworkflowSpec(id="sub", workflow=inner.name, spec=inner, on_failure=FailureMode.IGNORE)
    spec = flow(sub, task("after", "const", inputs={"value": 4}))
    began = time.monotonic()
    status, run_id = inline.run(spec)
    assert time.monotonic() - began < 10
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    rows = inline.rows(run_id)
    assert rows["sub.bad"].status is StepStatus.FAILED
    assert rows["sub.slow"].status is StepStatus.CANCELLED
    assert rows["sub.slow"].reason == "step sub.bad failed"
    assert rows["sub"].status is StepStatus.FAILED
    assert inline.value(run_id, "after") == 4


def test_finish_running_inside_an_ignored_foreach_lets_the_items_steps_end(inline: Harness) -> None:
    """With ``finish_running`` the failed step's siblings in the item run to their end."""
    state = str(inline.state)
    body = GraphSpec(
        steps=(
            task(
                "bad",
                "add",
                inputs={"a": 1, "b": E("1 / 0")},
                on_failure=FailureMode.FINISH_RUNNING,
            ),
            task("slow", "sleeper", inputs={"seconds": 0.5, "state": state, "name": "s"}),
        )
    )
    outer = ForeachSpec(id="outer", items=E("[1]"), body=body, on_failure=FailureMode.IGNORE)
    status, run_id = inline.run(flow(outer))
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    rows = inline.rows(run_id)
    assert rows["outer[0].slow"].status is StepStatus.SUCCEEDED and inline.count("s_end") == 1
    assert rows["outer[0]"].status is StepStatus.FAILED


def test_an_item_whose_steps_all_ended_is_not_shown_cancelled_by_a_stop(inline: Harness) -> None:
    """A ``fail_fast`` stop inside an ``ignore`` foreach closed every open item of the inner
    foreach ``cancelled``, also one whose task had succeeded in the same turn (its end not
    processed yet): ``day[0] cancelled`` beside ``day[0].crunch succeeded``. The engine is
    turned by hand, so that the items' ends are one turn's events, successes first."""
    seconds = E("item == 13 ? 0.4 : 0.05")
    body = GraphSpec(
        steps=(
            task("crunch", "nap_divide", inputs={"item": E("item"), "bad": 13, "seconds": seconds}),
        )
    )
    day = ForeachSpec(id="day", items=E("[12, 13, 14, 15]"), body=body, concurrency=4)
    region = ForeachSpec(
        id="region", items=E("[1]"), body=GraphSpec(steps=(day,)), on_failure=FailureMode.IGNORE
    )
    run_id = inline.create(flow(region))
    engine = Engine(inline.store, create_executor("inline", workers=4), inline.artifacts)
    engine.start()
    try:
        engine.add_run(run_id)
        for _ in range(5):  # start the four items (no loop drives the engine: events wait)
            engine.turn(max_wait=0.01)
        time.sleep(0.8)  # every item ended; their events wait in the engine's inbox
        deadline = time.monotonic() + 10
        while engine.runs and time.monotonic() < deadline:
            engine.turn(max_wait=0.05)
    finally:
        engine.close()
    rows = inline.rows(run_id)
    assert rows["region[0].day[1].crunch"].status is StepStatus.FAILED
    for index in (0, 2, 3):
        assert rows[f"region[0].day[{index}].crunch"].status is StepStatus.SUCCEEDED
        assert rows[f"region[0].day[{index}]"].status is StepStatus.SUCCEEDED, index
    assert rows["region[0].day[1]"].status is StepStatus.FAILED
    assert inline.store.get_run(run_id).status is RunStatus.SUCCEEDED


def test_a_drained_foreach_counts_its_failed_items_of_those_started(inline: Harness) -> None:
    """The drain's message read `1 items of fe failed`; the same as a foreach's own end."""
    body = GraphSpec(
        steps=(
            task(
                "w",
                "nap_divide",
                inputs={"item": E("item"), "bad": 1, "seconds": E("item == 1 ? 0.05 : 0.6")},
            ),
        )
    )
    spec = flow(
        ForeachSpec(
            id="fe",
            items=E("[0, 1, 2, 3]"),
            body=body,
            concurrency=2,
            on_failure=FailureMode.FINISH_RUNNING,
        )
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    error = inline.rows(run_id)["fe"].error
    assert error is not None and error["message"] == "1 of 2 items of fe failed"

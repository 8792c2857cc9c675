"""A foreach with ``min_success``: every item runs whatever the others do, and the foreach
succeeds when enough of them did, ``null`` standing for each failed item in its output."""

from __future__ import annotations

import dataclasses

from conftest import E, Harness, flow, task

from kaon.model.specs import Const, FailureMode, ForeachSpec, GraphSpec, StepSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus


def _sweep(h: Harness, min_success: float | None, concurrency: int = 2) -> WorkflowSpec:
    state = str(h.state)
    body = GraphSpec(
        steps=(
            task("trial", "nap_divide", inputs={"item": E("item"), "bad": 3, "seconds": 0.01}),
            task("mark", "add", needs=("trial",), inputs={"a": E("steps.trial"), "state": state}),
        )
    )
    return flow(
        task("src", "const", inputs={"value": [1, 2, 3, 4, 5]}),
        ForeachSpec(
            id="fe",
            items=E("steps.src"),
            body=body,
            concurrency=concurrency,
            min_success=min_success,
        ),
        task("best", "const", inputs={"value": E("steps.fe")}),
    )


def test_enough_items_succeed_and_the_failed_one_is_null(harness: Harness) -> None:
    status, run_id = harness.run(_sweep(harness, 0.8))
    assert status is RunStatus.SUCCEEDED, harness.store.get_run(run_id).error
    rows = harness.rows(run_id)
    assert rows["fe"].status is StepStatus.SUCCEEDED
    assert rows["fe"].reason == "1 of 5 items of fe failed (min_success 0.8: 4 needed)"
    assert rows["fe[2]"].status is StepStatus.FAILED  # item 3: 3 / (3 - 3)
    values = harness.value(run_id, "best")
    assert values[2] is None and [v for i, v in enumerate(values) if i != 2] == [
        -0.5,
        -2.0,
        4.0,
        2.5,
    ]
    assert harness.count("add") == 4  # every other item ran, after the failure too


def test_too_few_items_succeed_and_the_foreach_fails(inline: Harness) -> None:
    status, run_id = inline.run(_sweep(inline, 0.9, concurrency=1))
    assert status is RunStatus.FAILED
    rows = inline.rows(run_id)
    assert rows["fe"].status is StepStatus.FAILED
    assert "1 of 5 items of fe failed (min_success 0.9: 5 needed)" in str(rows["fe"].error)
    assert inline.count("add") == 4  # the failure stopped no other item
    assert rows["best"].status is StepStatus.CANCELLED  # the foreach failed fast


def test_without_min_success_a_failed_item_fails_the_run_at_once(inline: Harness) -> None:
    status, _ = inline.run(_sweep(inline, None, concurrency=1))
    assert status is RunStatus.FAILED
    assert inline.count("add") == 2  # items 1 and 2; item 3 failed: fail_fast


def test_a_resumed_engine_counts_the_failures_recorded_before_it(inline: Harness) -> None:
    import threading
    import time

    spec = _sweep(inline, 0.8, concurrency=1)
    fe = spec.graph.steps[1]
    assert isinstance(fe, ForeachSpec)
    trial = fe.body.steps[0]
    slow = {**trial.inputs, "seconds": Const(0.3)}  # type: ignore[attr-defined]
    body = GraphSpec(steps=(dataclasses.replace(trial, inputs=slow), fe.body.steps[1]))
    spec = dataclasses.replace(
        spec,
        graph=GraphSpec(
            steps=(spec.graph.steps[0], dataclasses.replace(fe, body=body), spec.graph.steps[2])
        ),
    )
    run_id = inline.create(spec)
    engine = inline.engine()

    def stop_after_the_failure() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = inline.rows(run_id)
            if "fe[2]" in rows and rows["fe[2]"].status is StepStatus.FAILED:
                break
            time.sleep(0.02)
        engine.stop()

    stopper = threading.Thread(target=stop_after_the_failure)
    stopper.start()
    assert inline.drive(run_id, engine=engine) is RunStatus.RUNNING
    stopper.join()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED, inline.store.get_run(run_id).error
    rows = inline.rows(run_id)
    assert rows["fe"].reason == "1 of 5 items of fe failed (min_success 0.8: 4 needed)"
    assert rows["fe[2].trial"].attempts == 1  # the failed item was not run again
    assert inline.value(run_id, "best")[2] is None


def _stopped_sweep(h: Harness, body: tuple[StepSpec, ...], mode: FailureMode) -> WorkflowSpec:
    """A min_success foreach whose item 1 fails, beside a step that fails (under ``mode``)
    once it has: the run stops while the foreach still has items to run."""
    return flow(
        task("src", "const", inputs={"value": [1, 2, 3, 4, 5]}),
        ForeachSpec(
            id="fe",
            items=E("steps.src"),
            body=GraphSpec(steps=body),
            concurrency=1,
            min_success=0.4,
        ),
        task(
            "other", "fail_after", inputs={"state": str(h.state), "flag": "failed"}, on_failure=mode
        ),
    )


def test_a_drain_cancels_the_foreach_its_failed_item_did_not_fail(inline: Harness) -> None:
    state = str(inline.state)
    trial = task(
        "trial",
        "divide_marking",
        inputs={"item": E("item"), "bad": 1, "state": state, "seconds": 0.2},
    )
    spec = _stopped_sweep(inline, (trial,), FailureMode.FINISH_RUNNING)
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    assert inline.store.get_run(run_id).error == "step other failed"
    rows = inline.rows(run_id)
    assert rows["fe[0]"].status is StepStatus.FAILED
    # One failed item of five decides nothing under min_success 0.4: the drain stopped it.
    assert rows["fe"].status is StepStatus.CANCELLED, rows["fe"].error
    assert rows["fe"].reason == "step other failed"


def test_a_stop_cancels_the_foreach_around_a_failed_step_of_a_running_item(
    inline: Harness,
) -> None:
    state = str(inline.state)
    failing = task(
        "a",
        "divide_marking",
        inputs={"item": E("item"), "bad": 1, "state": state},
        on_failure=FailureMode.FINISH_RUNNING,  # its item's other step runs on
    )
    slow = task("b", "sleeper", inputs={"seconds": 1.0})
    status, run_id = inline.run(_stopped_sweep(inline, (failing, slow), FailureMode.FAIL_FAST))
    assert status is RunStatus.FAILED
    assert inline.store.get_run(run_id).error == "step other failed"
    rows = inline.rows(run_id)
    assert rows["fe[0].a"].status is StepStatus.FAILED
    assert rows["fe[0]"].status is StepStatus.FAILED
    assert rows["fe"].status is StepStatus.CANCELLED, rows["fe"].error


def test_a_failed_item_of_several_sinks_is_null_not_a_dict_of_its_sinks(inline: Harness) -> None:
    body = GraphSpec(
        steps=(
            task("trial", "nap_divide", inputs={"item": E("item"), "bad": 3, "seconds": 0.0}),
            task("twice", "add", inputs={"a": E("item"), "b": E("item")}),
        )
    )
    spec = flow(
        task("src", "const", inputs={"value": [1, 2, 3, 4]}),
        ForeachSpec(id="fe", items=E("steps.src"), body=body, min_success=0.5),
        task("best", "const", inputs={"value": E("steps.fe")}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED, inline.store.get_run(run_id).error
    values = inline.value(run_id, "best")
    assert values[2] is None  # item 3 failed: its output is null, whatever its other sink did
    assert values[0] == {"trial": -0.5, "twice": 2}


def test_a_stop_fails_nothing_around_an_ignore_container(inline: Harness) -> None:
    """A run stopped while an ``ignore`` container holds a failure: the container, stopped
    before its items ended, is cancelled (as a min_success foreach is), and so are the steps
    around it; its failed item stays failed. The containers around were failed."""
    state = str(inline.state)
    trial = task("trial", "divide_marking", inputs={"item": E("item"), "bad": 1, "state": state})
    inner = ForeachSpec(
        id="inner",
        items=Const([1, 2, 3]),
        body=GraphSpec(steps=(trial, task("slow", "sleeper", inputs={"seconds": 1.0}))),
        concurrency=1,
        on_failure=FailureMode.IGNORE,
    )
    spec = flow(
        ForeachSpec(id="outer", items=Const([1, 2]), body=GraphSpec(steps=(inner,)), concurrency=1),
        task("other", "fail_after", inputs={"state": state, "flag": "failed"}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    rows = inline.rows(run_id)
    assert rows["outer[0].inner[0].trial"].status is StepStatus.FAILED
    assert rows["outer[0].inner[0]"].status is StepStatus.FAILED
    assert rows["outer[0].inner"].status is StepStatus.CANCELLED, rows["outer[0].inner"].error
    assert rows["outer[0]"].status is StepStatus.CANCELLED, rows["outer[0]"].error
    assert rows["outer"].status is StepStatus.CANCELLED, rows["outer"].error

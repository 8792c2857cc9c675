"""Restart, skip, kill and resume: changing runs from outside the engine."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import E, Harness, flow, task

from kaon.engine import operations
from kaon.engine.engine import Engine
from kaon.errors import InvalidActionError, LeaseError
from kaon.model.specs import (
    FailureMode,
    ForeachSpec,
    GraphSpec,
    RetrySpec,
    SubworkflowSpec,
    TriggerRule,
    WorkflowSpec,
)
from kaon.model.status import RunStatus, StepStatus


def _fix(h: Harness, flag: str) -> None:
    (h.state / flag).write_text("fixed")


def test_restart_from_failed_reuses_succeeded_steps_and_items(harness: Harness) -> None:
    state = str(harness.state)
    body = GraphSpec(
        steps=(
            task("ok", "const", inputs={"value": E("item"), "state": state, "name": "item_ok"}),
            task(
                "gate",
                "fail_unless",
                inputs={"state": state, "flag": "go"},
                when="item == 2",
                needs=("ok",),
            ),
        )
    )
    spec = flow(
        task("first", "const", inputs={"value": 1, "state": state, "name": "first"}),
        ForeachSpec(id="fe", items=E("[1, 2, 3]"), body=body, needs=("first",), concurrency=1),
        task("last", "const", inputs={"value": E("steps.fe")}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.FAILED
    _fix(harness, "go")
    operations.restart_run(harness.store, run_id)
    assert harness.drive(run_id) is RunStatus.SUCCEEDED
    assert harness.count("first") == 1  # not rerun
    assert harness.count("item_ok") == 3  # every item's first step ran exactly once
    assert harness.count("fail_unless_go") == 2
    assert harness.value(run_id, "last") == [None, "fixed", None]
    assert harness.store.get_run(run_id).restarts == 1


def test_restart_from_a_named_step_reruns_it_and_downstream(inline: Harness) -> None:
    state = str(inline.state)
    spec = flow(
        task("a", "const", inputs={"value": 1, "state": state, "name": "a"}),
        task("b", "add", inputs={"a": E("steps.a"), "state": state, "name": "b"}),
        task("c", "add", inputs={"a": E("steps.b"), "state": state, "name": "c"}),
        task("side", "const", inputs={"state": state, "name": "side"}, needs=("a",)),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    time.sleep(0.3)
    restarted_at = time.time()
    operations.restart_run(inline.store, run_id, from_path="b")
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    rows = inline.rows(run_id)
    # A rerun step's time is its new attempt's, not counted from its first run.
    assert rows["b"].started_at is not None and rows["b"].started_at >= restarted_at
    assert rows["a"].started_at is not None and rows["a"].started_at < restarted_at
    assert (inline.count("a"), inline.count("b"), inline.count("c"), inline.count("side")) == (
        1,
        2,
        2,
        1,
    )


def test_restart_leaves_alone_the_containers_it_does_not_reach(inline: Harness) -> None:
    """A step skipped by its condition is a decision, not a failure: a restart that does not
    reach it keeps it, and does not reopen (and re-time) the foreach items around it."""
    state = str(inline.state)
    body = GraphSpec(
        steps=(
            task("x", "add", inputs={"a": E("item"), "state": state, "name": "x"}),
            task("big", "const", inputs={"value": 0}, when="steps.x > 5"),
        )
    )
    spec = flow(
        ForeachSpec(id="fe", items=E("[1, 2, 3]"), body=body),
        task("last", "const", inputs={"value": 3}, needs=("fe",)),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    before = inline.rows(run_id)
    operations.restart_run(inline.store, run_id, from_path="last")
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    after = inline.rows(run_id)
    for path in ("fe", "fe[0]", "fe[1]", "fe[2]", "fe[0].big"):
        timing = (after[path].status, after[path].started_at, after[path].ended_at)
        assert timing == (before[path].status, before[path].started_at, before[path].ended_at)
    assert inline.count("x") == 3


def test_restart_decides_again_a_condition_after_a_redone_step(inline: Harness) -> None:
    """A branch skipped because of a step that failed is decided again once that step is
    redone (here it now succeeds, so the branch runs)."""
    state = str(inline.state)
    spec = flow(
        task(
            "gate",
            "fail_unless",
            inputs={"state": state, "flag": "go"},
            on_failure=FailureMode.IGNORE,
        ),
        task(
            "after",
            "const",
            inputs={"value": 1, "state": state, "name": "after"},
            needs=("gate",),
            when="steps.gate == 'fixed'",
            trigger_rule=TriggerRule.ALL_DONE,
        ),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED  # an ignored failure
    assert inline.rows(run_id)["after"].status is StepStatus.SKIPPED
    _fix(inline, "go")
    operations.restart_run(inline.store, run_id)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.rows(run_id)["after"].status is StepStatus.SUCCEEDED
    assert inline.count("after") == 1


def test_restart_from_step_inside_foreach_item(inline: Harness) -> None:
    state = str(inline.state)
    body = GraphSpec(
        steps=(
            task("x", "add", inputs={"a": E("item"), "state": state, "name": "x"}),
            task("y", "add", inputs={"a": E("steps.x"), "state": state, "name": "y"}),
        )
    )
    spec = flow(
        ForeachSpec(id="fe", items=E("[1, 2]"), body=body),
        task("z", "total", inputs={"values": E("steps.fe")}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    operations.restart_run(inline.store, run_id, from_path="fe[1].y")
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert (inline.count("x"), inline.count("y")) == (2, 3)
    assert inline.value(run_id, "z") == 3.0


def test_restart_refuses_active_run(inline: Harness) -> None:
    run_id = inline.create(flow(task("a", "const")))
    with pytest.raises(InvalidActionError, match="only a finished run"):
        operations.restart_run(inline.store, run_id)


def test_skip_failed_step_with_value_then_continue(harness: Harness) -> None:
    spec = flow(
        task("bad", "boom"),
        task("after", "add", inputs={"a": E("steps.bad"), "b": 1}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.FAILED
    operations.skip_step(harness.store, run_id, "bad", output=41, has_output=True)
    operations.restart_run(harness.store, run_id)
    assert harness.drive(run_id) is RunStatus.SUCCEEDED
    assert harness.value(run_id, "after") == 42
    assert harness.rows(run_id)["bad"].status is StepStatus.SKIPPED


def test_a_step_skipped_without_a_value_gives_downstream_nothing(inline: Harness) -> None:
    """``kaon skip RUN bad`` (no --output): downstream received ``{}``, the skipped step's
    empty outputs read as a mapping of named outputs, not nothing (None)."""
    spec = flow(
        task("bad", "boom"),
        task("after", "const", inputs={"value": E("steps.bad")}),
        task("check", "const", inputs={"value": E("steps.bad == null")}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    operations.skip_step(inline.store, run_id, "bad")
    operations.restart_run(inline.store, run_id)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert inline.value(run_id, "after") is None
    assert inline.value(run_id, "check") is True


def test_a_running_step_skipped_without_a_value_gives_downstream_nothing(
    inline: Harness,
) -> None:
    spec = flow(
        task("slow", "sleeper", inputs={"seconds": 3}),
        task("after", "const", inputs={"value": E("steps.slow")}),
    )
    run_id = inline.create(spec)
    skipper = threading.Timer(
        0.3, operations.send_command, (inline.store, run_id, "skip", {"path": "slow"})
    )
    skipper.start()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.value(run_id, "after") is None


def test_kill_command_reaches_the_running_engine(harness: Harness) -> None:
    state = str(harness.state)
    spec = flow(
        task("slow", "sleeper", inputs={"seconds": 20, "state": state, "name": "s"}),
        task("after", "const", needs=("slow",)),
    )
    run_id = harness.create(spec)
    killer = threading.Timer(0.8, operations.send_command, (harness.store, run_id, "kill", {}))
    killer.start()
    started = time.monotonic()
    assert harness.drive(run_id) is RunStatus.CANCELLED
    assert time.monotonic() - started < 10
    rows = harness.rows(run_id)
    assert rows["slow"].status is StepStatus.CANCELLED
    assert "killed" in (harness.store.get_run(run_id).error or "")


def test_a_run_ended_by_a_killed_step_names_it(inline: Harness) -> None:
    """`kaon kill RUN --step slow` failed the run with "a step failed", though none had."""
    spec = flow(task("slow", "sleeper", inputs={"seconds": 20}))
    run_id = inline.create(spec)
    payload = {"path": "slow"}
    threading.Timer(0.5, operations.send_command, (inline.store, run_id, "cancel", payload)).start()
    assert inline.drive(run_id) is RunStatus.FAILED
    assert inline.store.get_run(run_id).error == "step slow cancelled"


def test_skip_command_on_running_step(inline: Harness) -> None:
    spec = flow(
        task("slow", "sleeper", inputs={"seconds": 3}),
        task("after", "add", inputs={"a": E("steps.slow"), "b": 1}),
    )
    run_id = inline.create(spec)
    payload = {"path": "slow", "output": 9}
    skipper = threading.Timer(0.3, operations.send_command, (inline.store, run_id, "skip", payload))
    skipper.start()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.value(run_id, "after") == 10


def test_a_step_skipped_during_its_retry_delay_keeps_no_error(inline: Harness) -> None:
    """Its row kept the error of the attempt that failed and the time of the retry that
    never came: ``kaon show`` listed a skipped step with an error."""
    state = str(inline.state)
    spec = flow(
        task(
            "flaky",
            "flaky",
            inputs={"state": state, "name": "f", "failures": 5},
            retry=RetrySpec(max_attempts=3, delay_s=5.0),
        ),
        task("after", "add", inputs={"a": E("steps.flaky"), "b": 1}),
    )
    run_id = inline.create(spec)
    payload = {"path": "flaky", "output": 9}
    skipper = threading.Timer(1.0, operations.send_command, (inline.store, run_id, "skip", payload))
    skipper.start()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    row = inline.rows(run_id)["flaky"]
    assert row.status is StepStatus.SKIPPED
    assert (row.error, row.next_attempt_at) == (None, None)
    assert inline.value(run_id, "after") == 10


def test_a_command_the_engine_refuses_is_an_event_naming_it(inline: Harness) -> None:
    """A step finished between the check and the engine's turn: the refusal names the
    command, its path and who sent it (the web UI shows it)."""
    spec = flow(
        task("quick", "const", inputs={"value": 1}),
        task("slow", "sleeper", inputs={"seconds": 1}, needs=("quick",)),
    )
    run_id = inline.create(spec)
    payload = {"path": "quick", "output": 9}
    args = (inline.store, run_id, "skip", payload)
    skipper = threading.Timer(0.4, operations.send_command, args, {"by": "ana"})
    skipper.start()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    (refusal,) = [e.data for e in inline.store.events(run_id) if e.kind == "command_rejected"]
    assert refusal["command"] == "skip" and refusal["path"] == "quick" and refusal["by"] == "ana"
    assert "not waiting or running" in refusal["error"]


def test_cancel_run_without_engine(inline: Harness) -> None:
    run_id = inline.create(flow(task("a", "const")))
    operations.cancel_run(inline.store, run_id, by="tester")
    assert inline.store.get_run(run_id).status is RunStatus.CANCELLED


def test_resume_after_engine_stop_reruns_only_unfinished(inline: Harness) -> None:
    state = str(inline.state)
    spec = flow(
        task("a", "const", inputs={"value": 1, "state": state, "name": "a"}),
        task("slow", "sleeper", inputs={"seconds": 1.0, "state": state, "name": "s"}, needs=("a",)),
        task("c", "const", inputs={"state": state, "name": "c"}, needs=("slow",)),
    )
    run_id = inline.create(spec)
    engine = inline.engine()
    threading.Timer(0.4, engine.stop).start()
    assert inline.drive(run_id, engine=engine) is RunStatus.RUNNING
    assert inline.store.get_run(run_id).owner is None  # lease released on stop
    time.sleep(1.0)  # the abandoned thread finishes its sleep; its result is ignored
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert (inline.count("a"), inline.count("s_start"), inline.count("c")) == (1, 2, 1)
    row = inline.store.get_step_run(run_id, "slow")
    assert [a.status for a in inline.store.attempts(run_id, row.id)] == ["lost", "succeeded"]


def test_lease_blocks_a_second_engine(inline: Harness) -> None:
    run_id = inline.create(flow(task("slow", "sleeper", inputs={"seconds": 0.5})))
    first = inline.engine()
    first.add_run(run_id)
    second = inline.engine()
    with pytest.raises(LeaseError, match="being run by"):
        second.add_run(run_id)
    first.run_until_done(run_id)
    first.close()


def test_terminal_run_cannot_be_driven(inline: Harness) -> None:
    status, run_id = inline.run(flow(task("a", "const")))
    assert status is RunStatus.SUCCEEDED
    engine: Engine = inline.engine()
    with pytest.raises(InvalidActionError, match="use restart"):
        engine.add_run(run_id)
    engine.close()


def test_serve_claims_pending_runs_and_respects_admission(inline: Harness) -> None:
    ids = [inline.create(flow(task("a", "const", inputs={"value": i}))) for i in range(3)]
    held_back = inline.create(flow(task("a", "const")))
    engine = inline.engine()
    thread = threading.Thread(target=engine.serve, kwargs={"admit": lambda r: r.id != held_back})
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(inline.store.get_run(i).status is RunStatus.SUCCEEDED for i in ids):
            break
        time.sleep(0.05)
    engine.stop()
    thread.join(10)
    engine.close()
    assert [inline.value(i, "a") for i in ids] == [0, 1, 2]
    assert inline.store.get_run(held_back).status is RunStatus.PENDING


def test_cancel_one_step_of_a_running_run(inline: Harness) -> None:
    spec = flow(
        task("slow", "sleeper", inputs={"seconds": 5}),
        task("after", "const", needs=("slow",)),
        task("other", "const", inputs={"value": 1}),
    )
    run_id = inline.create(spec)
    args = (inline.store, run_id, "cancel", {"path": "slow"})
    threading.Timer(0.3, operations.send_command, args, {"by": "ops"}).start()
    started = time.monotonic()
    assert inline.drive(run_id) is RunStatus.FAILED
    assert time.monotonic() - started < 4
    rows = inline.rows(run_id)
    assert rows["slow"].status is StepStatus.CANCELLED and "ops" in rows["slow"].reason
    assert rows["after"].status is StepStatus.SKIPPED
    assert rows["other"].status is StepStatus.SUCCEEDED


def _cancel_inside(container: str) -> tuple[WorkflowSpec, str]:
    seconds = E("item") if container == "foreach" else 5
    inner = (
        task("s", "sleeper", inputs={"seconds": seconds}),
        task("after", "const", needs=("s",)),
    )
    other = task("other", "sleeper", inputs={"seconds": 2})
    if container == "foreach":
        body = GraphSpec(steps=inner)
        return flow(ForeachSpec(id="fe", items=E("[0.1, 5]"), body=body), other), "fe[1].s"
    kid = WorkflowSpec(name="kid", graph=GraphSpec(steps=inner))
    return flow(SubworkflowSpec(id="sub", workflow="kid", spec=kid), other), "sub.s"


@pytest.mark.parametrize("container", ["foreach", "subworkflow"])
def test_cancel_one_step_inside_a_container_stops_only_what_follows_it(
    inline: Harness, container: str
) -> None:
    """``kaon kill RUN --step fe[1].s`` failed the run at once and cancelled ``other``, as a
    failure under fail_fast does: the container around the cancelled step ended failed, and
    its failure took effect. At the top level the same cancel lets ``other`` finish."""
    spec, path = _cancel_inside(container)
    run_id = inline.create(spec)
    args = (inline.store, run_id, "cancel", {"path": path})
    threading.Timer(0.5, operations.send_command, args, {"by": "ops"}).start()
    assert inline.drive(run_id) is RunStatus.FAILED
    rows = inline.rows(run_id)
    assert rows[path].status is StepStatus.CANCELLED
    assert rows[path.replace(".s", ".after")].status is StepStatus.SKIPPED
    assert rows["other"].status is StepStatus.SUCCEEDED, rows["other"].reason
    if container == "foreach":
        assert rows["fe[0].after"].status is StepStatus.SUCCEEDED


def test_skip_a_running_foreach_item_step_leaves_siblings_alone(inline: Harness) -> None:
    body = GraphSpec(steps=(task("s", "sleeper", inputs={"seconds": E("item")}),))
    spec = flow(ForeachSpec(id="fe", items=E("[0.2, 3]"), body=body))
    run_id = inline.create(spec)
    args = (inline.store, run_id, "skip", {"path": "fe[1].s", "output": 0})
    threading.Timer(0.6, operations.send_command, args).start()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.value(run_id, "fe") == [0.2, 0]


def test_restart_from_a_step_in_an_earlier_loop_iteration_redoes_later_ones(
    inline: Harness,
) -> None:
    from kaon.model.specs import LoopSpec

    state = str(inline.state)
    body = GraphSpec(
        steps=(
            task("work", "const", inputs={"value": E("iteration"), "state": state, "name": "w"}),
            task("check", "score", inputs={"iteration": E("steps.work")}),
        )
    )
    spec = flow(LoopSpec(id="lp", body=body, until="steps.check.stable", max_iterations=5))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED and inline.count("w") == 3
    operations.restart_run(inline.store, run_id, from_path="lp[0].check")
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.count("w") == 5  # iteration 0's work kept; iterations 1 and 2 redone
    assert inline.value(run_id, "lp") == {"iteration": 2, "stable": True}


def test_restart_only_an_item_leaves_the_other_failed_items_failed(inline: Harness) -> None:
    """ "Retry this item" (``restart_run(from_path="fe[1]", only=True)``) reran every failed
    item: the reset set was always every failed step, and the cone was added to it."""
    from kaon.model.specs import FailureMode

    state = str(inline.state)
    body = GraphSpec(
        steps=(
            task("gate", "fail_unless", inputs={"state": state, "flag": "go"}, when="item != 0"),
        )
    )
    fe = ForeachSpec(id="fe", items=E("[0, 1, 2]"), body=body, on_failure=FailureMode.IGNORE)
    status, run_id = inline.run(flow(fe))
    assert status is RunStatus.SUCCEEDED  # the foreach's failures are ignored
    assert inline.count("fail_unless_go") == 2
    _fix(inline, "go")
    with pytest.raises(InvalidActionError, match="needs the step"):
        operations.restart_run(inline.store, run_id, only=True)
    operations.restart_run(inline.store, run_id, from_path="fe[1]", only=True)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.count("fail_unless_go") == 3  # item 1 only
    rows = inline.rows(run_id)
    assert rows["fe[1].gate"].status is StepStatus.SUCCEEDED
    assert rows["fe[1]"].started_at is not None  # it showed "started —" after a retry
    assert rows["fe[2].gate"].status is StepStatus.FAILED  # still as it was
    assert rows["fe[2]"].status is StepStatus.FAILED
    assert rows["fe"].status is StepStatus.FAILED  # one item still failed
    operations.restart_run(inline.store, run_id, from_path="fe[1]")  # without only: all failed
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.rows(run_id)["fe[2].gate"].status is StepStatus.SUCCEEDED


def test_restart_only_leaves_an_item_it_does_not_reach_as_it_ended(inline: Harness) -> None:
    """An item cancelled by a sibling's failure, and not reached by ``restart --from X
    --only``, was closed again on the restart as ``failed`` with a ``null`` output: the
    reopened frame kept its end time but took the status and output of a fresh close."""
    state = str(inline.state)
    body = GraphSpec(
        steps=(
            task("nap", "sleeper", inputs={"seconds": 3}, when="item == 0"),
            task("gate", "fail_unless", inputs={"state": state, "flag": "go"}, when="item == 1"),
        )
    )
    status, run_id = inline.run(flow(ForeachSpec(id="fe", items=E("[0, 1]"), body=body)))
    assert status is RunStatus.FAILED
    before = inline.rows(run_id)["fe[0]"]
    assert before.status is StepStatus.CANCELLED
    _fix(inline, "go")
    operations.restart_run(inline.store, run_id, from_path="fe[1].gate", only=True)
    assert inline.drive(run_id) is RunStatus.FAILED  # item 0 is still cancelled
    rows = inline.rows(run_id)
    assert rows["fe[1]"].status is StepStatus.SUCCEEDED
    after = rows["fe[0]"]
    assert after.status is StepStatus.CANCELLED
    assert after.outputs == before.outputs
    assert after.ended_at == before.ended_at


def test_restart_only_is_not_drained_by_a_failure_it_keeps(inline: Harness) -> None:
    """``restart --from X --only`` keeps the run's other failed steps failed; one that had
    failed under ``finish_running`` was read back as a drain of the restarted run, so X and
    the items under it never started and were left ``pending`` in the failed run."""
    from kaon.model.specs import FailureMode

    state = str(inline.state)
    gate = task("gate", "fail_unless", inputs={"state": state, "flag": "go"})
    spec = flow(
        task("bad", "boom", on_failure=FailureMode.FINISH_RUNNING),
        ForeachSpec(
            id="fe",
            items=E("[0, 1]"),
            body=GraphSpec(steps=(gate,)),
            on_failure=FailureMode.FINISH_RUNNING,
        ),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    assert inline.count("fail_unless_go") == 2
    _fix(inline, "go")
    operations.restart_run(inline.store, run_id, from_path="fe", only=True)
    assert inline.drive(run_id) is RunStatus.FAILED  # bad is still failed
    rows = inline.rows(run_id)
    assert inline.count("fail_unless_go") == 4
    assert [rows[p].status for p in ("fe", "fe[0].gate", "fe[1].gate")] == [
        StepStatus.SUCCEEDED
    ] * 3
    assert rows["bad"].status is StepStatus.FAILED
    assert [p for p, r in rows.items() if not r.status.is_terminal] == []

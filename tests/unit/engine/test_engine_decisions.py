"""Decisions are rows, not memory: a skip of a step that has not started, the draining of a
``finish_running`` failure, and a run's time limit all survive a stop and a resume."""

from __future__ import annotations

import threading
import time

from conftest import E, Harness, flow, task

from kaon.engine import operations
from kaon.engine.nodes import USER_SKIP
from kaon.model.specs import FailureMode, ForeachSpec, GraphSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus


def _stop_after(h: Harness, run_id: str, seconds: float) -> None:
    engine = h.engine()
    threading.Timer(seconds, engine.stop).start()
    assert h.drive(run_id, engine=engine) is RunStatus.RUNNING


def test_a_skip_of_a_pending_step_survives_a_resume(inline: Harness) -> None:
    state = str(inline.state)
    spec = flow(
        task("slow", "sleeper", inputs={"seconds": 1.0}),
        task(
            "later",
            "add",
            inputs={"a": 1, "b": 1, "state": state, "name": "later"},
            needs=("slow",),
        ),
        task("final", "add", inputs={"a": E("steps.later"), "b": 1}),
    )
    run_id = inline.create(spec)
    payload = {"path": "later", "output": 41}
    threading.Timer(0.2, operations.send_command, (inline.store, run_id, "skip", payload)).start()
    _stop_after(inline, run_id, 0.6)
    assert inline.store.pending_commands(run_id) == []  # the command was consumed
    time.sleep(0.6)  # the abandoned attempt ends; its result is ignored
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    row = inline.store.get_step_run(run_id, "later")
    assert (row.status, row.reason) == (StepStatus.SKIPPED, USER_SKIP)
    assert inline.count("later") == 0
    assert inline.value(run_id, "final") == 42


def test_finish_running_draining_survives_a_resume(inline: Harness) -> None:
    state = str(inline.state)
    spec = flow(
        task("bad", "boom", on_failure=FailureMode.FINISH_RUNNING),
        task("slow", "sleeper", inputs={"seconds": 1.0, "state": state, "name": "slow"}),
        task("after", "const", inputs={"state": state, "name": "after"}, needs=("slow",)),
    )
    run_id = inline.create(spec)
    _stop_after(inline, run_id, 0.5)
    assert inline.store.get_step_run(run_id, "bad").status is StepStatus.FAILED
    time.sleep(0.7)
    assert inline.drive(run_id) is RunStatus.FAILED
    rows = inline.rows(run_id)
    # Draining starts nothing new, but lets running steps finish: slow was running when the
    # engine stopped, so its lost attempt runs again (as it would have ended without the
    # stop), and after, which waits on it, never starts.
    assert rows["slow"].status is StepStatus.SUCCEEDED
    assert rows["slow"].platform_attempts == 1
    assert "after" not in rows or rows["after"].status is not StepStatus.SUCCEEDED
    assert (inline.count("slow_start"), inline.count("after")) == (2, 0)


def test_finish_running_runs_again_a_step_whose_worker_was_lost(process: Harness) -> None:
    """A platform failure (a lost worker) of a running step while draining is retried under
    the platform budget: the step was running, so finish_running lets it end."""
    state = str(process.state)
    spec = flow(
        task("bad", "boom", on_failure=FailureMode.FINISH_RUNNING),
        task("c", "crash_once_after", inputs={"state": state, "seconds": 0.5}),
        task("after", "const", inputs={"state": state, "name": "after"}, needs=("c",)),
    )
    status, run_id = process.run(spec)
    assert status is RunStatus.FAILED
    rows = process.rows(run_id)
    assert (rows["c"].status, rows["c"].platform_attempts) == (StepStatus.SUCCEEDED, 1)
    assert process.count("after") == 0


def test_restart_of_a_timed_out_run_gets_its_whole_time_limit(inline: Harness) -> None:
    state = str(inline.state)
    spec = flow(
        task("work", "sleep_unless", inputs={"state": state, "flag": "fast", "seconds": 3}),
        timeout_s=1.0,
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    assert "timed out" in (inline.store.get_run(run_id).error or "")
    (inline.state / "fast").write_text("")
    time.sleep(0.2)
    operations.restart_run(inline.store, run_id)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED


def test_a_foreach_timeout_counts_from_its_first_start_across_a_resume(inline: Harness) -> None:
    """The container's deadline is rebuilt from its row's start, not restarted by a resume."""
    body = (task("nap", "sleeper", inputs={"seconds": 0.4}),)
    spec = flow(
        ForeachSpec(
            id="fe",
            items=E("[1, 2, 3, 4, 5, 6]"),
            body=GraphSpec(steps=body),
            concurrency=1,
            timeout_s=1.5,
        )
    )
    run_id = inline.create(spec)
    _stop_after(inline, run_id, 1.0)  # two items done, the deadline 0.5 s away
    time.sleep(0.3)
    started = time.monotonic()
    assert inline.drive(run_id) is RunStatus.FAILED
    assert time.monotonic() - started < 1.2  # not another 1.5 s, nor the 1.6 s left of items
    error = inline.store.get_step_run(run_id, "fe").error
    assert error is not None and error["type"] == "Timeout"


def _draining_foreach(bad: int) -> WorkflowSpec:
    """A ``finish_running`` foreach of 4 items, 2 at a time: item ``bad`` fails at once, the
    others nap a second."""
    step = task(
        "w",
        "nap_divide",
        inputs={"item": E("item"), "bad": bad, "seconds": E(f"item == {bad} ? 0.05 : 1.0")},
    )
    return flow(
        ForeachSpec(
            id="fe",
            items=E("[0, 1, 2, 3]"),
            body=GraphSpec(steps=(step,)),
            concurrency=2,
            on_failure=FailureMode.FINISH_RUNNING,
        )
    )


def test_a_failed_item_keeps_its_end_when_a_resumed_drain_ends(inline: Harness) -> None:
    """The drain's end, reached after a resume, wrote the abort's time over the end of the
    item that had failed before the stop (329 ms became 2 s)."""
    spec = _draining_foreach(bad=1)
    run_id = inline.create(spec)
    _stop_after(inline, run_id, 0.5)
    before = inline.store.get_step_run(run_id, "fe[1]")
    assert before.status is StepStatus.FAILED and before.ended_at is not None
    time.sleep(0.6)
    assert inline.drive(run_id) is RunStatus.FAILED
    after = inline.store.get_step_run(run_id, "fe[1]")
    assert (after.status, after.ended_at) == (StepStatus.FAILED, before.ended_at)
    assert inline.store.get_step_run(run_id, "fe[0].w").status is StepStatus.SUCCEEDED


def test_a_resumed_drain_lets_the_running_items_of_a_foreach_finish(inline: Harness) -> None:
    """A drain rebuilt on resume (a ``finish_running`` failure before the stop) reopened no
    item of a running foreach: the items that were running never ran again, and their rows
    and attempts were left ``running`` in the failed run."""
    state = str(inline.state)
    nap = task("w", "sleeper", inputs={"seconds": 1.0, "state": state, "name": "w"})
    spec = flow(
        task("bad", "boom", on_failure=FailureMode.FINISH_RUNNING),
        ForeachSpec(id="fe", items=E("[0, 1, 2, 3]"), body=GraphSpec(steps=(nap,)), concurrency=2),
    )
    run_id = inline.create(spec)
    _stop_after(inline, run_id, 0.5)
    assert inline.store.get_step_run(run_id, "bad").status is StepStatus.FAILED
    assert inline.store.get_step_run(run_id, "fe[1].w").status is StepStatus.RUNNING
    time.sleep(0.7)  # the abandoned attempts end; their results are ignored
    assert inline.drive(run_id) is RunStatus.FAILED
    rows = inline.rows(run_id)
    tasks = {p: r.status for p, r in rows.items() if r.kind == "task" and p != "bad"}
    assert tasks == {"fe[0].w": StepStatus.SUCCEEDED, "fe[1].w": StepStatus.SUCCEEDED}
    assert [p for p, r in rows.items() if not r.status.is_terminal] == []
    assert [a for a in inline.store.attempts(run_id) if a.status == "running"] == []
    assert inline.count("w_start") == 4  # the two running items, once more after the stop


def test_a_resumed_drain_reopens_the_items_after_the_one_that_failed(inline: Harness) -> None:
    """The same when the failure is in an item before the running ones: reopening the failed
    item rebuilt the drain, which stopped the reopening of the items after it."""
    spec = _draining_foreach(bad=0)
    run_id = inline.create(spec)
    _stop_after(inline, run_id, 0.5)
    assert inline.store.get_step_run(run_id, "fe[0]").status is StepStatus.FAILED
    time.sleep(0.7)
    assert inline.drive(run_id) is RunStatus.FAILED
    rows = inline.rows(run_id)
    assert rows["fe[1].w"].status is StepStatus.SUCCEEDED
    assert [p for p, r in rows.items() if not r.status.is_terminal] == []
    assert rows["fe"].status is StepStatus.FAILED


def test_a_foreach_halted_by_a_failure_an_ignore_container_holds_stays_halted(
    inline: Harness,
) -> None:
    """A ``finish_running`` foreach inside an ``ignore`` one starts no new item after a
    failure in it; that halt was memory only, so a resumed engine started the items after
    the running ones (which, without the stop, never run)."""
    nap = task(
        "w",
        "nap_divide",
        inputs={"item": E("item"), "bad": 0, "seconds": E("item == 0 ? 0.05 : 1.0")},
    )
    inner = ForeachSpec(
        id="inn",
        items=E("[0, 1, 2, 3]"),
        body=GraphSpec(steps=(nap,)),
        concurrency=2,
        on_failure=FailureMode.FINISH_RUNNING,
    )
    spec = flow(
        ForeachSpec(
            id="outer",
            items=E("[0]"),
            body=GraphSpec(steps=(inner,)),
            item_name="o",
            on_failure=FailureMode.IGNORE,
        )
    )
    run_id = inline.create(spec)
    _stop_after(inline, run_id, 0.5)
    assert inline.store.get_step_run(run_id, "outer[0].inn[0]").status is StepStatus.FAILED
    assert inline.store.get_step_run(run_id, "outer[0].inn[1].w").status is StepStatus.RUNNING
    time.sleep(0.7)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED  # the outer foreach ignores it
    rows = inline.rows(run_id)
    assert rows["outer[0].inn[1].w"].status is StepStatus.SUCCEEDED  # it ran on to its end
    assert [p for p in rows if p.startswith(("outer[0].inn[2]", "outer[0].inn[3]"))] == []
    assert (rows["outer[0].inn"].status, rows["outer"].status) == (StepStatus.FAILED,) * 2


def test_a_drain_runs_again_the_lost_steps_a_second_stop_left_queued(inline: Harness) -> None:
    """A resumed drain re-queues the steps whose attempts the stop lost, to let them finish;
    those still queued when the resumed engine stopped too (no room to start them all) came
    back from their rows as plain queued steps, which a drain never starts: they were
    cancelled instead of finishing."""
    from kaon.engine.engine import Engine
    from kaon.executors import create_executor

    state = str(inline.state)
    naps = [
        task(f"n{i}", "sleeper", inputs={"seconds": 0.5, "state": state, "name": "n"})
        for i in range(8)
    ]
    spec = flow(task("bad", "boom", on_failure=FailureMode.FINISH_RUNNING), *naps)
    run_id = inline.create(spec)
    _stop_after(inline, run_id, 0.3)  # bad failed; the naps running or queued in the executor
    assert {inline.store.get_step_run(run_id, f"n{i}").status for i in range(8)} == {
        StepStatus.RUNNING
    }
    narrow = Engine(inline.store, create_executor("inline", workers=1), inline.artifacts)
    threading.Timer(0.2, narrow.stop).start()
    assert inline.drive(run_id, engine=narrow) is RunStatus.RUNNING  # room for 5 of 8
    queued = [i for i in range(8) if inline.rows(run_id)[f"n{i}"].status is StepStatus.QUEUED]
    assert queued
    time.sleep(0.6)
    assert inline.drive(run_id) is RunStatus.FAILED
    rows = inline.rows(run_id)
    assert {rows[f"n{i}"].status for i in range(8)} == {StepStatus.SUCCEEDED}

"""Retries, timeouts, failure modes, trigger rules and bad values at run time."""

from __future__ import annotations

import time

from conftest import E, Harness, flow, task

from kaon.model.specs import (
    Backoff,
    FailureMode,
    ForeachSpec,
    GraphSpec,
    RetrySpec,
    StepDefaults,
    TriggerRule,
)
from kaon.model.status import RunStatus, StepStatus


def _state(h: Harness) -> str:
    return str(h.state)


def test_retry_until_success_counts_attempts(harness: Harness) -> None:
    retry = RetrySpec(max_attempts=3)
    step = task(
        "f", "flaky", inputs={"state": _state(harness), "name": "f", "failures": 2}, retry=retry
    )
    status, run_id = harness.run(flow(step))
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "f") == "ok after 3"
    row = harness.store.get_step_run(run_id, "f")
    attempts = harness.store.attempts(run_id, row.id)
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[0].error is not None and attempts[0].error["type"] == "ValueError"


def test_retry_only_on_listed_errors(inline: Harness) -> None:
    retry = RetrySpec(max_attempts=5, retry_on=("ValueError",))
    inputs = {"state": _state(inline), "name": "k", "failures": 3, "error": "KeyError"}
    status, run_id = inline.run(flow(task("f", "flaky", inputs=inputs, retry=retry)))
    assert status is RunStatus.FAILED
    assert inline.count("k") == 1
    assert inline.rows(run_id)["f"].error["type"] == "KeyError"  # type: ignore[index]


def test_retry_on_matches_a_subclass(harness: Harness) -> None:
    retry = RetrySpec(max_attempts=3, retry_on=("ConnectionError",))
    inputs = {"state": _state(harness), "name": "r", "failures": 2, "error": "Reset"}
    status, run_id = harness.run(flow(task("f", "flaky", inputs=inputs, retry=retry)))
    assert status is RunStatus.SUCCEEDED, harness.rows(run_id)["f"].error
    assert harness.count("r") == 3


def test_exponential_backoff_waits_between_attempts(inline: Harness) -> None:
    retry = RetrySpec(max_attempts=3, backoff=Backoff.EXPONENTIAL, delay_s=0.1, max_delay_s=1)
    inputs = {"state": _state(inline), "name": "b", "failures": 2}
    started = time.monotonic()
    status, _ = inline.run(flow(task("f", "flaky", inputs=inputs, retry=retry)))
    assert status is RunStatus.SUCCEEDED
    assert time.monotonic() - started >= 0.3  # 0.1 then 0.2
    stamps = [float(line.split()[1]) for line in (inline.state / "b").read_text().splitlines()]
    assert stamps[1] - stamps[0] >= 0.09 and stamps[2] - stamps[1] >= 0.19


def test_user_error_fails_run_with_traceback(harness: Harness) -> None:
    status, run_id = harness.run(flow(task("b", "boom"), task("after", "const", needs=("b",))))
    assert status is RunStatus.FAILED
    rows = harness.rows(run_id)
    error = rows["b"].error
    assert error is not None and error["type"] == "ZeroDivisionError"
    assert "boom in user code" in error["message"] and "engine_steps.py" in error["traceback"]
    assert rows["after"].status is StepStatus.CANCELLED


def test_lost_worker_is_a_platform_failure_and_retried(process: Harness) -> None:
    step = task("c", "crash_once", inputs={"state": _state(process)})
    status, run_id = process.run(flow(step))
    assert status is RunStatus.SUCCEEDED, process.errors(run_id)
    row = process.store.get_step_run(run_id, "c")
    assert row.platform_attempts == 1 and row.attempts == 0
    first = process.store.attempts(run_id, row.id)[0]
    assert first.error is not None and first.error["platform"] is True


def test_step_timeout_kills_attempt(process: Harness) -> None:
    step = task("slow", "sleeper", inputs={"seconds": 30}, timeout_s=0.5)
    started = time.monotonic()
    status, run_id = process.run(flow(step))
    assert status is RunStatus.FAILED
    assert time.monotonic() - started < 10
    error = process.rows(run_id)["slow"].error
    assert error is not None and error["type"] == "Timeout" and error["timeout"] is True


def test_run_timeout_cancels_everything(inline: Harness) -> None:
    spec = flow(task("slow", "sleeper", inputs={"seconds": 5}), timeout_s=0.3)
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    assert "timed out" in (inline.store.get_run(run_id).error or "")
    assert inline.rows(run_id)["slow"].status is StepStatus.CANCELLED


def test_fail_fast_cancels_running_siblings(process: Harness) -> None:
    spec = flow(
        task("slow", "sleeper", inputs={"seconds": 20, "state": _state(process), "name": "s"}),
        task("bad", "boom"),
    )
    started = time.monotonic()
    status, run_id = process.run(spec)
    assert status is RunStatus.FAILED and time.monotonic() - started < 10
    assert process.rows(run_id)["slow"].status is StepStatus.CANCELLED
    assert process.count("s_end") == 0


def test_finish_running_lets_siblings_finish_then_fails(harness: Harness) -> None:
    state = _state(harness)
    spec = flow(
        task("slow", "sleeper", inputs={"seconds": 0.5, "state": state, "name": "s"}),
        task("bad", "boom", on_failure=FailureMode.FINISH_RUNNING),
        task("later", "const", inputs={"state": state, "name": "later"}, needs=("slow",)),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.FAILED
    rows = harness.rows(run_id)
    assert rows["slow"].status is StepStatus.SUCCEEDED and harness.count("s_end") == 1
    assert harness.count("later") == 0
    assert rows["later"].status is StepStatus.CANCELLED


def test_ignore_failure_and_trigger_rules(harness: Harness) -> None:
    spec = flow(
        task("bad", "boom", on_failure=FailureMode.IGNORE),
        task("ok", "const", inputs={"value": 1}),
        task("strict", "const", needs=("bad", "ok")),
        task(
            "done",
            "const",
            inputs={"value": 2},
            needs=("bad", "ok"),
            trigger_rule=TriggerRule.ALL_DONE,
        ),
        task(
            "any",
            "const",
            inputs={"value": 3},
            needs=("bad", "ok"),
            trigger_rule=TriggerRule.ANY_SUCCEEDED,
        ),
        task("nf", "const", needs=("bad",), trigger_rule=TriggerRule.NONE_FAILED),
        # after a step skipped because of the failure: failed too, as Airflow's upstream_failed
        task("nf2", "const", needs=("strict",), trigger_rule=TriggerRule.NONE_FAILED),
        task("off", "const", when="false"),  # skipped by its condition: none_failed runs
        task(
            "nf3",
            "const",
            inputs={"value": 4},
            needs=("off", "ok"),
            trigger_rule=TriggerRule.NONE_FAILED,
        ),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    rows = harness.rows(run_id)
    assert rows["bad"].status is StepStatus.FAILED
    assert (
        rows["strict"].status is StepStatus.SKIPPED and "upstream failed" in rows["strict"].reason
    )
    assert harness.value(run_id, "done") == 2 and harness.value(run_id, "any") == 3
    assert rows["nf"].status is StepStatus.SKIPPED
    assert (rows["nf2"].status, rows["nf2"].reason) == (
        StepStatus.SKIPPED,
        "upstream failed: strict",
    )
    assert harness.value(run_id, "nf3") == 4


def test_workflow_defaults_apply_to_steps(inline: Harness) -> None:
    inputs = {"state": _state(inline), "name": "d", "failures": 1}
    spec = flow(
        task("f", "flaky", inputs=inputs), defaults=StepDefaults(retry=RetrySpec(max_attempts=2))
    )
    status, _ = inline.run(spec)
    assert status is RunStatus.SUCCEEDED


def test_foreach_over_non_list_fails_clearly(harness: Harness) -> None:
    body = GraphSpec(steps=(task("x", "const"),))
    spec = flow(
        task("src", "pair", inputs={"x": 2}),
        ForeachSpec(id="fe", items=E("steps.src.x"), body=body),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.FAILED
    error = harness.rows(run_id)["fe"].error
    assert error is not None and "items must be a list, got int" in error["message"]


def test_expression_error_fails_step_not_engine(inline: Harness) -> None:
    spec = flow(
        task("src", "pair", inputs={"x": 2}),
        task("bad", "const", inputs={"value": E("steps.src.nope + 1")}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    error = inline.rows(run_id)["bad"].error
    assert error is not None and error["type"] == "ExpressionError"


def test_foreach_concurrency_limit_is_respected(inline: Harness) -> None:
    state = _state(inline)
    body = GraphSpec(steps=(task("t", "timed", inputs={"index": E("index"), "state": state}),))
    spec = flow(ForeachSpec(id="fe", items=E("[1,2,3,4,5,6]"), body=body, concurrency=2))
    status, _ = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    spans = []
    for i in range(6):
        start = float((inline.state / f"start_{i}").read_text().split()[1])
        end = float((inline.state / f"end_{i}").read_text().split()[1])
        spans.append((start, end))
    peak = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert peak <= 2


def test_failed_foreach_item_fails_the_foreach(harness: Harness) -> None:
    body = GraphSpec(steps=(task("x", "add", inputs={"a": E("item"), "b": E("1 / (item - 2)")}),))
    spec = flow(
        ForeachSpec(id="fe", items=E("[1, 2, 3]"), body=body, on_failure=FailureMode.FAIL_FAST)
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.FAILED
    rows = harness.rows(run_id)
    assert rows["fe[1].x"].status is StepStatus.FAILED


def test_a_failed_attempt_keeps_its_partial_outputs_without_passing_them_on(
    harness: Harness,
) -> None:
    spec = flow(
        task("half", "fail_keeping", inputs={"n": 5000}, on_failure=FailureMode.IGNORE),
        task(
            "after", "const", inputs={"value": E("steps.half")}, trigger_rule=TriggerRule.ALL_DONE
        ),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    rows = harness.rows(run_id)
    assert rows["half"].status is StepStatus.FAILED
    assert rows["half"].error is not None and rows["half"].error["type"] == "PartialFailure"
    kept = rows["half"].outputs
    assert kept is not None and kept["partial"]["t"] == "art"  # stored, and on the failed row
    lineage = harness.store.artifacts(run_id=run_id)
    assert [(r.path, r.output) for r in lineage] == [("half", "partial")]
    assert harness.value(run_id, "after") is None  # never passed downstream


def test_foreach_over_a_table_says_so_on_one_line(harness: Harness) -> None:
    # A YAML user's SQL step (result: table) fed to a foreach: the row's error showed
    # "got DataFrame:   region  rows" and the rest of the frame's repr over several lines.
    body = GraphSpec(steps=(task("x", "const"),))
    spec = flow(task("src", "regions"), ForeachSpec(id="fe", items=E("steps.src"), body=body))
    status, run_id = harness.run(spec)
    assert status is RunStatus.FAILED
    error = harness.rows(run_id)["fe"].error
    assert error is not None
    message = error["message"]
    assert "\n" not in message
    assert "items must be a list, got a table (DataFrame, 2 rows)" in message
    assert "select list(" in message  # how to get a list from SQL

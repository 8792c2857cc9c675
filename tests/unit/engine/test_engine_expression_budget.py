"""An expression over its cost budget fails its own step, with a located error, and nothing else.

The list comes from a step's output, so validation cannot know its size: the engine refuses
the evaluation before starting it (evaluating it would take minutes and gigabytes).
"""

from __future__ import annotations

import threading
import time

from conftest import E, Harness, flow, task

from kaon.model.specs import FailureMode, ForeachSpec, GraphSpec, WaitSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import SignalRecord, WriteBatch

NESTED = "steps.src.items.map(a, steps.src.items.map(b, steps.src.items))"


def _assert_budget_error(h: Harness, run_id: str, path: str, field: str) -> None:
    row = h.rows(run_id)[path]
    assert row.status is StepStatus.FAILED
    assert row.error is not None and row.error["type"] == "ExpressionError"
    message = row.error["message"]
    assert "over its budget" in message and f"{field}: expression" in message
    assert "steps.src.items" in message  # the expression itself


def test_when_over_budget_fails_only_its_step(inline: Harness) -> None:
    spec = flow(
        task("src", "pair", inputs={"x": 2000}),
        task(
            "bad",
            "const",
            needs=("src",),
            when=f"size({NESTED}) > 0",
            inputs={"value": 1},
            on_failure=FailureMode.IGNORE,
        ),
        task("good", "const", inputs={"value": E("size(steps.src.items)")}),
    )
    started = time.monotonic()
    status, run_id = inline.run(spec)
    assert time.monotonic() - started < 30
    assert status is RunStatus.SUCCEEDED  # the failure is ignored: the rest of the run goes on
    _assert_budget_error(inline, run_id, "bad", "when")
    assert inline.rows(run_id)["good"].status is StepStatus.SUCCEEDED
    assert inline.value(run_id, "good") == 2000


def test_foreach_items_over_budget_fails_only_the_foreach(inline: Harness) -> None:
    body = GraphSpec(steps=(task("t", "const", inputs={"value": E("item")}),))
    spec = flow(
        task("src", "pair", inputs={"x": 2000}),
        ForeachSpec(id="each", items=E(f"{NESTED}"), body=body, on_failure=FailureMode.IGNORE),
        task("good", "const", inputs={"value": 1}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    _assert_budget_error(inline, run_id, "each", "foreach")
    assert inline.rows(run_id)["good"].status is StepStatus.SUCCEEDED


def test_a_signal_a_wait_match_is_over_budget_on_is_not_for_the_step(inline: Harness) -> None:
    """The signal's list makes the match too costly: the signal is passed over (as a signal
    trigger skips it), said in the run's events, and the step waits on (here to its
    timeout); one sender's signal does not fail the runs waiting on its name."""
    spec = flow(
        WaitSpec(
            id="gate",
            signal="go",
            match="signal.L.all(a, signal.L.map(b, b).size() > 0)",
            timeout_s=1.5,
        ),
    )
    run_id = inline.create(spec)

    def send() -> None:
        time.sleep(0.3)
        record = SignalRecord("go", {"L": list(range(3000))}, time.time(), "test")
        inline.store.write(WriteBatch(signals=[record]))

    threading.Thread(target=send, daemon=True).start()
    assert inline.drive(run_id, timeout=30) is RunStatus.FAILED
    row = inline.rows(run_id)["gate"]
    assert row.error is not None and row.error["type"] == "Timeout"
    (passed,) = [e.data for e in inline.store.events(run_id) if e.kind == "signal_not_matched"]
    assert "over its budget" in passed["error"]
    assert "match: expression 'signal.L.all(" in passed["error"]

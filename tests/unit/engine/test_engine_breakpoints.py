"""Breakpoints: a run pauses before or after a step, is inspected, changed, and goes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import E, Harness, flow, task

from kaon.engine import operations
from kaon.model.breakpoints import (
    BREAK_AFTER,
    BREAK_AFTER_CACHED,
    BREAK_BEFORE,
    check_breakpoints,
)
from kaon.model.params import bind_params
from kaon.model.specs import (
    ForeachSpec,
    GraphSpec,
    ParamSpec,
    ParamType,
    StepDefaults,
    WorkflowSpec,
)
from kaon.model.status import RunStatus, StepStatus


def _create(h: Harness, spec: WorkflowSpec, *breaks: str) -> str:
    labels = check_breakpoints(spec, breaks).with_labels({})
    return operations.create_run(h.store, spec, bind_params(spec, {}), labels=labels).id


@contextmanager
def _driven(h: Harness, run_id: str) -> Iterator[dict[str, Any]]:
    """Drive the run in a thread; the dict gets its final status."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(status=h.drive(run_id, timeout=30)))
    thread.start()
    try:
        yield result
    finally:
        thread.join(40)


def _until(h: Harness, run_id: str, status: RunStatus, paused: int = 1) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        held = [r for r in h.rows(run_id).values() if r.status is StepStatus.PAUSED]
        if h.store.get_run(run_id).status is status and len(held) == paused:
            time.sleep(0.2)  # nothing else may start meanwhile
            return
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never became {status.value} with {paused} held")


def _continue(h: Harness, run_id: str, **payload: Any) -> None:
    operations.send_command(h.store, run_id, "continue", payload)


def _chain(h: Harness) -> WorkflowSpec:
    state = str(h.state)
    return flow(
        task("a", "const", inputs={"value": 1, "state": state, "name": "a"}),
        task("b", "add", inputs={"a": E("steps.a"), "b": 10, "state": state, "name": "b"}),
        task("c", "add", inputs={"a": E("steps.b"), "state": state, "name": "c"}),
    )


def test_pause_before_a_step_then_continue(harness: Harness) -> None:
    run_id = _create(harness, _chain(harness), "b")
    with _driven(harness, run_id) as result:
        _until(harness, run_id, RunStatus.PAUSED)
        rows = harness.rows(run_id)
        assert rows["a"].status is StepStatus.SUCCEEDED
        assert (rows["b"].status, rows["b"].reason) == (StepStatus.PAUSED, BREAK_BEFORE)
        assert "c" not in rows and harness.count("b") == 0
        events = harness.store.events(run_id)
        paused = [e.data for e in events if e.kind == "step" and e.data["status"] == "paused"]
        assert paused[-1]["inputs"]["a"] == {"t": "lit", "v": 1}  # what b would receive
        _continue(harness, run_id)
    assert result["status"] is RunStatus.SUCCEEDED
    assert harness.value(run_id, "c") == 11
    assert (harness.count("a"), harness.count("b"), harness.count("c")) == (1, 1, 1)
    statuses = [e.data["status"] for e in harness.store.events(run_id) if e.kind == "run"]
    assert statuses == ["pending", "running", "paused", "running", "succeeded"]


def test_pause_after_a_step_holds_its_outputs(inline: Harness) -> None:
    run_id = _create(inline, _chain(inline), "b:after")
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        row = inline.rows(run_id)["b"]
        assert (row.status, row.reason) == (StepStatus.PAUSED, BREAK_AFTER)
        assert row.outputs == {"return": {"t": "lit", "v": 11}}
        assert inline.count("b") == 1 and "c" not in inline.rows(run_id)
        _continue(inline, run_id, path="b")
    assert result["status"] is RunStatus.SUCCEEDED
    assert inline.rows(run_id)["b"].status is StepStatus.SUCCEEDED
    assert inline.value(run_id, "c") == 11 and inline.count("b") == 1


def test_pause_after_a_cache_hit(inline: Harness) -> None:
    spec = _chain(inline)
    spec = WorkflowSpec(name="flow", graph=spec.graph, defaults=StepDefaults(cache=True))
    assert inline.drive(_create(inline, spec)) is RunStatus.SUCCEEDED
    run_id = _create(inline, spec, "b:after")
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        row = inline.rows(run_id)["b"]
        assert (row.status, row.reason) == (StepStatus.PAUSED, BREAK_AFTER_CACHED)
        assert row.cached_from is not None
        _continue(inline, run_id)
    assert result["status"] is RunStatus.SUCCEEDED
    rows = inline.rows(run_id)
    assert {p: r.status for p, r in rows.items()} == {p: StepStatus.CACHED for p in "abc"}
    assert inline.count("b") == 1  # executed by the first run only


def test_skip_a_paused_step_with_a_value(inline: Harness) -> None:
    run_id = _create(inline, _chain(inline), "b")
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        operations.send_command(inline.store, run_id, "skip", {"path": "b", "output": 5})
    assert result["status"] is RunStatus.SUCCEEDED
    assert inline.value(run_id, "c") == 5 and inline.count("b") == 0


def test_continue_with_a_changed_parameter(inline: Harness) -> None:
    state = str(inline.state)
    spec = flow(
        task("a", "const", inputs={"value": 1, "state": state, "name": "a"}),
        task("b", "add", needs=("a",), inputs={"a": E("params.k"), "state": state, "name": "b"}),
        params=(ParamSpec("k", ParamType.INT, 1),),
    )
    run_id = _create(inline, spec, "b")
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        _continue(inline, run_id, params={"k": 41})
    assert result["status"] is RunStatus.SUCCEEDED
    assert inline.value(run_id, "b") == 41
    assert inline.store.get_run(run_id).params == {"k": 41}


def _foreach(h: Harness) -> WorkflowSpec:
    body = GraphSpec(
        steps=(task("echo", "const", inputs={"value": E("item"), "state": str(h.state)}),)
    )
    return flow(ForeachSpec(id="each", items=E("[10, 11, 12]"), body=body))


def test_break_on_one_foreach_item(inline: Harness) -> None:
    run_id = _create(inline, _foreach(inline), "each[1].echo")
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        rows = inline.rows(run_id)
        assert rows["each[1].echo"].status is StepStatus.PAUSED
        assert rows["each[0].echo"].status is StepStatus.SUCCEEDED
        assert rows["each[2].echo"].status is StepStatus.SUCCEEDED
        _continue(inline, run_id)
    assert result["status"] is RunStatus.SUCCEEDED
    assert inline.value(run_id, "each") == [10, 11, 12]


@pytest.mark.parametrize("name", ["each.echo", "echo"])
def test_break_on_every_foreach_item(inline: Harness, name: str) -> None:
    run_id = _create(inline, _foreach(inline), name)
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED, paused=3)
        _continue(inline, run_id, path="each[0].echo")
        _until(inline, run_id, RunStatus.PAUSED, paused=2)
        _continue(inline, run_id)
    assert result["status"] is RunStatus.SUCCEEDED
    assert inline.value(run_id, "each") == [10, 11, 12]


def _nested(h: Harness) -> WorkflowSpec:
    echo = task("echo", "const", inputs={"value": E("cell"), "state": str(h.state)})
    inner = ForeachSpec(
        id="inner", items=E("[1, 2]"), item_name="cell", body=GraphSpec(steps=(echo,))
    )
    return flow(ForeachSpec(id="outer", items=E("[10, 20]"), body=GraphSpec(steps=(inner,))))


def test_break_with_an_index_at_some_levels_only(inline: Harness) -> None:
    """``outer[1].inner.echo`` (outer item 1, every inner item) was accepted and stopped
    nothing: a path was matched whole or without any index, never level by level."""
    run_id = _create(inline, _nested(inline), "outer[1].inner.echo")
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED, paused=2)
        rows = inline.rows(run_id)
        held = sorted(path for path, row in rows.items() if row.status is StepStatus.PAUSED)
        assert held == ["outer[1].inner[0].echo", "outer[1].inner[1].echo"]
        assert rows["outer[0].inner[1].echo"].status is StepStatus.SUCCEEDED
        _continue(inline, run_id)
    assert result["status"] is RunStatus.SUCCEEDED


def test_a_container_s_timeout_stops_while_the_run_is_paused(inline: Harness) -> None:
    """A foreach's ``timeout`` counted the time an item was held at a breakpoint: a person
    looking at it for longer than the limit found the run failed (``Timeout``) on continue,
    where the run's own time limit stops while it is paused."""
    body = GraphSpec(steps=(task("echo", "const", inputs={"value": E("item")}),))
    spec = flow(ForeachSpec(id="each", items=E("[10, 11]"), body=body, timeout_s=1.0))
    run_id = _create(inline, spec, "each[1].echo")
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        time.sleep(1.5)  # inspected past the foreach's limit
        assert inline.store.get_run(run_id).status is RunStatus.PAUSED
        _continue(inline, run_id)
    assert result["status"] is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert inline.value(run_id, "each") == [10, 11]


def test_step_option_and_kill_while_paused(inline: Harness) -> None:
    spec = _chain(inline)
    steps = tuple(
        s if s.id != "c" else task("c", "const", breakpoint="before") for s in spec.graph.steps
    )
    spec = WorkflowSpec(name="flow", graph=GraphSpec(steps=steps))
    run_id = _create(inline, spec)
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        operations.send_command(inline.store, run_id, "kill", {})
    assert result["status"] is RunStatus.CANCELLED
    assert inline.rows(run_id)["c"].status is StepStatus.CANCELLED


def _paused_then_stopped(h: Harness, run_id: str) -> None:
    """Drive the run until it pauses, then stop its engine (the run stays paused)."""
    engine = h.engine()
    stopper = threading.Thread(target=lambda: (_until(h, run_id, RunStatus.PAUSED), engine.stop()))
    stopper.start()
    assert h.drive(run_id, engine=engine) is RunStatus.PAUSED
    stopper.join()


def test_a_paused_run_stays_paused_across_engines(inline: Harness) -> None:
    run_id = _create(inline, _chain(inline), "b:after")
    _paused_then_stopped(inline, run_id)
    with _driven(inline, run_id) as result:  # a new engine takes the run over, still paused
        _until(inline, run_id, RunStatus.PAUSED)
        assert inline.count("b") == 1
        _continue(inline, run_id)
    assert result["status"] is RunStatus.SUCCEEDED
    assert inline.value(run_id, "c") == 11 and inline.count("b") == 1


def test_kill_a_paused_run_no_engine_drives(inline: Harness) -> None:
    run_id = _create(inline, _chain(inline), "b")
    _paused_then_stopped(inline, run_id)
    operations.cancel_run(inline.store, run_id, by="ops")
    assert inline.store.get_run(run_id).status is RunStatus.CANCELLED
    assert inline.rows(run_id)["b"].status is StepStatus.CANCELLED


def test_unknown_breakpoint_is_refused(inline: Harness) -> None:
    from kaon.errors import ParameterError

    with pytest.raises(ParameterError, match="nope"):
        check_breakpoints(_chain(inline), ["nope"])


def _limited(h: Harness, limit: float) -> WorkflowSpec:
    chain = _chain(h)
    return flow(*chain.graph.steps, timeout_s=limit)


def test_the_run_time_limit_stops_while_the_run_is_paused(inline: Harness) -> None:
    run_id = _create(inline, _limited(inline, 1.5), "b")
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        time.sleep(2.0)  # paused past the limit: not running time
        _continue(inline, run_id)
    assert result["status"] is RunStatus.SUCCEEDED, inline.store.get_run(run_id).error
    assert inline.value(run_id, "c") == 11


def test_a_resumed_engine_counts_the_time_paused_before_it(inline: Harness) -> None:
    run_id = _create(inline, _limited(inline, 1.5), "b")
    _paused_then_stopped(inline, run_id)
    time.sleep(2.0)  # paused, no engine, past the limit
    with _driven(inline, run_id) as result:
        _until(inline, run_id, RunStatus.PAUSED)
        _continue(inline, run_id)
    assert result["status"] is RunStatus.SUCCEEDED, inline.store.get_run(run_id).error

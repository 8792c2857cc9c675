"""A restart redoes a foreach or a loop whose rows a restart reset to ``pending``: the items
and iterations that this execution does not reach (the list is shorter now, the loop stops
earlier, the run stops first) end with it, never left ``pending`` in a finished run."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import E, Harness, flow, task

from kaon.engine import operations
from kaon.model.specs import ForeachSpec, GraphSpec, LoopSpec, TaskSpec
from kaon.model.status import RunStatus, StepStatus


def _active(h: Harness, run_id: str) -> dict[str, StepStatus]:
    return {p: r.status for p, r in h.rows(run_id).items() if not r.status.is_terminal}


def _items_step(state: str, absent: list[int], present: list[int]) -> TaskSpec:
    return task(
        "xs",
        "by_flag",
        inputs={"state": state, "flag": "go", "absent": absent, "present": present},
    )


def test_items_a_restarted_foreach_no_longer_has_end_skipped(inline: Harness) -> None:
    state = str(inline.state)
    body = GraphSpec(steps=(task("x", "add", inputs={"a": E("item"), "b": 1}),))
    spec = flow(
        _items_step(state, [1, 2, 3, 4], [10, 20]),
        ForeachSpec(id="fe", items=E("steps.xs"), body=body, concurrency=2),
        task("after", "const", inputs={"value": E("steps.fe")}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    (inline.state / "go").write_text("")
    operations.restart_run(inline.store, run_id, from_path="xs")
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.value(run_id, "after") == [11, 21]
    assert _active(inline, run_id) == {}
    rows = inline.rows(run_id)
    for path in ("fe[2]", "fe[3]", "fe[2].x", "fe[3].x"):
        assert rows[path].status is StepStatus.SKIPPED, path
        assert "not reached" in rows[path].reason, rows[path].reason
    assert rows["fe"].status is StepStatus.SUCCEEDED


def test_iterations_after_a_restarted_loop_stops_end_skipped(inline: Harness) -> None:
    state = str(inline.state)
    body = GraphSpec(
        steps=(
            task("work", "const", inputs={"value": E("iteration")}),
            task(
                "done",
                "by_flag",
                inputs={"state": state, "flag": "go", "absent": False, "present": True},
                needs=("work",),
            ),
        ),
        output="work",
    )
    spec = flow(LoopSpec(id="lp", body=body, until="steps.done", max_iterations=3))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED  # three iterations, none done
    assert inline.value(run_id, "lp") == 2
    (inline.state / "go").write_text("")
    operations.restart_run(inline.store, run_id, from_path="lp[0].done")
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.value(run_id, "lp") == 0  # it stops after its first iteration now
    assert _active(inline, run_id) == {}
    rows = inline.rows(run_id)
    for path in ("lp[1]", "lp[2]", "lp[1].work", "lp[2].done"):
        assert rows[path].status is StepStatus.SKIPPED, path
        assert "not reached" in rows[path].reason, rows[path].reason


def test_items_a_restart_stops_before_reaching_end_cancelled(inline: Harness) -> None:
    """Item 0 fails now (fail_fast) before items 1 and 2, reset by the restart, reopen."""
    state = str(inline.state)
    body = GraphSpec(steps=(task("x", "add", inputs={"a": E("1 / item")}),))
    spec = flow(
        _items_step(state, [1, 2, 4], [0, 2, 4]),
        ForeachSpec(id="fe", items=E("steps.xs"), body=body, concurrency=1),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    (inline.state / "go").write_text("")
    operations.restart_run(inline.store, run_id, from_path="xs")
    assert inline.drive(run_id) is RunStatus.FAILED
    assert _active(inline, run_id) == {}
    rows = inline.rows(run_id)
    assert rows["fe[0].x"].status is StepStatus.FAILED
    for path in ("fe[1]", "fe[2]", "fe[1].x"):
        assert rows[path].status is StepStatus.CANCELLED, path


def test_an_item_a_restart_reopens_shows_its_new_value(inline: Harness) -> None:
    """The items list redone by a restart: an item row reopened by index showed the item it
    had before (``a``) while its steps ran on the new one (``p``)."""
    state = str(inline.state)
    body = GraphSpec(steps=(task("x", "const", inputs={"value": E("item")}),))
    spec = flow(
        task(
            "xs",
            "by_flag",
            inputs={"state": state, "flag": "go", "absent": ["a", "b"], "present": ["p", "q"]},
        ),
        ForeachSpec(id="fe", items=E("steps.xs"), body=body),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert [inline.rows(run_id)[f"fe[{i}]"].item for i in (0, 1)] == ["a", "b"]
    (inline.state / "go").write_text("")
    operations.restart_run(inline.store, run_id, from_path="xs")
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.value(run_id, "fe") == ["p", "q"]
    assert [inline.rows(run_id)[f"fe[{i}]"].item for i in (0, 1)] == ["p", "q"]


def test_many_items_not_reached_end_in_a_few_reads(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows left inside items not reached are read a level at a time (several frames a
    read), not one read per row: 300 items took 900 reads in the turn that ended them."""
    state = str(inline.state)
    body = GraphSpec(
        steps=(
            task("x", "add", inputs={"a": E("item"), "b": 1}),
            task("y", "add", inputs={"a": E("steps.x"), "b": 1}, needs=("x",)),
        )
    )
    spec = flow(
        _items_step(state, list(range(300)), [7]),
        ForeachSpec(id="fe", items=E("steps.xs"), body=body, concurrency=4),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    (inline.state / "go").write_text("")
    operations.restart_run(inline.store, run_id, from_path="xs")
    reads: list[int] = []
    for name in ("step_runs", "children_of"):
        original = getattr(inline.store, name)

        def counting(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            reads.append(1)
            return _original(*args, **kwargs)

        monkeypatch.setattr(inline.store, name, counting)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    monkeypatch.undo()
    assert len(reads) < 30, len(reads)
    rows = inline.rows(run_id)
    assert _active(inline, run_id) == {}
    for path in ("fe[1]", "fe[299]", "fe[1].x", "fe[299].y"):
        assert rows[path].status is StepStatus.SKIPPED, path
        assert "not reached" in rows[path].reason, rows[path].reason
    assert inline.value(run_id, "fe") == [9]

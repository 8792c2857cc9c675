"""A resumed or restarted foreach reads what its items are rebuilt from a window of items at
a time: it read each reopened item's rows, then each of its tasks' attempts, one query each
(a restarted foreach of 20,000 items: 38,000 queries, 40 % of its time)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from conftest import E, Harness, flow, task

from kaon.engine import containers, operations
from kaon.model.specs import Const, ForeachSpec, GraphSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus

# The reads a frame is rebuilt from: a frame's rows, several frames' rows, attempts.
REBUILD_READS = ("step_runs", "children_of", "attempts", "attempts_of")


def _count_reads(h: Harness, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The store's queries from now on, by statement name."""
    counted: Counter[str] = Counter()
    original = h.store.query  # type: ignore[attr-defined]

    def counting(key: tuple[Any, ...], **params: Any) -> Any:
        counted[key[0]] += 1
        return original(key, **params)

    monkeypatch.setattr(h.store, "query", counting)
    return counted


def _rebuild_reads(counted: Counter[str]) -> int:
    return sum(counted[name] for name in REBUILD_READS)


def _fan(items: int) -> WorkflowSpec:
    """``src`` -> foreach ``fe`` (body ``x`` -> ``y``) -> ``join`` (the sum of the ``y``)."""
    body = GraphSpec(
        steps=(
            task("x", "add", inputs={"a": E("item"), "b": 1}),
            task("y", "add", inputs={"a": E("steps.x"), "b": 1}, needs=("x",)),
        )
    )
    return flow(
        task("src", "const", inputs={"value": list(range(items))}),
        ForeachSpec(id="fe", items=E("steps.src"), body=body, concurrency=8, needs=("src",)),
        task("join", "total", inputs={"values": E("steps.fe")}, needs=("fe",)),
    )


def test_a_restarted_foreach_reads_its_items_rows_in_windows(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, run_id = inline.run(_fan(300))
    assert status is RunStatus.SUCCEEDED
    operations.restart_run(inline.store, run_id, from_path="src")
    counted = _count_reads(inline, monkeypatch)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    # Two reads an item (its rows, then x's attempts; y's after x ran) came to 900.
    assert _rebuild_reads(counted) < 30, counted
    monkeypatch.undo()
    assert inline.value(run_id, "join") == sum(i + 2 for i in range(300))
    rows = inline.rows(run_id)
    for path in ("fe[0].x", "fe[255].y", "fe[256].x", "fe[299].y"):
        # The attempts read ahead number the next one: the rerun's is the second.
        numbers = [a.number for a in inline.store.attempts(run_id, rows[path].id)]
        assert numbers == [1, 2], path
    assert all(r.status is StepStatus.SUCCEEDED for r in rows.values())


def _nested(outer: int, inner: int) -> WorkflowSpec:
    """``src`` -> foreach ``outer`` of foreach ``inner`` (body ``x``) -> ``join``."""
    body = GraphSpec(steps=(task("x", "add", inputs={"a": E("item"), "b": 1}),))
    inner_fe = ForeachSpec(id="inner", items=Const(list(range(inner))), body=body, concurrency=8)
    return flow(
        task("src", "const", inputs={"value": list(range(outer))}),
        ForeachSpec(
            id="outer",
            items=E("steps.src"),
            body=GraphSpec(steps=(inner_fe,)),
            concurrency=2,
            needs=("src",),
        ),
        task("join", "const", inputs={"value": E("size(steps.outer)")}, needs=("outer",)),
    )


def test_a_restarted_nested_foreach_reads_each_inner_foreach_in_windows(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, run_id = inline.run(_nested(3, 100))
    assert status is RunStatus.SUCCEEDED
    operations.restart_run(inline.store, run_id, from_path="src")
    counted = _count_reads(inline, monkeypatch)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert _rebuild_reads(counted) < 40, counted  # 600 and more, item by item
    monkeypatch.undo()
    assert inline.value(run_id, "join") == 3
    assert inline.value(run_id, "outer[2].inner[99].x") == 100
    rows = inline.rows(run_id)
    assert all(r.status is StepStatus.SUCCEEDED for r in rows.values())
    numbers = [a.number for a in inline.store.attempts(run_id, rows["outer[1].inner[7].x"].id)]
    assert numbers == [1, 2]


def test_a_resumed_foreach_loses_its_running_attempts_item_by_item_across_windows(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume after a stop mid-foreach, windows of 3 items: each attempt left running is
    lost (its step runs again, as attempt 2), whichever window read it."""
    monkeypatch.setattr(containers, "RESTORE_WINDOW", 3)
    state = str(inline.state)
    nap = task("w", "sleeper", inputs={"seconds": 0.4, "state": state, "name": "w"})
    spec = flow(ForeachSpec(id="fe", items=Const(list(range(10))), body=GraphSpec(steps=(nap,))))
    run_id = inline.create(spec)
    engine = inline.engine()
    engine.start()
    engine.add_run(run_id)
    inline.turn_until(engine, run_id, "fe[0].w", StepStatus.RUNNING)
    engine.close()  # as if it had died: its attempts' rows stay running
    before = inline.rows(run_id)
    running = {p for p, r in before.items() if r.kind == "task" and r.status is StepStatus.RUNNING}
    assert "fe[0].w" in running
    time.sleep(0.5)  # the abandoned attempts end; their results are ignored
    counted = _count_reads(inline, monkeypatch)
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert _rebuild_reads(counted) < 16, counted  # two an item: 20 and more
    monkeypatch.undo()
    rows = inline.rows(run_id)
    assert all(r.status is StepStatus.SUCCEEDED for r in rows.values())
    for path, row in rows.items():
        if row.kind != "task":
            continue
        kept = [(a.number, a.status) for a in inline.store.attempts(run_id, row.id)]
        # Every attempt but the last (which succeeded) was lost; a running one was.
        assert kept == [*((n, "lost") for n in range(1, len(kept))), (len(kept), "succeeded")]
        assert path not in running or len(kept) == 2, (path, kept)
    assert [a for a in inline.store.attempts(run_id) if a.status == "running"] == []

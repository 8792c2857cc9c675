"""A restart from a big run's failed steps reads the rows it redoes, not the whole run: 3
failed items among 10,000 read 10,100 rows (1.1 s) before anything ran again."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import E, Harness, flow, task

from kaon.engine import operations
from kaon.model.specs import Const, FailureMode, ForeachSpec, GraphSpec, TriggerRule
from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import StepRunRecord


def _sweep(outer: int, inner: int) -> Any:
    """Nested foreach: item 0 of every inner foreach fails (``1 / 0``), the others run."""
    body = GraphSpec(steps=(task("x", "add", inputs={"a": E("1 / item"), "b": 1}),))
    inner_fe = ForeachSpec(
        id="inner", items=Const(list(range(inner))), body=body, concurrency=8, min_success=1.0
    )
    return flow(
        ForeachSpec(
            id="outer",
            items=Const(list(range(outer))),
            body=GraphSpec(steps=(inner_fe,)),
            concurrency=2,
            min_success=1.0,
        ),
        task(
            "after",
            "const",
            inputs={"value": 1},
            trigger_rule=TriggerRule.ALL_DONE,
            needs=("outer",),
        ),
    )


def _count_rows(h: Harness, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    read: list[int] = []
    original = h.store.step_runs

    def counting(run_id: str, **kwargs: Any) -> list[StepRunRecord]:
        rows = original(run_id, **kwargs)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(h.store, "step_runs", counting)
    return read


def test_a_restart_reads_the_failed_rows_and_their_containers(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, run_id = inline.run(_sweep(2, 150))
    assert status is RunStatus.FAILED
    before = inline.rows(run_id)
    assert len(before) > 600
    read = _count_rows(inline, monkeypatch)
    operations.restart_run(inline.store, run_id)
    assert sum(read) < 50, read  # every one of the run's rows was read
    monkeypatch.undo()
    rows = inline.rows(run_id)
    redone = {p for p, r in rows.items() if r.status is StepStatus.PENDING}
    assert redone == {
        "outer",
        "after",  # cancelled when the foreach failed the run
        *(
            f"outer[{o}]{rest}"
            for o in (0, 1)
            for rest in ("", ".inner", ".inner[0]", ".inner[0].x")
        ),
    }
    assert rows["outer[0].inner[1].x"].status is StepStatus.SUCCEEDED
    assert inline.drive(run_id) is RunStatus.FAILED
    assert inline.rows(run_id)["outer[1].inner[149].x"].status is StepStatus.SUCCEEDED


def test_a_restart_of_a_run_that_ignored_a_failure_reopens_its_succeeded_containers(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The containers around an ignored failure succeeded: they are read too."""
    body = GraphSpec(
        steps=(
            task("x", "add", inputs={"a": E("1 / item"), "b": 1}, on_failure=FailureMode.IGNORE),
        )
    )
    spec = flow(ForeachSpec(id="fe", items=Const(list(range(100))), body=body, concurrency=4))
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    read = _count_rows(inline, monkeypatch)
    operations.restart_run(inline.store, run_id)
    assert sum(read) < 20, read
    monkeypatch.undo()
    rows = inline.rows(run_id)
    redone = {p for p, r in rows.items() if r.status is StepStatus.PENDING}
    assert redone == {"fe", "fe[0]", "fe[0].x"}
    assert inline.drive(run_id) is RunStatus.SUCCEEDED

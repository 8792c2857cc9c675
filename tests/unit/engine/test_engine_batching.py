"""The engine with an executor that queues attempts ahead of its workers (batched dispatch)."""

from __future__ import annotations

from conftest import E, Harness, flow, task

from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.specs import ForeachSpec, GraphSpec
from kaon.model.status import RunStatus, StepStatus


def test_a_step_timeout_counts_from_the_real_start_not_the_dispatch(process: Harness) -> None:
    # One worker, four items of 0.4 s each dispatched together: the last starts ~1.2 s after
    # its dispatch, beyond its 0.9 s timeout, yet it must not time out.
    body = GraphSpec(steps=(task("nap", "sleeper", inputs={"seconds": 0.4}, timeout_s=0.9),))
    spec = flow(ForeachSpec(id="each", items=E("[1, 2, 3, 4]"), body=body))
    engine = Engine(process.store, create_executor("process", workers=1), process.artifacts)
    assert engine.executor.capacity + engine.executor.prefetch >= 4
    run_id = process.create(spec)
    assert process.drive(run_id, engine=engine) is RunStatus.SUCCEEDED, process.errors(run_id)
    rows = process.rows(run_id)
    assert all(rows[f"each[{i}].nap"].status is StepStatus.SUCCEEDED for i in range(4))


def test_a_step_timeout_still_stops_a_step_queued_behind_others(process: Harness) -> None:
    body = GraphSpec(steps=(task("nap", "sleeper", inputs={"seconds": E("item")}, timeout_s=0.6),))
    spec = flow(ForeachSpec(id="each", items=E("[0.1, 0.1, 30]"), body=body))
    engine = Engine(process.store, create_executor("process", workers=1), process.artifacts)
    run_id = process.create(spec)
    assert process.drive(run_id, engine=engine) is RunStatus.FAILED
    error = process.rows(run_id)["each[2].nap"].error
    assert error is not None and error["timeout"] is True
    assert process.rows(run_id)["each[0].nap"].status is StepStatus.SUCCEEDED


def test_an_inline_fan_out_commits_its_steps_by_the_dozen(inline: Harness) -> None:
    # Two threads: without attempts queued beyond them, each commit could finish at most
    # two items (one commit per two items or more).
    items = 300
    body = GraphSpec(steps=(task("add", "add", inputs={"a": E("item"), "b": 1}),))
    spec = flow(
        task("src", "biglist", inputs={"n": items}),
        ForeachSpec(id="each", items=E("steps.src"), body=body),
    )
    engine = Engine(inline.store, create_executor("inline", workers=2), inline.artifacts)
    writes = []
    write = inline.store.write
    inline.store.write = lambda batch: (writes.append(1), write(batch))[1]  # type: ignore[method-assign]
    run_id = inline.create(spec)
    assert inline.drive(run_id, engine=engine) is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert len(writes) <= items / 3, len(writes)


def test_an_inline_step_timeout_counts_from_its_real_start(inline: Harness) -> None:
    # One thread, four items of 0.4 s queued together: the last starts ~1.2 s after its
    # dispatch, beyond its 0.9 s timeout, yet it must not time out.
    body = GraphSpec(steps=(task("nap", "sleeper", inputs={"seconds": 0.4}, timeout_s=0.9),))
    spec = flow(ForeachSpec(id="each", items=E("[1, 2, 3, 4]"), body=body))
    engine = Engine(inline.store, create_executor("inline", workers=1), inline.artifacts)
    assert engine.executor.capacity + engine.executor.prefetch >= 4
    run_id = inline.create(spec)
    assert inline.drive(run_id, engine=engine) is RunStatus.SUCCEEDED, inline.errors(run_id)

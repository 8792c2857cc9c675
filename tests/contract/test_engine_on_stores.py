"""The same engine on every store backend: SQLite and PostgreSQL run the same scenarios."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from kaon.artifacts import open_artifact_store
from kaon.engine import operations
from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.params import bind_params
from kaon.model.specs import (
    Const,
    Expr,
    ForeachSpec,
    GraphSpec,
    InputSpec,
    StepDefaults,
    TaskSpec,
    WorkflowSpec,
)
from kaon.model.status import RunStatus, StepStatus
from kaon.model.values import decode_outputs, outputs_value
from kaon.store.base import StateStore

STEPS = str(Path(__file__).parents[1] / "unit" / "engine" / "engine_steps.py")


def _task(step_id: str, function: str, **inputs: Any) -> TaskSpec:
    values: dict[str, InputSpec] = {
        k: v if isinstance(v, Expr) else Const(v) for k, v in inputs.items()
    }
    return TaskSpec(id=step_id, config={"file": STEPS, "function": function}, inputs=values)


def _flow(state: str) -> WorkflowSpec:
    body = GraphSpec(steps=(_task("sq", "add", a=Expr("item * item"), state=state, name="sq"),))
    steps = (
        _task("src", "pair", x=4),
        ForeachSpec(id="each", items=Expr("steps.src.items"), body=body, concurrency=2),
        replace(_task("gate", "fail_unless", state=state, flag="go"), needs=("each",)),
        _task("total", "total", values=Expr("steps.each + [steps.gate == 'fixed' ? 100 : 0]")),
    )
    return WorkflowSpec(
        name="on_stores", graph=GraphSpec(steps=steps), defaults=StepDefaults(cache=True)
    )


def _drive(store: StateStore, tmp_path: Path, run_id: str) -> RunStatus:
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    engine = Engine(store, create_executor("inline", workers=4), artifacts)
    try:
        engine.add_run(run_id)
        return engine.run_until_done(run_id)
    finally:
        engine.close()


def _value(store: StateStore, tmp_path: Path, run_id: str, path: str) -> Any:
    row = store.get_step_run(run_id, path)
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    return artifacts.get(outputs_value(decode_outputs(row.outputs)))


def test_fail_restart_and_memoize_on_every_store(store: StateStore, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    spec = _flow(str(state))
    run = operations.create_run(store, spec, bind_params(spec, {}))
    assert _drive(store, tmp_path, run.id) is RunStatus.FAILED
    assert store.get_step_run(run.id, "gate").status is StepStatus.FAILED
    (state / "go").write_text("fixed")
    operations.restart_run(store, run.id)
    assert _drive(store, tmp_path, run.id) is RunStatus.SUCCEEDED
    assert _value(store, tmp_path, run.id, "total") == 0 + 1 + 4 + 9 + 100
    assert len((state / "sq").read_text().splitlines()) == 4  # items ran once, across restart
    second = operations.create_run(store, spec, bind_params(spec, {}))
    assert _drive(store, tmp_path, second.id) is RunStatus.SUCCEEDED
    statuses = {r.path: r.status for r in store.step_runs(second.id, all_levels=True)}
    assert statuses["total"] is StepStatus.CACHED and statuses["each[3].sq"] is StepStatus.CACHED
    assert len(store.artifacts(run_id=run.id)) == 0  # small values stay inline


def test_a_restart_from_a_step_redoes_the_foreach_after_it_on_every_store(
    store: StateStore, tmp_path: Path
) -> None:
    """The rows inside a foreach the restart redoes whole are reset by the database itself
    (``WriteBatch.resets_below``, a recursive statement over the rows' parents)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "go").write_text("fixed")
    spec = _flow(str(state))
    run = operations.create_run(store, spec, bind_params(spec, {}))
    assert _drive(store, tmp_path, run.id) is RunStatus.SUCCEEDED
    operations.restart_run(store, run.id, from_path="src", force=True)
    rows = {r.path: r for r in store.step_runs(run.id, all_levels=True)}
    assert len(rows) == 12  # src, each, 4 items and their sq, gate, total
    assert all(r.status is StepStatus.PENDING for r in rows.values()), rows
    assert all(r.outputs is None and r.attempts == 0 for r in rows.values())
    assert _drive(store, tmp_path, run.id) is RunStatus.SUCCEEDED
    assert len((state / "sq").read_text().splitlines()) == 8  # each item ran again
    assert _value(store, tmp_path, run.id, "total") == 0 + 1 + 4 + 9 + 100

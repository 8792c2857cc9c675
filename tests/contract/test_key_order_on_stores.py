"""A mapping's key order reaches a step as the user gave it, on every store, and is part of
a cacheable step's key: a step iterating a parameter's keys computes from that order.
PostgreSQL's jsonb keeps keys in its own order (shorter first), so a step saw
``{"a", "zeta", "mm"}`` reordered, and on SQLite two runs whose only difference was the
order hit the same cache entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaon.artifacts import open_artifact_store
from kaon.engine import operations
from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.params import bind_params
from kaon.model.specs import Const, Expr, GraphSpec, ParamSpec, ParamType, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.model.values import decode_outputs, outputs_value
from kaon.store.base import StateStore

STEPS = str(Path(__file__).parents[1] / "unit" / "engine" / "engine_steps.py")


def _flow(state: Path) -> WorkflowSpec:
    def task(step_id: str, function: str, **inputs: Any) -> TaskSpec:
        return TaskSpec(
            id=step_id,
            config={"file": STEPS, "function": function},
            inputs={k: Expr(v) for k, v in inputs.items()},
            cache=True,
        )

    steps = (
        task("param", "key_order", value="params.weights"),
        task("made", "reordered", keys="params.order"),
        task("output", "key_order", value="steps.made.mapping"),
    )
    params = (
        ParamSpec(name="weights", type=ParamType.DICT),
        ParamSpec(name="order", type=ParamType.LIST),
    )
    return WorkflowSpec(name="key_order", graph=GraphSpec(steps=steps), params=params)


def _run(store: StateStore, tmp_path: Path, params: dict[str, Any]) -> str:
    spec = _flow(tmp_path)
    run = operations.create_run(store, spec, bind_params(spec, params))
    engine = Engine(store, create_executor("inline", workers=2), _artifacts(tmp_path))
    try:
        engine.add_run(run.id)
        assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
    finally:
        engine.close()
    return run.id


def _artifacts(tmp_path: Path) -> Any:
    return open_artifact_store(str(tmp_path / "artifacts"))


def _value(store: StateStore, tmp_path: Path, run_id: str, path: str) -> Any:
    row = store.get_step_run(run_id, path)
    return _artifacts(tmp_path).get(outputs_value(decode_outputs(row.outputs)))


def test_a_step_sees_keys_in_the_users_order_on_every_store(
    store: StateStore, tmp_path: Path
) -> None:
    keys = ["zeta", "a", "mm", "b"]
    weights = {key: 1 for key in keys}
    first = _run(store, tmp_path, {"weights": weights, "order": keys})
    assert _value(store, tmp_path, first, "param") == keys
    assert _value(store, tmp_path, first, "output") == keys
    assert store.get_run(first).params["weights"] == weights
    assert list(store.get_run(first).params["weights"]) == keys

    again = _run(store, tmp_path, {"weights": weights, "order": keys})
    assert {r.status for r in store.step_runs(again)} == {StepStatus.CACHED}

    turned = list(reversed(keys))
    other = _run(store, tmp_path, {"weights": {k: 1 for k in turned}, "order": turned})
    assert _value(store, tmp_path, other, "param") == turned  # not the first run's result
    assert _value(store, tmp_path, other, "output") == turned
    assert store.get_step_run(other, "param").status is StepStatus.SUCCEEDED


def test_numbers_reach_the_next_step_as_they_were_on_every_store(
    store: StateStore, tmp_path: Path
) -> None:
    """jsonb keeps numbers as numerics: 1e20 came back as the int 100000000000000000000
    and -0.0 as 0.0, on PostgreSQL only."""
    values = {"big": 1e20, "tiny": 1e-7, "negative_zero": -0.0, "whole": 2.0, "huge": 2**70}
    spec = WorkflowSpec(
        name="numbers",
        graph=GraphSpec(
            steps=(
                TaskSpec(
                    id="make",
                    config={"file": STEPS, "function": "const"},
                    inputs={"value": Const(values)},
                    cache=True,
                ),
                TaskSpec(
                    id="see",
                    config={"file": STEPS, "function": "typed"},
                    inputs={"value": Expr("steps.make")},
                ),
            )
        ),
    )
    for cached in (False, True):  # the second run's `make` is a cache hit
        run = operations.create_run(store, spec, bind_params(spec, {}))
        engine = Engine(store, create_executor("inline", workers=2), _artifacts(tmp_path))
        try:
            engine.add_run(run.id)
            assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
        finally:
            engine.close()
        assert (store.get_step_run(run.id, "make").status is StepStatus.CACHED) is cached
        assert _value(store, tmp_path, run.id, "see") == repr(values)
        stored = _value(store, tmp_path, run.id, "make")  # what a restarted engine reads
        assert repr(stored) == repr(values)

"""Fixtures for engine tests: a real SQLite store, artifact store and executor per test."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.params import bind_params
from kaon.model.specs import Const, Expr, GraphSpec, InputSpec, StepSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.model.values import decode_outputs, outputs_value
from kaon.store import open_store
from kaon.store.base import StateStore, StepRunRecord

STEPS = str(Path(__file__).with_name("engine_steps.py"))


def E(source: str) -> Expr:
    """An expression input."""
    return Expr(source)


def task(step_id: str, function: str, *, needs: tuple[str, ...] = (), **fields: Any) -> TaskSpec:
    """A python task calling ``engine_steps.<function>``; ``inputs`` values may be Expr."""
    inputs: dict[str, InputSpec] = {
        k: v if isinstance(v, Expr | Const) else Const(v)
        for k, v in fields.pop("inputs", {}).items()
    }
    return TaskSpec(
        id=step_id,
        config={"file": STEPS, "function": function},
        needs=needs,
        inputs=inputs,
        **fields,
    )


def flow(*steps: StepSpec, name: str = "flow", **fields: Any) -> WorkflowSpec:
    """A workflow of the given top-level steps."""
    return WorkflowSpec(name=name, graph=GraphSpec(steps=tuple(steps)), **fields)


class Harness:
    """Runs workflows against real backends and reads back what was recorded."""

    def __init__(self, tmp: Path, executor: str) -> None:
        self.tmp = tmp
        self.executor_name = executor
        self.state = tmp / "state"
        self.state.mkdir()
        self.store: StateStore = open_store(f"sqlite:///{tmp / 'kaon.db'}")
        self.artifacts = open_artifact_store(str(tmp / "artifacts"))

    def engine(self) -> Engine:
        options: dict[str, Any] = {}
        if self.executor_name == "ray":  # the cluster of tests/integration/test_ray.py
            options["address"] = os.environ["KAON_RAY_ADDRESS"]
        executor = create_executor(self.executor_name, workers=4, **options)
        return Engine(self.store, executor, self.artifacts)

    def create(self, spec: WorkflowSpec, params: dict[str, Any] | None = None) -> str:
        return create_run(self.store, spec, bind_params(spec, params or {})).id

    def drive(
        self, run_id: str, *, timeout: float = 60.0, engine: Engine | None = None
    ) -> RunStatus:
        engine = engine or self.engine()
        timer = threading.Timer(timeout, engine.stop)
        timer.start()
        try:
            engine.add_run(run_id)
            return engine.run_until_done(run_id)
        finally:
            timer.cancel()
            engine.close()

    def run(
        self, spec: WorkflowSpec, params: dict[str, Any] | None = None
    ) -> tuple[RunStatus, str]:
        run_id = self.create(spec, params)
        return self.drive(run_id), run_id

    def errors(self, run_id: str) -> dict[str, object]:
        return {p: r.error for p, r in self.rows(run_id).items() if r.error}

    def rows(self, run_id: str) -> dict[str, StepRunRecord]:
        return {r.path: r for r in self.store.step_runs(run_id, all_levels=True)}

    def turn_until(
        self, engine: Engine, run_id: str, path: str, status: StepStatus, timeout: float = 10.0
    ) -> None:
        """Drive ``engine`` turn by turn until step ``path`` of the run is ``status``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            engine.turn(max_wait=0.05)
            row = self.rows(run_id).get(path)
            if row is not None and row.status is status:
                return
        raise AssertionError(f"{path} never {status}")

    def value(self, run_id: str, path: str) -> Any:
        row = self.store.get_step_run(run_id, path)
        return self.artifacts.get(outputs_value(decode_outputs(row.outputs)))

    def count(self, name: str) -> int:
        path = self.state / name
        return len(path.read_text().splitlines()) if path.exists() else 0


# The executors of the scenario grid; tests/integration/ray_netns/check_ray_grid.py runs it on
# "ray" inside the Ray tests' namespace.
GRID_EXECUTORS = os.environ.get("KAON_GRID_EXECUTORS", "inline,process").split(",")


@pytest.fixture(params=GRID_EXECUTORS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, request.param)
    yield h
    h.store.close()


@pytest.fixture
def inline(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, "inline")
    yield h
    h.store.close()


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, "process")
    yield h
    h.store.close()

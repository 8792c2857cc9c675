"""The engine scenario grid (``tests/unit/engine/test_engine_shapes.py``: graph shapes, each
run by a real engine over SQLite) on the ``ray`` executor: every attempt a Ray task of the
namespace's cluster. The grid's tests run in a pytest of their own (their ``conftest`` is the
unit tests'), with ``KAON_GRID_EXECUTORS=ray``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.specs import Const, GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store import open_store

UNIT = Path(__file__).resolve().parents[2] / "unit" / "engine"
GRID = UNIT / "test_engine_shapes.py"


def _warm_workers(ray_address: str, tmp_path: Path) -> None:
    """Two attempts at once, so that the supervisor's tasks find two Ray workers started:
    Ray starts a worker process on first use (0.3-1 s here), which would otherwise delay one
    branch of the grid's diamond past the other's end (its overlap check is the engine's, not
    Ray's start-up)."""
    steps = tuple(
        TaskSpec(
            id=f"warm{i}",
            config={"file": str(UNIT / "engine_steps.py"), "function": "sleeper"},
            inputs={"seconds": Const(0.5)},
        )
        for i in range(2)
    )
    store = open_store(f"sqlite:///{tmp_path / 'warm.db'}")
    artifacts = open_artifact_store(str(tmp_path / "warm"))
    engine = Engine(store, create_executor("ray", workers=2, address=ray_address), artifacts)
    try:
        run = create_run(store, WorkflowSpec("warm", GraphSpec(steps=steps)), {})
        assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
    finally:
        engine.close()
        store.close()


@pytest.mark.timeout(180)
def test_the_engine_scenario_grid_passes_on_ray(ray_address: str, tmp_path: Path) -> None:
    _warm_workers(ray_address, tmp_path)
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
        "--basetemp", str(tmp_path / "grid"), "-k", "ray", str(GRID),
    ]  # fmt: skip
    env = {**os.environ, "KAON_GRID_EXECUTORS": "ray", "KAON_RAY_ADDRESS": ray_address}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed is not None and int(passed[1]) >= 10, done.stdout[-2000:]  # every shape
    assert "skipped" not in done.stdout, done.stdout[-2000:]

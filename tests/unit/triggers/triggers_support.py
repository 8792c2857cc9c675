"""Helpers for the trigger tests: specs, registration, an engine in a thread, waiting.

(Not a conftest, so that its name is unique when several test folders run together.)
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.codec import spec_hash, workflow_to_dict
from kaon.model.specs import Const, GraphSpec, ParamSpec, ParamType, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store.base import DefinitionRecord, RunRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore, VersionRecord
from kaon.store.sql import SQLStore
from kaon.triggers import strategies

STEPS = str(Path(__file__).with_name("trigger_steps.py"))


def task(step_id: str, function: str = "hold", **inputs: Any) -> TaskSpec:
    """A python task calling ``trigger_steps.<function>`` with constant inputs."""
    return TaskSpec(
        id=step_id,
        config={"file": STEPS, "function": function},
        inputs={k: Const(v) for k, v in inputs.items()},
    )


def workflow(
    name: str = "wf", *triggers: Any, params: tuple[ParamSpec, ...] = (), **inputs: Any
) -> WorkflowSpec:
    """A one-step workflow (``trigger_steps.hold``) with triggers and parameters."""
    return WorkflowSpec(
        name=name,
        graph=GraphSpec(steps=(task("work", **inputs),)),
        params=params,
        triggers=tuple(triggers),
    )


STR = ParamType.STR


def param(name: str, default: Any = "") -> ParamSpec:
    return ParamSpec(name, STR if isinstance(default, str) else ParamType.ANY, default)


def register(store: SQLStore, spec: WorkflowSpec, **properties: Any) -> None:
    """Store ``spec`` as the active version of its workflow, with registry properties."""
    digest = spec_hash(spec)
    store.write(
        WriteBatch(
            definitions=[DefinitionRecord(digest, spec.name, workflow_to_dict(spec), "", 1.0)]
        )
    )
    registry = SQLRegistryStore(store)
    registry.add_version(
        VersionRecord(spec.name, 0, digest, "", "test", 1.0, "test"), activate=True
    )
    if properties:
        registry.update_workflow(spec.name, time.time(), properties=properties)


class EngineThread:
    """An engine serving the store in a thread, with the strategies' admission."""

    def __init__(self, store: SQLStore, tmp: Path) -> None:
        self.engine = Engine(
            store,
            create_executor("inline", workers=8),
            open_artifact_store(str(tmp / "artifacts")),
            command_poll_s=0.05,
        )
        admit = functools.partial(strategies.admit, store)
        self.thread = threading.Thread(
            target=self.engine.serve, kwargs={"admit": admit, "claim_every_s": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.engine.stop()
        self.thread.join(timeout=30)
        self.engine.close()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def statuses(store: SQLStore, workflow: str) -> dict[str, RunStatus]:
    return {r.id: r.status for r in store.list_runs(workflow=workflow, limit=1000)}


def runs_of(store: SQLStore, workflow: str) -> list[RunRecord]:
    """Runs of a workflow, oldest first."""
    return sorted(
        store.list_runs(workflow=workflow, limit=1000), key=lambda r: (r.created_at, r.id)
    )

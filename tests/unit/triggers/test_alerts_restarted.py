"""A run restarted after a failure that fails again must alert again."""

from __future__ import annotations

import time
from pathlib import Path

from triggers_support import STEPS, EngineThread, register, wait_for

from kaon.engine import operations
from kaon.model.params import bind_params
from kaon.model.specs import Const, GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store.sql import SQLStore
from kaon.store.triggers import SQLTriggerStore
from kaon.triggers.alerts import AlertService

SPEC = WorkflowSpec(
    name="flaky",
    graph=GraphSpec(
        steps=(
            TaskSpec(
                id="check",
                config={"file": STEPS, "function": "fail_if"},
                inputs={"fail": Const(True)},
            ),
        )
    ),
)


def test_a_restarted_run_that_fails_again_alerts_again(store: SQLStore, tmp_path: Path) -> None:
    register(store, SPEC, alerts={"on_failure": ["http://127.0.0.1:9/hook"]})
    triggers = SQLTriggerStore(store)
    alerts = AlertService(store, triggers)
    alerts.scan(time.time())  # the first scan starts from now
    engine = EngineThread(store, tmp_path)
    try:
        run = operations.create_run(store, SPEC, bind_params(SPEC, {}))
        wait_for(lambda: store.get_run(run.id).status is RunStatus.FAILED, what="failure")
        alerts.scan(time.time())
        assert len(triggers.deliveries(run_id=run.id)) == 1
        operations.restart_run(store, run.id, by="test")

        def failures() -> int:
            events = store.events(run.id)
            return sum(1 for e in events if e.kind == "run" and e.data.get("status") == "failed")

        wait_for(lambda: failures() == 2, what="second failure")
        alerts.scan(time.time())
        # Two failures of the run, two failure alerts.
        assert len(triggers.deliveries(run_id=run.id)) == 2
    finally:
        engine.stop()
        alerts.close()

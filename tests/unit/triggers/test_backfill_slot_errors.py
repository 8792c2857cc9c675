"""A backfill slot whose parameters cannot be computed starts no run: the backfill records it
(with why) where `kaon backfills` shows it, and goes on with the next slots."""

from __future__ import annotations

import time

from triggers_support import param, register, runs_of, workflow

from kaon.model.specs import Expr
from kaon.model.status import RunStatus
from kaon.model.triggers import CronTriggerSpec
from kaon.service.triggers import BackfillRequest, TriggerOperations
from kaon.store.base import WriteBatch
from kaon.store.sql import SQLStore
from kaon.triggers.service import TriggerService

# Fails for the 01:00 slot only: int('x') is an evaluation error, not a definition error.
MODE = Expr("slot.contains('T01:') ? string(int('x')) : 'full'")
HOURLY = CronTriggerSpec(
    cron="0 * * * *", timezone="Europe/Paris", params={"slot": Expr("slot"), "mode": MODE}
)
SPEC = workflow("hourly", HOURLY, params=(param("slot"), param("mode", "full")))


def test_a_slot_whose_params_fail_is_recorded_and_the_backfill_goes_on(store: SQLStore) -> None:
    register(store, SPEC)
    operations = TriggerOperations(store)
    request = BackfillRequest(
        workflow="hourly", start="2024-03-31T00:00", end="2024-03-31T04:00", concurrency=2
    )
    backfill_id = operations.start_backfill(request, by="test").id
    service = TriggerService(store, on_lag=None, with_alerts=False)
    for _ in range(3):
        service.tick()
    runs = runs_of(store, "hourly")
    # 02:00 does not exist that day in Paris; 01:00 is skipped, the window is full with two.
    assert [r.params["slot"][11:16] for r in runs] == ["00:00", "03:00"]
    view = operations.backfill(backfill_id)
    assert view.started == 3 and view.skipped == 1
    [skipped] = view.skipped_slots
    assert skipped.slot == "2024-03-31T01:00:00+01:00"
    assert "params.mode" in skipped.error and "int" in skipped.error
    for run in runs:
        batch = WriteBatch()
        batch.update_run(run.id, status=RunStatus.SUCCEEDED, ended_at=time.time())
        store.write(batch)
    for _ in range(3):
        service.tick()
    assert [r.params["slot"][11:16] for r in runs_of(store, "hourly")] == [
        "00:00",
        "03:00",
        "04:00",
    ]
    assert operations.backfills()[0].skipped == 1

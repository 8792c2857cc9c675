"""A backfill loses no slot when the store fails (or the server dies) while it starts one.

Before, the backfill's cursor moved past a slot first and its firing was claimed after: a
store failing for a moment in between (a locked SQLite file, a PostgreSQL restart) or a crash
there left a slot that never got a run, and the backfill finished without it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from triggers_support import param, register, runs_of, workflow

from kaon.errors import StoreUnavailableError
from kaon.model.specs import Expr
from kaon.model.triggers import CronTriggerSpec
from kaon.service.triggers import BackfillRequest, TriggerOperations
from kaon.store.sql import SQLStore
from kaon.store.triggers import FiringRecord, SQLTriggerStore
from kaon.triggers.service import TriggerService

HOURLY = CronTriggerSpec(cron="0 * * * *", params={"slot": Expr("slot")})


class _FailingOnce(SQLTriggerStore):
    """A trigger store whose first claim of some firings fails as an unreachable store."""

    failures = 1

    def claim_firings(self, records: Sequence[FiringRecord]) -> list[FiringRecord]:
        if records and self.failures:
            self.failures -= 1
            raise StoreUnavailableError("database is locked (simulated)")
        return super().claim_firings(records)


def test_a_slot_whose_start_failed_is_started_by_a_later_pass(store: SQLStore) -> None:
    register(store, workflow("hourly", HOURLY, params=(param("slot"),)))
    request = BackfillRequest(
        workflow="hourly", start="2024-01-01T00:00", end="2024-01-01T03:00", concurrency=10
    )
    TriggerOperations(store).start_backfill(request, by="test")
    triggers = _FailingOnce(store)
    service = TriggerService(store, on_lag=None, with_alerts=False, triggers=triggers)
    later = time.time() + 60
    for n in range(3):
        service.tick(later + n)
    assert triggers.failures == 0
    slots = sorted(r.params["slot"][11:16] for r in runs_of(store, "hourly"))
    assert slots == ["00:00", "01:00", "02:00", "03:00"]


class _CancelledMeanwhile(SQLTriggerStore):
    """A trigger store where the backfill is cancelled just before a slot is claimed."""

    def claim_firings(self, records: Sequence[FiringRecord]) -> list[FiringRecord]:
        if records and self.get_backfill(self.backfill_id).status == "running":
            TriggerOperations(self.store).cancel_backfill(self.backfill_id, by="test")
        return super().claim_firings(records)

    backfill_id = ""


def test_a_slot_started_while_its_backfill_is_cancelled_is_cancelled(store: SQLStore) -> None:
    register(store, workflow("hourly", HOURLY, params=(param("slot"),)))
    request = BackfillRequest(
        workflow="hourly", start="2024-01-01T00:00", end="2024-01-01T03:00", concurrency=1
    )
    triggers = _CancelledMeanwhile(store)
    triggers.backfill_id = TriggerOperations(store).start_backfill(request, by="test").id
    service = TriggerService(store, on_lag=None, with_alerts=False, triggers=triggers)
    service.tick(time.time() + 60)
    (run,) = runs_of(store, "hourly")
    assert run.status.is_terminal
    assert triggers.get_backfill(triggers.backfill_id).status == "cancelled"

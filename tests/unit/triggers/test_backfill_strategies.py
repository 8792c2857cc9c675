"""A backfill never has its own runs cancel each other through the run strategy.

Before, a backfill with ``--concurrency 4`` of a ``last_only`` workflow started four slots at
once and each new one superseded (cancelled) the ones before: three slots of four ended
cancelled and the backfill still finished. ``first_only`` dropped the slots started while
another ran.
"""

from __future__ import annotations

import time

import pytest
from triggers_support import param, register, runs_of, workflow

from kaon.errors import InvalidActionError
from kaon.model.specs import Expr
from kaon.model.status import RunStatus
from kaon.model.triggers import CronTriggerSpec
from kaon.service.triggers import BackfillRequest, TriggerOperations
from kaon.store.base import WriteBatch
from kaon.store.registry import SQLRegistryStore
from kaon.store.sql import SQLStore
from kaon.triggers.service import TriggerService

HOURLY = CronTriggerSpec(cron="0 * * * *", params={"slot": Expr("slot")})
SPEC = workflow("hourly", HOURLY, params=(param("slot"),))


def _request(concurrency: int) -> BackfillRequest:
    return BackfillRequest(
        workflow="hourly",
        start="2024-01-01T00:00",
        end="2024-01-01T03:00",
        concurrency=concurrency,
    )


@pytest.mark.parametrize("strategy", ["first_only", "last_only"])
def test_overlapping_backfill_runs_of_a_dropping_strategy_are_refused(
    store: SQLStore, strategy: str
) -> None:
    register(store, SPEC, run_strategy=strategy)
    with pytest.raises(InvalidActionError, match=rf"concurrency 4.*{strategy}.*--concurrency 1"):
        TriggerOperations(store).start_backfill(_request(4))
    TriggerOperations(store).start_backfill(_request(1))  # one at a time is fine


@pytest.mark.parametrize("strategy", ["first_only", "last_only"])
def test_a_strategy_set_during_a_backfill_makes_it_one_at_a_time(
    store: SQLStore, strategy: str
) -> None:
    register(store, SPEC)
    TriggerOperations(store).start_backfill(_request(4))
    SQLRegistryStore(store).update_workflow(
        "hourly", time.time(), properties={"run_strategy": strategy}
    )
    service = TriggerService(store, on_lag=None, with_alerts=False)
    for _ in range(4):
        service.tick()
        runs = runs_of(store, "hourly")
        assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * (len(runs) - 1) + [
            RunStatus.PENDING
        ]
        batch = WriteBatch()
        batch.update_run(runs[-1].id, status=RunStatus.SUCCEEDED, ended_at=time.time())
        store.write(batch)
    slots = [r.params["slot"][11:16] for r in runs_of(store, "hourly")]
    assert slots == ["00:00", "01:00", "02:00", "03:00"]

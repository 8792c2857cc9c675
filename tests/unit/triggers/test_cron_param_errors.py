"""A cron slot whose parameters cannot be computed is given up once (logged), not retried
by every pass forever with the trigger stuck on it."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from triggers_support import param, runs_of, workflow

from kaon.model.specs import Expr
from kaon.model.triggers import CronTriggerSpec
from kaon.store.sql import SQLStore
from kaon.triggers.catalog import StaticCatalog
from kaon.triggers.service import TriggerService

T0 = dt.datetime(2024, 5, 1, 5, 59, 0, tzinfo=dt.UTC).timestamp()


def test_a_slot_whose_params_fail_is_reported_once_and_the_trigger_moves_on(
    store: SQLStore, caplog: pytest.LogCaptureFixture
) -> None:
    # Valid when checked (int() of a string is allowed), fails for every slot at run time.
    cron = CronTriggerSpec(cron="0 6 * * *", params={"day": Expr("int(slot)")})
    spec = workflow("daily", cron, params=(param("day"),))
    service = TriggerService(
        store, StaticCatalog([spec]), clock=lambda: T0, on_lag=None, with_alerts=False
    )
    service.tick(T0)
    with caplog.at_level(logging.WARNING, logger="kaon.triggers"):
        for n in range(20):  # five seconds of passes
            assert service.tick(T0 + 61 + n * 0.25) == []
    warnings = [r for r in caplog.records if "daily" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "2024-05-01T06:00:00+00:00" in warnings[0].getMessage()  # names the slot
    assert runs_of(store, "daily") == []

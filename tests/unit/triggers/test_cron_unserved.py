"""A cron trigger that was not served for a while (workflow deactivated, or the trigger
removed by a version and added back by a later one) starts from its return: the slots in
between did not belong to it (README: catch-up covers downtime of the server only)."""

from __future__ import annotations

import datetime as dt

from triggers_support import workflow

from kaon.model.triggers import CatchUp, CronTriggerSpec, SignalTriggerSpec
from kaon.store.sql import SQLStore
from kaon.triggers.catalog import StaticCatalog
from kaon.triggers.service import TriggerService

DAY = 86400.0
BASE = dt.datetime(2024, 4, 6, 12, tzinfo=dt.UTC).timestamp()
NIGHTLY = CronTriggerSpec(cron="0 3 * * *", catchup=CatchUp.ALL)


def _service(store: SQLStore, *specs) -> TriggerService:  # type: ignore[no-untyped-def]
    return TriggerService(
        store, StaticCatalog(list(specs)), clock=lambda: BASE, on_lag=None, with_alerts=False
    )


def test_a_deactivated_then_reactivated_workflow_fires_no_burst(store: SQLStore) -> None:
    spec = workflow("nightly", NIGHTLY)
    service = _service(store, spec)
    assert service.tick(BASE) == []
    service.catalog = StaticCatalog([])  # kaon deactivate nightly
    for n in range(1, 4):
        assert service.tick(BASE + n * DAY) == []
    service.catalog = StaticCatalog([spec])  # kaon activate nightly 1, three days later
    assert service.tick(BASE + 3 * DAY + 60) == []  # none of the three 03:00 slots
    assert [f.key[11:16] for f in service.tick(BASE + 4 * DAY)] == ["03:00"]


def test_a_trigger_removed_then_added_back_fires_no_burst(store: SQLStore) -> None:
    other = SignalTriggerSpec(signal="go")
    both = workflow("nightly", NIGHTLY, other)
    only_signal = workflow("nightly", other, x=1)
    service = _service(store, both)
    assert service.tick(BASE) == []
    service.catalog = StaticCatalog([only_signal])  # v2 drops the cron trigger
    for n in range(1, 4):
        assert service.tick(BASE + n * DAY) == []
    service.catalog = StaticCatalog([both])  # v3 brings it back
    assert service.tick(BASE + 3 * DAY + 60) == []
    assert [f.key[11:16] for f in service.tick(BASE + 4 * DAY)] == ["03:00"]


def test_kaon_deactivate_then_activate_fires_no_burst(store: SQLStore) -> None:
    from triggers_support import register

    from kaon.store.registry import SQLRegistryStore
    from kaon.triggers.catalog import RegistryCatalog

    register(store, workflow("nightly", NIGHTLY))
    service = TriggerService(
        store, RegistryCatalog(store, refresh_s=0.0), on_lag=None, with_alerts=False
    )
    assert service.tick(BASE) == []
    registry = SQLRegistryStore(store)
    registry.set_active("nightly", None, BASE + 1)
    for n in range(1, 4):
        assert service.tick(BASE + n * DAY) == []
    registry.set_active("nightly", 1, BASE + 3 * DAY)
    assert service.tick(BASE + 3 * DAY + 60) == []

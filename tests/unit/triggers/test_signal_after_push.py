"""A signal sent right after a push (or a deactivation) meets the registry as it is then,
not the trigger loop's copy of it, which is up to ``refresh_s`` old.

Before, ``kaon push flow.py && kaon signal go`` within the catalog's refresh delay (1 s in a
server) started no run: the pass read the signal, found no trigger for it in its stale copy of
the registry and moved the signal cursor past it for good.
"""

from __future__ import annotations

import time

from triggers_support import register, runs_of, workflow

from kaon.model.triggers import SignalTriggerSpec
from kaon.store.base import SignalRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore
from kaon.store.sql import SQLStore
from kaon.triggers.catalog import RegistryCatalog
from kaon.triggers.service import TriggerService

STALE_FOR_AN_HOUR = 3600.0  # the catalog's own refresh never happens within the test


def _service(store: SQLStore) -> TriggerService:
    catalog = RegistryCatalog(store, refresh_s=STALE_FOR_AN_HOUR)
    return TriggerService(store, catalog, clock=time.time, on_lag=None, with_alerts=False)


def _signal(store: SQLStore, name: str) -> None:
    store.write(WriteBatch(signals=[SignalRecord(name, {}, time.time(), "test")]))


def test_a_signal_right_after_a_push_starts_a_run(store: SQLStore) -> None:
    service = _service(store)
    assert service.tick() == []  # the catalog is read: no workflow yet
    register(store, workflow("pushed", SignalTriggerSpec(signal="go")))
    _signal(store, "go")
    (fired,) = service.tick()
    assert fired.workflow == "pushed"
    assert [r.labels["signal"] for r in runs_of(store, "pushed")] == ["go"]
    assert service.tick() == []  # once


def test_a_signal_right_after_a_deactivation_starts_nothing(store: SQLStore) -> None:
    register(store, workflow("stopped", SignalTriggerSpec(signal="go")))
    service = _service(store)
    assert service.tick() == []
    SQLRegistryStore(store).set_active("stopped", None, time.time())
    _signal(store, "go")
    assert service.tick() == []
    assert runs_of(store, "stopped") == []

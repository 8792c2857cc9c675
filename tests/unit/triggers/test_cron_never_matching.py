"""A cron expression that never matches (Feb 31) must not stop every other trigger."""

from __future__ import annotations

import datetime as dt

from triggers_support import register, runs_of, workflow

from kaon.model.triggers import CronTriggerSpec
from kaon.store.sql import SQLStore
from kaon.triggers.catalog import StaticCatalog
from kaon.triggers.service import TriggerService

T0 = dt.datetime(2024, 5, 1, 5, 59, 0, tzinfo=dt.UTC).timestamp()


def test_a_never_matching_cron_does_not_stop_the_other_triggers(store: SQLStore) -> None:
    good = workflow("good", CronTriggerSpec(cron="0 6 * * *"))
    never = workflow("never", CronTriggerSpec(cron="0 6 31 2 *"))
    service = TriggerService(
        store, StaticCatalog([never, good]), clock=lambda: T0, on_lag=None, with_alerts=False
    )
    service.tick(T0)
    fired = service.tick(T0 + 61)
    assert [f.workflow for f in fired] == ["good"]
    assert len(runs_of(store, "good")) == 1


def test_a_never_matching_cron_is_refused_when_validated() -> None:
    from kaon.model.triggers import trigger_problems

    problems = trigger_problems((CronTriggerSpec(cron="0 6 31 2 *"),), frozenset())
    assert problems and "cron" in (problems[0].location.field or "")


def test_a_never_matching_cron_restored_from_its_state_does_not_stop_the_others(
    store: SQLStore,
) -> None:
    good = workflow("good", CronTriggerSpec(cron="0 6 * * *"))
    never = workflow("never", CronTriggerSpec(cron="0 6 31 2 *"))
    catalog = StaticCatalog([never, good])
    kwargs = {"on_lag": None, "with_alerts": False}
    first = TriggerService(store, StaticCatalog([good]), clock=lambda: T0, **kwargs)
    first.tick(T0)
    from kaon.model.triggers import trigger_id
    from kaon.store.triggers import SQLTriggerStore

    tid = trigger_id("never", never.triggers[0])
    SQLTriggerStore(store).put_state(f"cron:{tid}", {"last_slot": T0}, T0)
    service = TriggerService(store, catalog, clock=lambda: T0, **kwargs)
    fired = service.tick(T0 + 61)
    assert [f.workflow for f in fired] == ["good"]


def test_kaon_triggers_lists_a_never_matching_cron_without_a_traceback(store: SQLStore) -> None:

    from kaon.service.triggers import TriggerOperations

    register(store, workflow("never", CronTriggerSpec(cron="0 6 31 2 *")))
    (view,) = TriggerOperations(store).list_triggers()
    assert view.next_due is None

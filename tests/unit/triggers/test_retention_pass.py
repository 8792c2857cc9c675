"""The server's retention (``kaon server --retention``): the trigger loop deletes runs past
it in bounded batches, keeps the newest of each workflow, and leaves a held run for later."""

from __future__ import annotations

import time
from pathlib import Path

from kaon.model.status import RunStatus
from kaon.store.base import RunRecord, WriteBatch
from kaon.store.sql import SQLStore
from kaon.triggers import retention
from kaon.triggers.retention import RetentionPolicy
from kaon.triggers.service import TriggerService

DAY = 86_400.0


def _runs(store: SQLStore, workflow: str, ages_days: list[float]) -> list[str]:
    now = time.time()
    records = [
        RunRecord(
            id=f"{workflow}-{i}",
            workflow=workflow,
            definition_hash="h",
            status=RunStatus.SUCCEEDED,
            created_at=now - age * DAY - 60,
            ended_at=now - age * DAY,
        )
        for i, age in enumerate(ages_days)
    ]
    store.write(WriteBatch(runs=records))
    return [r.id for r in records]


def _left(store: SQLStore) -> set[str]:
    return {r.id for r in store.list_runs(limit=1000)}


def test_the_trigger_loop_deletes_old_runs_a_batch_at_a_time(store: SQLStore) -> None:
    old = _runs(store, "a", [100, 99, 98, 97, 96, 1])  # five past 90 days, one young
    kept_b = _runs(store, "b", [200])  # the newest (only) run of b
    policy = RetentionPolicy(max_age_s=90 * DAY, keep_last=1, batch=2)
    service = TriggerService(store, on_lag=None, with_alerts=False, retention=policy)

    service.tick(now=1000.0)  # a batch of 2
    assert _left(store) == set(old[2:]) | set(kept_b)
    service.tick(now=1000.5)  # a backlog: again on the next second, not the next minute
    assert _left(store) == set(old[2:]) | set(kept_b)
    service.tick(now=1001.0)
    service.tick(now=1002.0)
    assert _left(store) == {old[5], *kept_b}
    service.tick(now=1003.0)  # nothing left: the next pass is a minute away
    _runs(store, "c", [100, 95])
    service.tick(now=1030.0)
    assert "c-0" in _left(store)
    service.tick(now=1064.0)
    assert _left(store) == {old[5], *kept_b, "c-1"}


def test_a_run_an_engine_holds_is_left_for_a_later_pass(store: SQLStore) -> None:
    ids = _runs(store, "a", [100, 100])
    assert store.acquire_lease(ids[0], "engine-1", 600.0) is not None
    policy = RetentionPolicy(max_age_s=90 * DAY)
    outcome = retention.apply(store, policy)
    assert outcome.deleted == [ids[1]] and outcome.skipped == [ids[0]]
    store.release_lease(ids[0], "engine-1")
    assert retention.apply(store, policy).deleted == [ids[0]]


def test_no_retention_deletes_nothing(store: SQLStore) -> None:
    _runs(store, "a", [1000])
    TriggerService(store, on_lag=None, with_alerts=False).tick(now=1.0)
    assert _left(store) == {"a-0"}


def test_the_server_options_turn_it_on(tmp_path: Path) -> None:
    from kaon.api.app import build_services
    from kaon.server_parts import ServerOptions, trigger_service
    from kaon.service.settings import Settings

    services = build_services(Settings.from_env(home=str(tmp_path / "home"), executor="inline"))
    try:
        off = trigger_service(services)
        assert off.retention is None
        on = trigger_service(services, ServerOptions(retention_s=90 * DAY, retention_keep_last=3))
        assert on.retention == RetentionPolicy(90 * DAY, keep_last=3)
    finally:
        services.extras["alerts"].close()
        services.runs.close()


def test_each_run_retention_deletes_is_in_the_audit_trail(store: SQLStore) -> None:
    """A run deleted through the API is audited (``run.delete``, by its caller); one the
    server's retention (or ``kaon gc --runs-older-than``) deleted left no trace of who or
    what removed it, nor that it was ever there."""
    from kaon.store.registry import SQLRegistryStore

    old = _runs(store, "a", [100, 99])
    kept = _runs(store, "b", [1])
    outcome = retention.apply(store, RetentionPolicy(max_age_s=90 * DAY))
    assert sorted(outcome.deleted) == sorted(old)
    trail = SQLRegistryStore(store).audit()
    entries = {(e.target, e.actor, e.action, e.data.get("workflow")) for e in trail}
    assert entries == {(f"run:{run}", "retention", "run.delete", "a") for run in old}
    assert all(not e.target.endswith(kept[0]) for e in trail)

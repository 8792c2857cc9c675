"""The server's retention deletes trigger firings too (``kaon server --retention AGE``):
firings older than AGE go in bounded batches, but never a row a de-duplication still needs
(a claimed firing whose run is not created yet, a data trigger's path, which a later poll
finds again), and a cron slot whose firing went never fires again."""

from __future__ import annotations

from kaon.store.sql import SQLStore
from kaon.store.triggers import CLAIMED, CREATED, DROPPED, FINISHED, FiringRecord, SQLTriggerStore
from kaon.triggers import retention
from kaon.triggers.retention import RetentionPolicy
from kaon.triggers.service import TriggerService

DAY = 86_400.0
NOW = 1_000 * DAY


def _firing(tid: str, key: str, status: str, age_days: float) -> FiringRecord:
    at = NOW - age_days * DAY
    return FiringRecord(tid, key, "wf", f"run-{tid}-{key}", status, due_at=at, created_at=at)


def _keys(triggers: SQLTriggerStore) -> set[str]:
    return {f.dedupe_key for f in triggers.firings(limit=10_000)}


def test_old_firings_go_in_batches_but_not_those_a_dedupe_needs(
    store: SQLStore, triggers: SQLTriggerStore
) -> None:
    old = [_firing("wf:cron:abc", f"slot-{i}", CREATED, 100 + i) for i in range(5)]
    kept = [
        _firing("wf:cron:abc", "young", CREATED, 1),
        _firing("wf:cron:abc", "claimed", CLAIMED, 200),  # its run is not created yet
        _firing("wf:data:def", "s3://b/x.csv", CREATED, 300),  # a poll would find it again
        # A backfill counts its open runs by these (its concurrency): kept until finished.
        _firing("backfill:b1", "2024-01-02", CREATED, 150),
    ]
    gone = [_firing("wf:signal:123", "signal:7", DROPPED, 120)]
    gone += [_firing("backfill:b1", "2024-01-01", FINISHED, 150)]
    triggers.claim_firings([*old, *kept, *gone])
    policy = RetentionPolicy(max_age_s=90 * DAY, firing_batch=3)

    first = retention.expire_firings(triggers, policy, now=NOW)
    assert first == 3
    assert len(_keys(triggers)) == 11 - 3
    while retention.expire_firings(triggers, policy, now=NOW):
        pass
    assert _keys(triggers) == {"young", "claimed", "s3://b/x.csv", "2024-01-02"}


def test_the_trigger_loop_expires_firings_with_its_run_retention(
    store: SQLStore, triggers: SQLTriggerStore
) -> None:
    triggers.claim_firings([_firing("wf:cron:abc", "old", FINISHED, 3)])
    triggers.claim_firings([_firing("wf:cron:abc", "new", FINISHED, 1)])
    policy = RetentionPolicy(max_age_s=2 * DAY)
    TriggerService(store, on_lag=None, with_alerts=False, retention=policy).tick(now=NOW)
    assert _keys(triggers) == {"new"}
    TriggerService(store, on_lag=None, with_alerts=False).tick(now=NOW + 10 * DAY)
    assert _keys(triggers) == {"new"}  # no retention policy: nothing goes


def test_a_batch_is_a_range_of_the_expiry_index(store: SQLStore) -> None:
    """The firings kept for good (data triggers', claimed ones) are not in the index, so
    a pass never reads them again however many there are."""
    import sqlite3

    from sqlalchemy.dialects import sqlite

    from kaon.store._queries import construct

    text = str(construct(("expired_firings",)).compile(dialect=sqlite.dialect()))
    path = store.url.split("///", 1)[1]
    with sqlite3.connect(path) as connection:
        plan = connection.execute("EXPLAIN QUERY PLAN " + text, (1.0, 10, 0)).fetchall()
    lines = [row[-1] for row in plan]
    assert any("USING INDEX ix_trigger_firings_expiry (created_at<?)" in x for x in lines), lines
    assert not any("TEMP B-TREE" in x for x in lines), lines

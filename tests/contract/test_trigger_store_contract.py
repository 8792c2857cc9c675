"""The contract every TriggerStore backend passes (SQLite, PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.errors import NotFoundError, StoreError
from kaon.store import open_store
from kaon.store.sql import SQLStore
from kaon.store.triggers import (
    CLAIMED,
    CREATED,
    DROPPED,
    FINISHED,
    AlertDeliveryRecord,
    BackfillRecord,
    FiringRecord,
    SQLTriggerStore,
    TriggerStore,
)


def _firing(key: str, trigger: str = "wf:cron:1", run_id: str = "r") -> FiringRecord:
    return FiringRecord(
        trigger, key, "wf", f"{run_id}-{key}", params={"a": 1}, labels={"slot": key}, due_at=5.0
    )


def _backfill(backfill_id: str = "bf-1", **fields: object) -> BackfillRecord:
    values: dict[str, object] = {
        "workflow": "wf",
        "cron": "0 * * * *",
        "timezone": "UTC",
        "start_at": 0.0,
        "end_at": 36000.0,
        "concurrency": 2,
        "total": 11,
        "params": {"mode": "x"},
        "slot_params": {"slot": {"expr": "slot"}},
        "created_at": 1.0,
        "updated_at": 1.0,
        "by": "me",
    }
    values.update(fields)
    return BackfillRecord(id=backfill_id, **values)  # type: ignore[arg-type]


def _delivery(key: str, url: str = "http://h/x", **fields: object) -> AlertDeliveryRecord:
    values: dict[str, object] = {"run_id": "r1", "next_attempt_at": 10.0, "created_at": 1.0}
    values.update(fields)
    return AlertDeliveryRecord("wf", "failure", key, url, {"alert": "failure"}, **values)  # type: ignore[arg-type]


class TriggerStoreContract:
    """Tests every backend passes; subclasses provide ``store_url``."""

    @pytest.fixture
    def sql(self, store_url: str) -> Iterator[SQLStore]:
        opened = open_store(store_url)
        assert isinstance(opened, SQLStore)
        yield opened
        opened.close()

    @pytest.fixture
    def triggers(self, sql: SQLStore) -> TriggerStore:
        return SQLTriggerStore(sql)

    def test_when_states_of_a_prefix_last_changed(self, triggers: TriggerStore) -> None:
        assert isinstance(triggers, SQLTriggerStore)
        assert triggers.last_state_change("strategy:unblocked:") is None
        triggers.put_state("strategy:unblocked:wf", {"at": 1.0}, 7.0)
        triggers.put_state("strategy:unblockedX", {"at": 1.0}, 9.0)  # another prefix
        triggers.put_state("cron:wf:cron:1", {"last_slot": 1.0}, 8.0)
        assert triggers.last_state_change("strategy:unblocked:") == 7.0
        assert triggers.last_state_change("strategy_unblocked:") is None  # `_` is no wildcard

    def test_firings_past_retention_go_oldest_first_but_those_still_needed(
        self, triggers: TriggerStore
    ) -> None:
        def aged(key: str, trigger: str, status: str, at: float) -> FiringRecord:
            return FiringRecord(trigger, key, "wf", f"r-{key}", status, created_at=at, due_at=at)

        triggers.claim_firings(
            [
                aged("a", "wf:cron:1", CREATED, 1.0),
                aged("b", "wf:signal:2", DROPPED, 2.0),
                aged("c", "wf:cron:1", CLAIMED, 3.0),  # the repair creates its run
                aged("d", "wf:data:3", CREATED, 4.0),  # the next poll finds its path again
                aged("e", "backfill:bf", FINISHED, 5.0),
                aged("f", "wf:cron:1", CREATED, 50.0),  # not old enough
                aged("g", "backfill:bf", CREATED, 6.0),  # the backfill counts it as open
            ]
        )
        assert triggers.delete_expired_firings(before=10.0, limit=2) == 2
        assert {f.dedupe_key for f in triggers.firings()} == {"c", "d", "e", "f", "g"}
        assert triggers.delete_expired_firings(before=10.0, limit=2) == 1
        assert triggers.delete_expired_firings(before=10.0, limit=2) == 0
        assert {f.dedupe_key for f in triggers.firings()} == {"c", "d", "f", "g"}

    def test_state_is_inserted_then_replaced(self, triggers: TriggerStore) -> None:
        assert triggers.get_state("k") is None
        triggers.put_state("k", {"last_slot": 1.5}, 1.0)
        triggers.put_state("k", {"last_slot": 2.5, "more": [1]}, 2.0)
        assert triggers.get_state("k") == {"last_slot": 2.5, "more": [1]}

    def test_states_are_read_and_initialised_in_bulk(self, triggers: TriggerStore) -> None:
        triggers.put_state("k1", {"last_slot": 1.0}, 1.0)
        keys = [f"k{n}" for n in range(1, 1201)]  # more than one chunk
        assert triggers.get_states(keys) == {"k1": {"last_slot": 1.0}}
        triggers.init_states({k: {"last_slot": 9.0} for k in keys}, 9.0)
        found = triggers.get_states(keys)
        assert len(found) == 1200 and found["k1"] == {"last_slot": 1.0}  # kept
        assert found["k1200"] == {"last_slot": 9.0}
        triggers.init_states({}, 10.0)

    def test_a_key_is_claimed_once(self, triggers: TriggerStore) -> None:
        first = _firing("2024-01-01T06:00")
        assert triggers.claim_firing(first) and first.id is not None
        assert not triggers.claim_firing(_firing("2024-01-01T06:00", run_id="other"))
        assert triggers.claim_firing(_firing("2024-01-01T06:00", trigger="wf:cron:2"))
        (stored, _) = triggers.firings()
        assert (stored.run_id, stored.params, stored.labels) == (
            "r-2024-01-01T06:00",
            {"a": 1},
            {"slot": "2024-01-01T06:00"},
        )

    def test_concurrent_claims_have_one_winner(self, triggers: TriggerStore) -> None:
        wins: list[bool] = []
        lock = threading.Lock()

        def claim(n: int) -> None:
            won = triggers.claim_firing(_firing("same", run_id=f"r{n}"))
            with lock:
                wins.append(won)

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(wins) == [False] * 7 + [True]

    def test_firings_filter_and_status(self, triggers: TriggerStore) -> None:
        a, b = _firing("a"), _firing("b", trigger="other")
        triggers.claim_firing(a)
        triggers.claim_firing(b)
        assert a.id is not None
        triggers.set_firing_status(a.id, CREATED)
        assert [f.dedupe_key for f in triggers.firings(statuses=[CLAIMED])] == ["b"]
        assert [f.dedupe_key for f in triggers.firings(trigger_id="other")] == ["b"]
        assert [f.status for f in triggers.firings()] == [CREATED, CLAIMED]
        with pytest.raises(NotFoundError):
            triggers.set_firing_status(999_999, DROPPED)

    def test_a_dropped_firing_keeps_why_and_firings_are_counted(
        self, triggers: TriggerStore
    ) -> None:
        dropped = _firing("a")
        dropped.status, dropped.error = DROPPED, "params.day: no such key"
        later = _firing("b")
        triggers.claim_firings([dropped, later, _firing("c", trigger="other")])
        assert [(f.dedupe_key, f.error) for f in triggers.firings(statuses=[DROPPED])] == [
            ("a", "params.day: no such key")
        ]
        assert later.id is not None
        triggers.set_firing_status(later.id, DROPPED, error="pool gpu does not exist")
        assert triggers.count_firings(trigger_id="wf:cron:1", statuses=[DROPPED]) == 2
        assert triggers.count_firings(trigger_id="wf:cron:1", statuses=[CLAIMED]) == 0
        assert triggers.count_firings(trigger_id="other", statuses=[CLAIMED, DROPPED]) == 1
        assert triggers.firings(trigger_id="wf:cron:1")[1].error == "pool gpu does not exist"
        triggers.set_firing_status(later.id, CREATED)
        assert triggers.firings(trigger_id="wf:cron:1")[1].error is None

    def test_the_history_is_newest_first_by_workflow_and_status_in_pages(
        self, triggers: TriggerStore
    ) -> None:
        records = [_firing(f"k{n}") for n in range(5)]
        records[1].status, records[1].error = DROPPED, "params failed"
        records.append(FiringRecord("other:cron:1", "k9", "other", "r-9"))
        triggers.claim_firings(records)
        newest = triggers.recent_firings(limit=3)
        assert [f.dedupe_key for f in newest] == ["k9", "k4", "k3"]
        mine = triggers.recent_firings(workflow="wf", limit=2)
        assert [f.dedupe_key for f in mine] == ["k4", "k3"]
        assert mine[-1].id is not None
        rest = triggers.recent_firings(workflow="wf", before=mine[-1].id)
        assert [f.dedupe_key for f in rest] == ["k2", "k1", "k0"]
        (dropped,) = triggers.recent_firings(statuses=[DROPPED])
        assert (dropped.dedupe_key, dropped.error) == ("k1", "params failed")
        assert triggers.recent_firings(workflow="nope") == []

    def test_states_are_replaced_in_bulk(self, triggers: TriggerStore) -> None:
        triggers.put_state("k1", {"last_slot": 1.0}, 1.0)
        values = {f"k{n}": {"last_slot": float(n)} for n in range(1, 1201)}
        triggers.put_states(values, 5.0)
        found = triggers.get_states(list(values))
        assert found == values  # k1 replaced, the others inserted (more than one chunk)
        triggers.put_states({}, 6.0)

    def test_firings_are_claimed_in_bulk_once_each(self, triggers: TriggerStore) -> None:
        assert triggers.claim_firing(_firing("taken"))
        dropped = _firing("dropped")
        dropped.status = DROPPED
        batch = [_firing("a"), _firing("taken", run_id="late"), dropped, _firing("b")]
        won = triggers.claim_firings(batch)
        assert [f.dedupe_key for f in won] == ["a", "dropped", "b"]
        assert all(f.id is not None for f in won) and batch[1].id is None
        assert triggers.claim_firings([]) == []
        assert [f.status for f in triggers.firings()] == [CLAIMED, CLAIMED, DROPPED, CLAIMED]
        ids = [f.id for f in won if f.id is not None and f.status == CLAIMED]
        triggers.set_firing_statuses([*ids, 999_999], CREATED)  # an unknown id is ignored
        assert [f.dedupe_key for f in triggers.firings(statuses=[CREATED])] == ["a", "b"]
        triggers.set_firing_statuses([], DROPPED)

    def test_backfills(self, triggers: TriggerStore) -> None:
        triggers.add_backfill(_backfill("bf-1"))
        triggers.add_backfill(_backfill("bf-2", workflow="other", created_at=2.0))
        with pytest.raises(StoreError):
            triggers.add_backfill(_backfill("bf-1"))
        assert triggers.get_backfill("bf-1") == _backfill("bf-1")
        assert [b.id for b in triggers.list_backfills()] == ["bf-2", "bf-1"]
        assert [b.id for b in triggers.list_backfills(workflow="wf")] == ["bf-1"]
        triggers.add_backfill(_backfill("bf-0", created_at=2.0))  # bf-2's time: the id decides
        assert [b.id for b in triggers.list_backfills(limit=2)] == ["bf-2", "bf-0"]
        assert [b.id for b in triggers.list_backfills(before=(2.0, "bf-0"))] == ["bf-1"]
        assert [b.id for b in triggers.list_backfills(before=(2.0, "bf-2"), limit=1)] == ["bf-0"]
        triggers.update_backfill("bf-1", 9.0, status="cancelled")
        assert triggers.get_backfill("bf-1").updated_at == 9.0
        assert [b.id for b in triggers.list_backfills(statuses=["running"])] == ["bf-2", "bf-0"]
        with pytest.raises(NotFoundError):
            triggers.get_backfill("nope")
        with pytest.raises(NotFoundError):
            triggers.update_backfill("nope", 1.0, status="x")
        with pytest.raises(StoreError, match="no such field"):
            triggers.update_backfill("bf-1", 1.0, colour="red")

    def test_advancing_a_backfill_is_compare_and_set(self, triggers: TriggerStore) -> None:
        triggers.add_backfill(_backfill("bf-1"))
        assert triggers.advance_backfill("bf-1", 0, 2.0)
        assert not triggers.advance_backfill("bf-1", 0, 2.0)
        assert triggers.advance_backfill("bf-1", 1, 2.0)
        assert triggers.get_backfill("bf-1").next_index == 2
        triggers.update_backfill("bf-1", 3.0, status="cancelled")
        assert not triggers.advance_backfill("bf-1", 2, 4.0)

    def test_alert_deliveries(self, triggers: TriggerStore) -> None:
        first = _delivery("failure:r1")
        assert triggers.add_delivery(first) and first.id is not None
        assert not triggers.add_delivery(_delivery("failure:r1"))
        assert triggers.add_delivery(
            _delivery("failure:r1", url="http://h/y", next_attempt_at=50.0)
        )
        assert [d.url for d in triggers.due_deliveries(20.0)] == ["http://h/x"]
        triggers.update_delivery(first.id, status="delivered", attempts=1, response_code=200)
        assert triggers.due_deliveries(100.0)[0].url == "http://h/y"
        (stored, _) = triggers.deliveries(run_id="r1")
        assert (stored.status, stored.attempts, stored.payload) == (
            "delivered",
            1,
            {"alert": "failure"},
        )
        assert triggers.deliveries(workflow="other") == []
        with pytest.raises(NotFoundError):
            triggers.update_delivery(999_999, status="x")

    def test_due_deliveries_per_url_are_the_oldest_of_each_url(
        self, triggers: TriggerStore
    ) -> None:
        for n in range(5):
            assert triggers.add_delivery(_delivery(f"failure:a{n}", next_attempt_at=1.0 + n))
        assert triggers.add_delivery(_delivery("failure:b", url="http://h/y", next_attempt_at=9))
        assert triggers.add_delivery(_delivery("failure:c", url="http://h/z", next_attempt_at=99))
        due = triggers.due_deliveries(20.0, per_url=2)
        assert [(d.url, d.dedupe_key) for d in due] == [
            ("http://h/x", "failure:a0"),
            ("http://h/x", "failure:a1"),
            ("http://h/y", "failure:b"),
        ]
        assert len(triggers.due_deliveries(20.0, limit=2, per_url=2)) == 2
        assert len(triggers.due_deliveries(20.0)) == 6

    def test_a_delivery_is_claimed_by_one_sender(self, triggers: TriggerStore) -> None:
        assert triggers.add_delivery(_delivery("failure:r2", next_attempt_at=10.0))
        (mine,) = triggers.due_deliveries(20.0)
        (theirs,) = triggers.due_deliveries(20.0)
        assert triggers.claim_delivery(mine, until=80.0) and mine.next_attempt_at == 80.0
        assert not triggers.claim_delivery(theirs, until=80.0)  # read before the claim
        assert triggers.due_deliveries(79.0) == []
        (again,) = triggers.due_deliveries(80.0)  # the claim ran out: due again
        assert again.id == mine.id and triggers.claim_delivery(again, until=200.0)
        assert again.id is not None
        triggers.update_delivery(again.id, status="delivered", attempts=1)
        assert not triggers.claim_delivery(again, until=300.0)  # no longer pending


class TestSQLiteTriggerStore(TriggerStoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'kaon.db'}"


@pytest.mark.integration
class TestPostgresTriggerStore(TriggerStoreContract):
    @pytest.fixture
    def store_url(self, pg_url: str) -> str:
        return pg_url

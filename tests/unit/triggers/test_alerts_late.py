"""Deadline and duration alerts over time: a deadline counts from when it was set, one missed
while the server was down is alerted once when it returns, and time a run spends paused at a
breakpoint (held for a person) does not make it too long."""

from __future__ import annotations

import datetime as dt

from triggers_support import register, workflow

from kaon.model.status import RunStatus
from kaon.store.base import EventRecord, RunRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore
from kaon.store.sql import SQLStore
from kaon.store.triggers import SQLTriggerStore
from kaon.triggers.alerts import AlertService


def _at(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2024, 5, day, hour, minute, tzinfo=dt.UTC).timestamp()


def _service(store: SQLStore, set_at: float, **alerts: object) -> AlertService:
    register(store, workflow("late"))
    config = {"on_late": ["http://127.0.0.1:9/late"], **alerts}
    SQLRegistryStore(store).update_workflow("late", set_at, properties={"alerts": config})
    return AlertService(store, SQLTriggerStore(store))


def _deadline_days(store: SQLStore) -> list[str]:
    found = SQLTriggerStore(store).deliveries(workflow="late")
    return [d.dedupe_key.rsplit(":", 1)[1] for d in found if d.kind == "deadline"]


def _run(store: SQLStore, run_id: str, status: RunStatus, **fields: float) -> None:
    store.write(WriteBatch(runs=[RunRecord(run_id, "late", "h", status, **fields)]))


def test_a_deadline_set_after_today_s_has_passed_counts_from_the_next(store: SQLStore) -> None:
    service = _service(store, _at(1, 9), deadline="07:30 UTC")
    assert service.scan(_at(1, 9, 1)) == 0  # today's 07:30 came before it was set
    assert service.scan(_at(2, 7, 29)) == 0
    assert service.scan(_at(2, 7, 31)) == 1
    assert service.scan(_at(2, 7, 32)) == 0
    assert _deadline_days(store) == ["2024-05-02"]


def test_a_deadline_missed_while_the_server_was_down_is_alerted_once_on_return(
    store: SQLStore,
) -> None:
    service = _service(store, _at(1, 6), deadline="07:30 UTC")
    assert service.scan(_at(1, 7)) == 0
    # Down from 07:00 on the 1st to 01:00 on the 2nd (past midnight): the 1st's deadline.
    assert service.scan(_at(2, 1)) == 1
    assert service.scan(_at(2, 1, 1)) == 0
    # The 2nd's run succeeds late (08:00), while the server is down 07:00-09:00: still missed.
    _run(store, "late-run", RunStatus.SUCCEEDED, created_at=_at(2, 6), ended_at=_at(2, 8))
    assert service.scan(_at(2, 7)) == 0
    assert service.scan(_at(2, 9)) == 1
    # The 3rd's run succeeds in time; the server is down across the deadline: nothing missed.
    _run(store, "on-time", RunStatus.SUCCEEDED, created_at=_at(3, 6), ended_at=_at(3, 7))
    assert service.scan(_at(3, 9)) == 0
    assert _deadline_days(store) == ["2024-05-01", "2024-05-02"]


def test_time_paused_at_a_breakpoint_does_not_count_toward_max_duration(
    store: SQLStore,
) -> None:
    t = _at(1, 12)
    service = _service(store, t - 3600, max_duration_s=60)
    _run(store, "resumed", RunStatus.RUNNING, created_at=t - 120, started_at=t - 120)
    _run(store, "held", RunStatus.PAUSED, created_at=t - 120, started_at=t - 120)
    store.write(
        WriteBatch(
            events=[
                EventRecord("resumed", "run", t - 100, {"status": "paused"}),
                EventRecord("resumed", "run", t - 30, {"status": "running"}),
                EventRecord("held", "run", t - 100, {"status": "paused"}),
            ]
        )
    )
    assert service.scan(t) == 0  # resumed: 50 s of work; held: 20 s, then held by a person
    assert service.scan(t + 5) == 0
    assert service.scan(t + 15) == 1  # resumed: 65 s of work
    assert service.scan(t + 3600) == 0  # held: still 20 s of work
    found = SQLTriggerStore(store).deliveries(workflow="late")
    assert [(d.kind, d.run_id) for d in found] == [("duration", "resumed")]

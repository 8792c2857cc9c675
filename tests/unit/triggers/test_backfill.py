"""Backfills: one run per slot, a sliding concurrency window, resume, cancel."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from pathlib import Path

import pytest
from triggers_support import EngineThread, param, register, runs_of, wait_for, workflow

from kaon.errors import DefinitionError, InvalidActionError
from kaon.model.specs import Expr
from kaon.model.status import RunStatus
from kaon.model.triggers import CronTriggerSpec
from kaon.service.triggers import BackfillRequest, TriggerOperations
from kaon.store.base import WriteBatch
from kaon.store.sql import SQLStore
from kaon.triggers.service import TriggerService

HOURLY = CronTriggerSpec(cron="0 * * * *", timezone="Europe/Paris", params={"slot": Expr("slot")})
SPEC = workflow("hourly", HOURLY, params=(param("slot"), param("mode", "full")))


def _service(store: SQLStore) -> TriggerService:
    return TriggerService(store, on_lag=None, with_alerts=False)


def _start(store: SQLStore, concurrency: int, **fields: object) -> str:
    request = BackfillRequest(
        workflow="hourly",
        start="2024-03-31T00:00",
        end="2024-03-31T09:00",
        concurrency=concurrency,
        **fields,  # type: ignore[arg-type]
    )
    return TriggerOperations(store).start_backfill(request, by="test").id


def _finish(store: SQLStore, run_id: str, status: RunStatus = RunStatus.SUCCEEDED) -> None:
    batch = WriteBatch()
    batch.update_run(run_id, status=status, ended_at=time.time())
    store.write(batch)


def _open(store: SQLStore) -> list[str]:
    return [r.id for r in runs_of(store, "hourly") if not r.status.is_terminal]


def test_a_new_slot_starts_as_soon_as_any_run_finishes(store: SQLStore) -> None:
    register(store, SPEC)
    backfill_id = _start(store, 3, params={"mode": "backfill"})
    service = _service(store)
    service.tick()
    first = runs_of(store, "hourly")
    assert len(first) == 3
    # Slots are in order, in the workflow's zone, across the spring-forward gap.
    assert [r.params["slot"][11:16] for r in first] == ["00:00", "01:00", "03:00"]
    assert all(r.params["mode"] == "backfill" for r in first)
    assert first[0].labels["backfill_id"] == backfill_id
    _finish(store, first[1].id)  # the middle one: no barrier waits for the others
    service.tick()
    now_open = _open(store)
    assert len(now_open) == 3 and first[0].id in now_open and first[2].id in now_open
    service.tick()
    assert len(runs_of(store, "hourly")) == 4  # nothing more until another finishes


def test_the_window_never_exceeds_concurrency_and_every_slot_runs_once(store: SQLStore) -> None:
    register(store, SPEC)
    backfill_id = _start(store, 3)
    ops = TriggerOperations(store)
    service = _service(store)
    rng = random.Random(7)
    for _ in range(200):
        service.tick()
        still = _open(store)
        assert len(still) <= 3
        if not still:
            break
        for run_id in rng.sample(still, k=rng.randint(1, len(still))):
            _finish(store, run_id, rng.choice([RunStatus.SUCCEEDED, RunStatus.FAILED]))
        if rng.random() < 0.3:
            service = _service(store)  # a restarted server resumes from the store
    service.tick()
    slots = [r.labels["slot"] for r in runs_of(store, "hourly")]
    assert len(slots) == len(set(slots)) == 9  # 00:00..09:00 without the missing 02:00
    view = ops.backfill(backfill_id)
    assert (view.status, view.started, view.total) == ("finished", 9, 9)


def test_cancel_stops_the_backfill_as_a_whole(store: SQLStore) -> None:
    register(store, SPEC)
    backfill_id = _start(store, 2)
    service = _service(store)
    service.tick()
    pending, claimed = runs_of(store, "hourly")
    assert store.acquire_lease(claimed.id, "some-engine", 60.0)
    ops = TriggerOperations(store)
    view = ops.cancel_backfill(backfill_id, by="me")
    assert view.status == "cancelled"
    assert store.get_run(pending.id).status is RunStatus.CANCELLED
    assert [c.kind for c in store.pending_commands(claimed.id)] == ["kill"]
    service.tick()
    assert len(runs_of(store, "hourly")) == 2
    with pytest.raises(InvalidActionError, match="already cancelled"):
        ops.cancel_backfill(backfill_id)


def test_bad_backfills_are_refused(store: SQLStore) -> None:
    register(store, SPEC)
    register(store, workflow("plain"))
    ops = TriggerOperations(store)
    with pytest.raises(InvalidActionError, match="no cron trigger"):
        ops.start_backfill(BackfillRequest(workflow="plain", start="2024-01-01", end="2024-01-02"))
    with pytest.raises(InvalidActionError, match="end is before"):
        ops.start_backfill(BackfillRequest(workflow="hourly", start="2024-01-02", end="2024-01-01"))
    with pytest.raises(Exception, match="unknown parameter 'nope'"):
        ops.start_backfill(
            BackfillRequest(
                workflow="hourly", start="2024-01-01", end="2024-01-01", params={"nope": 1}
            )
        )
    with pytest.raises(DefinitionError, match="cron: invalid cron expression"):  # 422
        ops.start_backfill(
            BackfillRequest(workflow="plain", start="2024-01-01", end="2024-01-02", cron="\x03x")
        )
    daily = ops.start_backfill(
        BackfillRequest(workflow="plain", start="2024-01-01", end="2024-01-30", cron="0 6 * * *")
    )
    assert daily.total == 30 and daily.start == "2024-01-01T00:00:00+00:00"


def test_backfill_of_real_runs_keeps_the_window(store: SQLStore, tmp_path: Path) -> None:
    spec = workflow("real", CronTriggerSpec(cron="0 0 * * *"), seconds=0.05)
    register(store, spec)
    ops = TriggerOperations(store)
    request = BackfillRequest(workflow="real", start="2024-01-01", end="2024-01-08", concurrency=2)
    backfill_id = ops.start_backfill(request).id
    service = TriggerService(store, on_lag=None, with_alerts=False)
    stop = threading.Event()
    loop = threading.Thread(target=service.run_forever, args=(stop, 0.02))
    loop.start()
    engine = EngineThread(store, tmp_path)
    seen: list[int] = []
    try:

        def done() -> bool:
            runs = store.list_runs(workflow="real", limit=100)
            seen.append(sum(1 for r in runs if not r.status.is_terminal))
            return ops.backfill(backfill_id).status == "finished"

        wait_for(done, what="backfill")
    finally:
        stop.set()
        loop.join()
        engine.stop()
    runs = runs_of(store, "real")
    assert len(runs) == 8 and all(r.status is RunStatus.SUCCEEDED for r in runs)
    assert max(seen) <= 2
    days = [dt.date.fromisoformat(r.labels["slot"][:10]).day for r in runs]
    assert days == list(range(1, 9))


def test_a_stuck_backfill_says_so_once_not_on_every_pass(
    store: SQLStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A backfill of a deactivated workflow logged `has no active version` about 4 times a
    second on every replica, for as long as it stayed so."""
    from kaon.store.registry import SQLRegistryStore

    register(store, SPEC)
    _start(store, 2)
    registry = SQLRegistryStore(store)
    registry.set_active("hourly", None, time.time())
    service = _service(store)
    with caplog.at_level("INFO", logger="kaon.triggers"):
        for _ in range(5):
            service.tick()
        assert runs_of(store, "hourly") == []
        registry.set_active("hourly", 1, time.time())  # active again: the backfill goes on
        service.tick()
    said = [r.getMessage() for r in caplog.records if "backfill" in r.getMessage()]
    assert len(said) == 2 and "waits" in said[0] and "goes on" in said[1], said
    assert len(runs_of(store, "hourly")) == 2

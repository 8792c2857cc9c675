"""A backfill covers past slots: an end after now is cut to now (and the answer says so), a
start after now is refused naming `start`; the slots to come are the cron trigger's."""

from __future__ import annotations

import datetime as dt

import pytest
from triggers_support import param, register, runs_of, workflow

from kaon.errors import DefinitionError
from kaon.model.specs import Expr
from kaon.model.triggers import CronTriggerSpec
from kaon.service.triggers import BackfillRequest, TriggerOperations
from kaon.store.sql import SQLStore
from kaon.triggers.service import TriggerService

HOURLY = CronTriggerSpec(cron="0 * * * *", timezone="UTC", params={"slot": Expr("slot")})
SPEC = workflow("hourly", HOURLY, params=(param("slot"),))
NOW = dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC).timestamp()


def test_an_end_after_now_is_cut_to_now_and_the_answer_says_so(store: SQLStore) -> None:
    register(store, SPEC)
    operations = TriggerOperations(store, clock=lambda: NOW)
    request = BackfillRequest(
        workflow="hourly", start="2024-05-01T08:00", end="2024-05-01", concurrency=5
    )
    view = operations.start_backfill(request, by="test")
    assert view.total == 3  # 08:00, 09:00, 10:00; not 11:00 .. 23:00, which have not come
    assert view.end == "2024-05-01T10:30:00+00:00"
    assert view.requested_end == "2024-05-01T23:59:59+00:00"
    assert operations.backfill(view.id).requested_end is None  # said once, in the answer
    service = TriggerService(store, on_lag=None, with_alerts=False, clock=lambda: NOW)
    service.tick(NOW)
    slots = sorted(r.labels["slot"][11:16] for r in runs_of(store, "hourly"))
    assert slots == ["08:00", "09:00", "10:00"]
    # A range wholly in the past is kept as asked.
    past = BackfillRequest(workflow="hourly", start="2024-04-30T08:00", end="2024-04-30T09:00")
    kept = operations.start_backfill(past)
    assert kept.requested_end is None and kept.end == "2024-04-30T09:00:00+00:00"


def test_a_start_after_now_is_refused_naming_start(store: SQLStore) -> None:
    register(store, SPEC)
    operations = TriggerOperations(store, clock=lambda: NOW)
    request = BackfillRequest(workflow="hourly", start="2024-05-01T11:00", end="2024-05-02")
    with pytest.raises(DefinitionError) as caught:
        operations.start_backfill(request)
    [problem] = caught.value.problems
    assert problem.location.field == "start"
    assert "after now" in problem.message and "cron trigger" in problem.message

"""Cron slots across time zones and DST changes, catch-up policies, jitter."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaon.errors import ConfigurationError
from kaon.model.triggers import CatchUp, CronTriggerSpec
from kaon.triggers.cron import CronSchedule, due_slots, jitter, slot_iso

PARIS = ZoneInfo("Europe/Paris")


def at(text: str, zone: ZoneInfo = PARIS) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(ts: float, zone: ZoneInfo = PARIS) -> str:
    return dt.datetime.fromtimestamp(ts, zone).isoformat()


def test_daily_slots_follow_the_wall_clock_of_the_zone() -> None:
    schedule = CronSchedule("0 6 * * *", "Europe/Paris")
    slots = schedule.slots_between(at("2024-03-29T00:00"), at("2024-04-01T23:00"))
    assert [local(s) for s in slots] == [
        "2024-03-29T06:00:00+01:00",
        "2024-03-30T06:00:00+01:00",
        "2024-03-31T06:00:00+02:00",  # after the spring-forward: still 06:00 local
        "2024-04-01T06:00:00+02:00",
    ]
    assert slots[3] - slots[2] == 86400
    assert slots[2] - slots[1] == 86400 - 3600  # the short day


def test_a_time_skipped_by_spring_forward_fires_once_shifted_by_the_gap() -> None:
    schedule = CronSchedule("30 2 * * *", "Europe/Paris")
    slots = schedule.slots_between(at("2024-03-30T00:00"), at("2024-04-01T23:00"))
    assert [local(s) for s in slots] == [
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:30:00+02:00",
        "2024-04-01T02:30:00+02:00",
    ]


def test_a_repeated_time_at_fall_back_fires_once_for_a_fixed_hour() -> None:
    schedule = CronSchedule("30 2 * * *", "Europe/Paris")
    slots = schedule.slots_between(at("2024-10-26T12:00"), at("2024-10-28T12:00"))
    assert [local(s) for s in slots] == [
        "2024-10-27T02:30:00+02:00",  # the first 02:30 only
        "2024-10-28T02:30:00+01:00",
    ]


def test_an_hourly_job_runs_every_hour_through_fall_back() -> None:
    schedule = CronSchedule("0 * * * *", "Europe/Paris")
    start = at("2024-10-27T00:30")
    slots = schedule.slots_between(start, start + 5 * 3600)
    assert [b - a for a, b in itertools.pairwise(slots)] == [3600.0] * (len(slots) - 1)
    assert len(slots) == 5
    assert [local(s)[11:] for s in slots] == [
        "01:00:00+02:00",
        "02:00:00+02:00",
        "02:00:00+01:00",
        "03:00:00+01:00",
        "04:00:00+01:00",
    ]


def test_an_hourly_job_skips_the_missing_hour_at_spring_forward() -> None:
    schedule = CronSchedule("0 * * * *", "Europe/Paris")
    start = at("2024-03-31T00:30")
    slots = schedule.slots_between(start, start + 3 * 3600)
    assert [local(s)[11:] for s in slots] == ["01:00:00+01:00", "03:00:00+02:00", "04:00:00+02:00"]


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC", "2024-01-01T06:00:00+00:00"),
        ("America/New_York", "2024-01-01T06:00:00-05:00"),
        ("Asia/Kolkata", "2024-01-01T06:00:00+05:30"),
    ],
)
def test_next_slot_in_various_zones(zone: str, expected: str) -> None:
    schedule = CronSchedule("0 6 * * *", zone)
    start = dt.datetime(2024, 1, 1, 0, 0, tzinfo=ZoneInfo(zone)).timestamp()
    assert slot_iso(schedule.next_slot(start), zone) == expected
    assert schedule.next_slot(schedule.next_slot(start)) - schedule.next_slot(start) == 86400


def test_six_field_expressions_have_seconds_last() -> None:
    schedule = CronSchedule("* * * * * */10", "UTC")
    assert schedule.slots_between(100.0, 130.0) == [100.0, 110.0, 120.0, 130.0]


def test_bad_expression_or_zone() -> None:
    with pytest.raises(ConfigurationError, match="invalid cron"):
        CronSchedule("nope", "UTC")
    with pytest.raises(ConfigurationError, match="unknown time zone"):
        CronSchedule("* * * * *", "Nowhere/Land")


HOURLY = "0 * * * *"


def _trigger(
    catchup: CatchUp, window: float | None = None, jitter_s: float = 0.0
) -> CronTriggerSpec:
    return CronTriggerSpec(cron=HOURLY, catchup=catchup, catchup_window_s=window, jitter_s=jitter_s)


T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC).timestamp()  # a slot of HOURLY


def test_on_time_slot_fires_under_every_policy() -> None:
    for policy in CatchUp:
        slots, cursor = due_slots(_trigger(policy), "t", T0 - 10, T0 + 0.2)
        assert (slots, cursor) == ([T0], T0)


def test_catch_up_after_downtime() -> None:
    last, now = T0, T0 + 5 * 3600 + 600  # down for five slots
    missed = [T0 + h * 3600 for h in range(1, 6)]
    assert due_slots(_trigger(CatchUp.NONE), "t", last, now) == ([], missed[-1])
    assert due_slots(_trigger(CatchUp.LATEST), "t", last, now) == ([missed[-1]], missed[-1])
    assert due_slots(_trigger(CatchUp.ALL), "t", last, now) == (missed, missed[-1])
    windowed = due_slots(_trigger(CatchUp.ALL, window=2 * 3600), "t", last, now)
    assert windowed == (missed[-2:], missed[-1])
    latest_too_old = due_slots(_trigger(CatchUp.LATEST, window=60), "t", last, now)
    assert latest_too_old == ([], missed[-1])


def test_catch_up_none_still_fires_a_slot_found_a_little_late() -> None:
    assert due_slots(_trigger(CatchUp.NONE), "t", T0 - 1, T0 + 30) == ([T0], T0)


def test_catch_up_none_fires_every_slot_a_short_pause_delayed() -> None:
    every_second = CronTriggerSpec(cron="* * * * * *", catchup=CatchUp.NONE)
    slots, cursor = due_slots(every_second, "t", T0 - 1, T0 + 2.5)  # a 2 s database outage
    assert slots == [T0, T0 + 1, T0 + 2] and cursor == T0 + 2
    slots, _ = due_slots(every_second, "t", T0 - 1, T0 + 100)  # downtime: only the last 60 s
    assert slots[0] == T0 + 40 and slots[-1] == T0 + 100


def test_catch_up_all_is_paged_by_limit() -> None:
    slots, cursor = due_slots(_trigger(CatchUp.ALL), "t", T0, T0 + 10 * 3600, limit=3)
    assert slots == [T0 + 3600, T0 + 7200, T0 + 10800] and cursor == slots[-1]
    rest, cursor = due_slots(_trigger(CatchUp.ALL), "t", cursor, T0 + 10 * 3600, limit=100)
    assert rest == [T0 + h * 3600 for h in range(4, 11)]


def test_a_slot_waits_for_its_jitter() -> None:
    trigger = _trigger(CatchUp.NONE, jitter_s=120)
    delay = jitter("t", T0, 120)
    assert 0 <= delay < 120
    assert due_slots(trigger, "t", T0 - 1, T0 + delay - 0.01) == ([], T0 - 1)
    assert due_slots(trigger, "t", T0 - 1, T0 + delay + 0.01) == ([T0], T0)


@settings(max_examples=200, deadline=None)
@given(
    trigger_id=st.text(min_size=1, max_size=20),
    slot=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    spread=st.floats(min_value=0.001, max_value=86400, allow_nan=False),
)
def test_jitter_is_deterministic_and_within_bounds(
    trigger_id: str, slot: float, spread: float
) -> None:
    first = jitter(trigger_id, slot, spread)
    assert first == jitter(trigger_id, slot, spread)
    assert 0 <= first < spread


def test_jitter_spreads_slots_and_zero_means_none() -> None:
    delays = {round(jitter("t", T0 + h * 3600, 60), 3) for h in range(50)}
    assert len(delays) > 40
    assert jitter("t", T0, 0) == 0.0

"""Backfill bounds given as dates: a date's end is the second before the next local midnight,
whatever its length (a daylight-saving day is 23 or 25 hours)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from kaon.errors import ConfigurationError
from kaon.service.triggers import parse_time

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize("day", ["2024-03-31", "2024-10-27", "2024-06-01"])
def test_a_dates_end_is_its_last_local_second(day: str) -> None:
    end = dt.datetime.fromtimestamp(parse_time(day, "Europe/Paris", end=True), PARIS)
    assert end.isoformat()[:19] == f"{day}T23:59:59"
    start = dt.datetime.fromtimestamp(parse_time(day, "Europe/Paris"), PARIS)
    assert start.isoformat()[:19] == f"{day}T00:00:00"


def test_a_malformed_time_or_zone_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="malformed time '2024-13-01'"):
        parse_time("2024-13-01", "UTC")
    with pytest.raises(ConfigurationError, match="unknown time zone 'Mars/Olympus'"):
        parse_time("2024-03-01", "Mars/Olympus")

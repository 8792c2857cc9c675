"""Durations: the forms people write, the errors they get, and exact round trips."""

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaon
from kaon.dsl.durations import format_duration, parse_duration
from kaon.errors import DefinitionError, Location


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h30m", 5400.0),
        ("10m", 600.0),
        ("45s", 45.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        ("2h 5s", 7205.0),
        ("1m500ms", 60.5),
        ("30", 30.0),
        ("0s", 0.0),
        (12.5, 12.5),
        (10, 10.0),
        (0, 0.0),
    ],
)
def test_parse_duration_accepts_the_usual_forms(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "10x", "m10", "1h30", "-5s", "ten", "1.s", -1, math.inf, True, None, [1]]
)
def test_parse_duration_rejects_with_location(bad: object) -> None:
    where = Location("flow.yaml", 7, "steps[0].timeout")
    with pytest.raises(DefinitionError) as info:
        parse_duration(bad, where)
    (problem,) = info.value.problems
    assert problem.location == where
    assert "invalid duration" in problem.message
    assert "1h30m" in problem.message  # the message shows what would work


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5400, "1h30m"), (0.5, "500ms"), (0, "0s"), (90061.001, "1d1h1m1s1ms"), (1e-05, "0.00001s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(DefinitionError):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=10**12))
def test_whole_milliseconds_round_trip(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_any_seconds_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@kaon.step(timeout=timedelta(minutes=2))
def slow() -> int:
    return 1


def test_a_timedelta_is_a_duration() -> None:
    assert parse_duration(timedelta(minutes=1, milliseconds=500)) == 60.5
    with pytest.raises(DefinitionError, match=">= 0"):
        parse_duration(timedelta(seconds=-1))

    @kaon.workflow(timeout=timedelta(hours=1))
    def flow() -> None:
        slow.options(id="quick", timeout=timedelta(seconds=5))()
        slow()

    spec = flow.spec
    assert spec.timeout_s == 3600
    timeouts = {s.id: s.timeout_s for s in spec.graph.steps}
    assert timeouts == {"quick": 5, "slow": 120}
    retry = kaon.Retry(max_attempts=2, delay=timedelta(seconds=3), max_delay=timedelta(minutes=1))
    assert (retry.delay_s, retry.max_delay_s) == (3, 60)

"""Telemetry recorded in several processes adds up where /metrics is served."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kaon.service import telemetry


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    telemetry.reset()
    yield
    telemetry.reset()


def test_snapshots_of_other_processes_add_up() -> None:
    telemetry.record_engine_turn(0.002)
    telemetry.record_trigger_lag("a/cron", 0.3)
    other = {
        "turns": ([1] + [0] * len(telemetry.TURN_BUCKETS), 0.0005),
        "lags": ([0] * len(telemetry.LAG_BUCKETS) + [1], 400.0),
        "worst": [("b/cron", 400.0), ("a/cron", 0.1)],
    }
    telemetry.absorb("engine", other)  # type: ignore[arg-type]
    telemetry.absorb("engine", other)  # type: ignore[arg-type]  # replaces, does not add
    counts, total = telemetry.engine_turns()
    assert counts[0] == 1 and counts[-1] == 2 and total == pytest.approx(0.0025)
    (lag_counts, lag_total), worst = telemetry.trigger_lags()
    assert lag_counts[-1] == 2 and lag_total == pytest.approx(400.3)
    assert worst == [("b/cron", 400.0), ("a/cron", 0.3)]


def test_only_the_worst_triggers_are_named() -> None:
    for n in range(telemetry.WORST_TRIGGERS + 30):
        telemetry.record_trigger_lag(f"w{n}/cron", float(n))
    (counts, _), worst = telemetry.trigger_lags()
    assert counts[-1] == telemetry.WORST_TRIGGERS + 30  # every lag is counted
    assert len(worst) == telemetry.WORST_TRIGGERS
    assert worst[0] == (f"w{telemetry.WORST_TRIGGERS + 29}/cron", telemetry.WORST_TRIGGERS + 29.0)
    assert telemetry.snapshot()["worst"] == worst

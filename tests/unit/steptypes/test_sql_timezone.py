"""A DuckDB query's session time zone is UTC, or the step's ``timezone``: never the worker's."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kaon.errors import Location, StepError
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType

HERE = Location("flow.yaml", 7, "steps.q")
# Midnight UTC on New Year's Day: the 31st of December in New York, the 1st in UTC and Tokyo.
QUERY = "select (timestamptz '2026-01-01 00:00:00+00')::date::varchar"


@pytest.fixture
def worker_in_new_york() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def run(**config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda _e: None)
    return SqlStepType().run(ctx, config, {})


@pytest.mark.usefixtures("worker_in_new_york")
def test_a_duckdb_query_runs_in_utc_whatever_the_workers_time_zone() -> None:
    assert run(query=QUERY, result="scalar") == "2026-01-01"
    assert run(query="select current_setting('TimeZone')", result="scalar") == "UTC"


@pytest.mark.usefixtures("worker_in_new_york")
def test_a_step_names_its_time_zone() -> None:
    assert run(query=QUERY, result="scalar", timezone="America/Los_Angeles") == "2025-12-31"
    table = run(query="select timestamptz '2026-01-01 00:00:00+00' as t", timezone="Asia/Tokyo")
    assert str(table["t"].dt.tz) == "Asia/Tokyo"


def test_an_unknown_time_zone_is_a_definition_error_at_its_field() -> None:
    problems = SqlStepType().validate({"query": "select 1", "timezone": "Mars/Olympus"}, HERE)
    assert [p.location.field for p in problems] == ["steps.q.config.timezone"]
    assert "Mars/Olympus" in problems[0].message


def test_a_time_zone_on_a_sqlalchemy_url_is_a_definition_error() -> None:
    config = {"query": "select 1", "url": "sqlite:///x.db", "timezone": "UTC"}
    problems = SqlStepType().validate(config, HERE)
    assert [p.location.field for p in problems] == ["steps.q.config.timezone"]
    assert "DuckDB" in problems[0].message


def test_a_time_zone_that_is_not_text_is_a_definition_error() -> None:
    problems = SqlStepType().validate({"query": "select 1", "timezone": 3}, HERE)
    assert [p.location.field for p in problems] == ["steps.q.config.timezone"]


def test_an_unknown_time_zone_at_run_time_is_a_config_error() -> None:
    with pytest.raises(StepError) as raised:
        run(query="select 1", result="scalar", timezone="Mars/Olympus")
    assert raised.value.error_type == "ConfigError"

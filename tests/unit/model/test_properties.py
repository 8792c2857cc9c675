"""Workflow properties are checked when set: a typo never silently becomes "parallel"."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaon.errors import ParameterError
from kaon.model.properties import RunStrategy, check_properties


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"run_strategy": "sequentail"}, "properties.run_strategy", "unknown run strategy"),
        ({"concurrency": "two"}, "properties.concurrency", "int from 1 to 1,000,000"),
        ({"concurrency": 0}, "properties.concurrency", "int from 1 to 1,000,000"),
        ({"concurrency": 10**20}, "properties.concurrency", "int from 1 to 1,000,000"),
        ({"concurrency": True}, "properties.concurrency", "int from 1 to 1,000,000"),
        ({"run_strategi": "sequential"}, "properties.run_strategi", "did you mean 'run_strategy'"),
        ({"alerts": ["http://x"]}, "properties.alerts", "must be an object"),
        ({"alerts": {"on_fail": ["http://x"]}}, "properties.alerts.on_fail", "unknown alert"),
        ({"alerts": {"on_late": "ftp://x"}}, "properties.alerts.on_late", "http(s) URLs"),
        # Each began with http:// yet no webhook could ever be POSTed to it.
        ({"alerts": {"on_failure": "http://[::1"}}, "properties.alerts.on_failure", "http(s)"),
        ({"alerts": {"on_failure": "http://h:99x/"}}, "properties.alerts.on_failure", "http(s)"),
        ({"alerts": {"on_failure": "http:///x"}}, "properties.alerts.on_failure", "http(s)"),
        ({"alerts": {"on_late": ["http://h/a\nb"]}}, "properties.alerts.on_late", "http(s)"),
        ({"alerts": {"max_duration_s": -1}}, "properties.alerts.max_duration_s", "> 0"),
        ({"alerts": {"deadline": "7h30"}}, "properties.alerts.deadline", "HH:MM"),
        ({"alerts": {"deadline": "07:30 Mars/Base"}}, "properties.alerts.deadline", "HH:MM"),
    ],
)
def test_a_bad_property_is_a_located_error(changes: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ParameterError) as caught:
        check_properties(changes)
    (problem,) = caught.value.problems
    assert problem.location.field == field and text in problem.message


def test_good_properties_removals_and_metadata_pass() -> None:
    check_properties(
        {
            "run_strategy": "strict_sequential",
            "concurrency": 3,
            "alerts": {
                "on_failure": "https://hooks/x",
                "on_late": ["http://[::1]:8080/a?b=c", "HTTPS://user@hooks.example.com/x"],
                "deadline": "07:30 Europe/Paris",
            },
            "team": "vision",  # the user's own metadata
            "run_strategy_note": None,
        }
    )
    check_properties({"run_strategy": None, "concurrency": None})


@given(st.dictionaries(st.text(max_size=12), st.none() | st.integers() | st.text(max_size=8)))
def test_checking_never_fails_otherwise(changes: dict[str, Any]) -> None:
    try:
        check_properties(changes)
    except ParameterError as error:
        assert all(p.location.field.startswith("properties.") for p in error.problems)


def test_every_strategy_is_accepted() -> None:
    for strategy in RunStrategy:
        check_properties({"run_strategy": strategy.value})

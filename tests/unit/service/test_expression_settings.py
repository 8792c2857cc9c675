"""The expression cost budget from the environment: defaults, values, refusals, application."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaon.errors import ConfigurationError
from kaon.model.expression_cost import ExpressionBudget
from kaon.model.expressions import configure_budget, current_budget
from kaon.service.local import LocalService
from kaon.service.settings import Settings, expression_budget


def test_defaults_are_100_ms_and_16_mib() -> None:
    assert expression_budget({}) == ExpressionBudget(time_ms=100.0, max_bytes=16 * 1024 * 1024)


def test_values_are_read() -> None:
    env = {"KAON_EXPRESSION_TIME_MS": "250", "KAON_EXPRESSION_MAX_BYTES": "1048576"}
    assert expression_budget(env) == ExpressionBudget(time_ms=250.0, max_bytes=1 << 20)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf", "1e300"])
def test_bad_values_are_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigurationError, match="KAON_EXPRESSION_TIME_MS"):
        expression_budget({"KAON_EXPRESSION_TIME_MS": value})
    with pytest.raises(ConfigurationError, match="KAON_EXPRESSION_MAX_BYTES"):
        expression_budget({"KAON_EXPRESSION_MAX_BYTES": value})


def test_a_service_applies_the_budget_of_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = current_budget()
    monkeypatch.setenv("KAON_EXPRESSION_TIME_MS", "7")
    try:
        LocalService(Settings(home=tmp_path, executor="inline"))
        assert current_budget() == ExpressionBudget(time_ms=7.0)
    finally:
        configure_budget(previous)

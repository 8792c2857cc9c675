"""The step type registry: built-ins, plugins by entry point, validation entry point."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any

import pytest

from kaon.errors import DefinitionError, Location, Problem
from kaon.steptypes import registry
from kaon.steptypes.base import StepType
from kaon.steptypes.context import StepContext
from kaon.steptypes.python import PythonStepType
from kaon.steptypes.shell import ShellStepType

HERE = Location("flow.py", 12, "train")


class EchoStepType(StepType):
    name = "echo"

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        return [] if "text" in config else [Problem("'text' is required", location)]

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        return config["text"]


NOT_A_STEP_TYPE = object()


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    targets = {
        "echo": f"{__name__}:EchoStepType",
        "bogus": f"{__name__}:NOT_A_STEP_TYPE",
        "missing": "kaon_no_such_module:Thing",
        "python": f"{__name__}:EchoStepType",  # a built-in name always wins
    }
    monkeypatch.setattr(registry, "_plugins", targets)
    monkeypatch.setattr(registry, "_instances", {})
    return targets


def test_builtins_are_found_and_cached() -> None:
    assert isinstance(registry.get_step_type("python"), PythonStepType)
    assert isinstance(registry.get_step_type("shell"), ShellStepType)
    assert registry.get_step_type("shell") is registry.get_step_type("shell")


def test_unknown_name_lists_the_known_ones() -> None:
    known = ", ".join(sorted(registry.BUILTIN_STEP_TYPES))
    with pytest.raises(DefinitionError) as info:
        registry.get_step_type("sparkle")
    assert f"unknown step type 'sparkle'; known step types: {known}" in str(info.value)
    assert "python, " in known and "shell" in known


def test_plugins_come_from_entry_points(plugins: dict[str, str]) -> None:
    assert isinstance(registry.get_step_type("echo"), EchoStepType)
    assert isinstance(registry.get_step_type("python"), PythonStepType)
    builtins = sorted(registry.BUILTIN_STEP_TYPES)
    assert registry.step_type_names() == [*builtins, "bogus", "echo", "missing"]


def test_broken_plugins_are_definition_errors(plugins: dict[str, str]) -> None:
    with pytest.raises(DefinitionError, match="not a kaon StepType"):
        registry.get_step_type("bogus")
    with pytest.raises(DefinitionError, match="cannot be loaded from 'kaon_no_such_module:Thing'"):
        registry.get_step_type("missing")


def test_entry_points_are_read_from_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_entry_points(group: str) -> list[Any]:
        seen.append(group)
        return []

    monkeypatch.setattr(registry, "_plugins", None)
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    assert registry.step_type_names() == sorted(registry.BUILTIN_STEP_TYPES)
    assert seen == ["kaon.step_types"]


def test_check_step_type_delegates_to_the_step_type(plugins: dict[str, str]) -> None:
    assert registry.check_step_type("echo", {"text": "hi"}, HERE) == []
    assert registry.check_step_type("echo", {}, HERE) == [Problem("'text' is required", HERE)]
    assert registry.check_step_type("shell", {"command": "ls"}, HERE) == []


def test_check_step_type_reports_unknown_types_at_the_type_field() -> None:
    problems = registry.check_step_type("sparkle", {}, HERE)
    assert len(problems) == 1
    assert problems[0].location == Location("flow.py", 12, "train.type")
    assert "unknown step type 'sparkle'" in problems[0].message


def test_package_reexports_the_registry_lazily() -> None:
    import kaon.steptypes as package

    assert package.get_step_type is registry.get_step_type
    with pytest.raises(AttributeError):
        _ = package.no_such_name

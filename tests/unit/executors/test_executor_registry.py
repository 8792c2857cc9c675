"""create_executor: the executor registry, and the packages staying import-light."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import kaon.executors as executors
from kaon.errors import ConfigurationError
from kaon.executors import create_executor, executor_names
from kaon.executors.inline import InlineExecutor
from kaon.executors.process import ProcessExecutor


def test_builtins_by_name_with_options() -> None:
    inline = create_executor("inline", workers=3)
    assert isinstance(inline, InlineExecutor) and inline.capacity == 3
    process = create_executor("process", workers=1)
    assert isinstance(process, ProcessExecutor) and process.capacity == 1
    assert executors.DEFAULT_EXECUTOR == "process"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown executor 'mesos'.*inline, process, ray"):
        create_executor("mesos")


def test_ray_is_builtin_and_built_without_connecting() -> None:
    from kaon.executors.ray_executor import RayExecutor

    executor = create_executor("ray", workers=3, address="127.0.0.1:1")
    assert isinstance(executor, RayExecutor) and executor.capacity == 3
    with pytest.raises(ConfigurationError, match="workers must be >= 1"):
        create_executor("ray", workers=0)


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="rejects its options"):
        create_executor("inline", threads=2)
    with pytest.raises(ConfigurationError, match="workers must be >= 1"):
        create_executor("process", workers=0)


def test_plugins_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    def targets() -> dict[str, str]:
        return {"threads": "kaon.executors.inline:InlineExecutor", "junk": "builtins:dict"}

    monkeypatch.setattr(executors, "_plugin_targets", targets)
    assert isinstance(create_executor("threads", workers=1), InlineExecutor)
    assert executor_names() == ["inline", "process", "ray", "junk", "threads"]
    with pytest.raises(ConfigurationError, match="is not a kaon Executor"):
        create_executor("junk")


def test_entry_point_group_name(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake(group: str) -> list[Any]:
        seen.append(group)
        return []

    monkeypatch.setattr(executors, "entry_points", fake)
    assert executor_names() == ["inline", "process", "ray"]
    assert seen == ["kaon.executors"]


def test_packages_are_import_light() -> None:
    code = (
        "import sys, kaon.executors, kaon.steptypes; "
        "heavy = {'kaon.executors.process', 'kaon.executors.inline', 'kaon.executors.runtime', "
        "'kaon.steptypes.python', 'kaon.steptypes.shell', 'subprocess', 'kaon.artifacts'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

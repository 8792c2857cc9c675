"""A warm process worker runs the steps of many runs one after another: what one step does to
the worker's process state must not reach the steps after it. Each attempt starts in the
worker's own working directory and environment, whatever the attempt before it did with
``os.chdir`` and ``os.environ``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from executor_sink import Sink

from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import StepFailed, StepSucceeded
from kaon.model.values import Literal

STEPS = """
import os

def meddle(where):
    os.chdir(where)
    os.environ["KAON_PROBE_ADDED"] = "added"
    os.environ["KAON_PROBE_CHANGED"] = "changed"
    del os.environ["KAON_PROBE_DELETED"]
    return os.getcwd()

def look():
    names = ("KAON_PROBE_ADDED", "KAON_PROBE_CHANGED", "KAON_PROBE_DELETED")
    return {"cwd": os.getcwd(), **{name: os.environ.get(name) for name in names}}
"""


def _request(number: int, module: Path, function: str, **inputs: object) -> TaskRequest:
    return TaskRequest(
        ("r", number, 1),
        f"s{number}",
        "python",
        {"file": str(module), "function": function},
        {name: Literal(value) for name, value in inputs.items()},
        {},
        "memory://kaon-probe-state",
    )


def _ended(sink: Sink, number: int) -> StepSucceeded:
    end = sink.wait(lambda e: isinstance(e, StepSucceeded | StepFailed) and e.key[1] == number)
    assert isinstance(end, StepSucceeded), end
    return end


def test_each_attempt_starts_with_the_workers_cwd_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "state_steps.py"
    module.write_text(STEPS)
    monkeypatch.setenv("KAON_PROBE_CHANGED", "original")
    monkeypatch.setenv("KAON_PROBE_DELETED", "original")
    monkeypatch.delenv("KAON_PROBE_ADDED", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sink = Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        executor.submit(_request(1, module, "meddle", where=str(elsewhere)))
        _ended(sink, 1)
        executor.submit(_request(2, module, "look"))
        end = _ended(sink, 2)
    finally:
        executor.shutdown()
    values = {name: ref.value for name, ref in end.outputs.items()}  # Literals
    assert values == {
        "cwd": os.getcwd(),
        "KAON_PROBE_ADDED": None,
        "KAON_PROBE_CHANGED": "original",
        "KAON_PROBE_DELETED": "original",
    }

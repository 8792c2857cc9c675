"""The notebook step type with real papermill and an ipykernel kernel, and kaon.notebook."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import kaon.notebook
from kaon.artifacts import open_artifact_store
from kaon.errors import Location, StepError
from kaon.executors.base import TaskRequest
from kaon.executors.runtime import run_task
from kaon.model.events import ExecutorEvent, LogLine, MetricReported, StepFailed
from kaon.model.values import ArtifactRef
from kaon.steptypes.context import StepContext
from kaon.steptypes.notebook import NotebookStepType, _prune
from kaon.steptypes.registry import get_step_type

DATA = Path(__file__).parent / "data"
HERE = Location("flow.yaml", 11, "steps.report")
USERS = pd.DataFrame({"name": ["ann", "bob", "cy"], "age": [34, 17, 51]})


class Harness:
    def __init__(self, **extra: Any) -> None:
        self.events: list[ExecutorEvent] = []
        self.ctx = StepContext(("run-1", 1, 1), "report", "wf", {}, self.events.append, extra=extra)

    def run(self, inputs: dict[str, Any] | None = None, **config: Any) -> Any:
        return NotebookStepType().run(self.ctx, config, inputs or {})

    def logs(self) -> list[tuple[str, str]]:
        return [(e.stream, e.text) for e in self.events if isinstance(e, LogLine)]


def outputs_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return json.dumps([cell.get("outputs", []) for cell in cells])


def test_registered_as_notebook() -> None:
    assert isinstance(get_step_type("notebook"), NotebookStepType)


@pytest.mark.slow
def test_notebook_runs_with_parameters_and_records_outputs_and_metrics() -> None:
    harness = Harness()
    outputs = harness.run(
        {"users": USERS, "n": 3, "region": "emea"},
        file="analysis.ipynb",
        base_dir=str(DATA),
        parameters={"alpha": 2.0, "n": 100},
    )
    assert outputs["n_adults"] == 2
    assert outputs["scaled"] == 6.0  # the input n=3 wins over the parameter n=100
    assert outputs["adults"]["name"].tolist() == ["ann", "cy"]
    executed, html = outputs["notebook"], outputs["html"]
    assert isinstance(executed, Path) and executed.suffix == ".ipynb"
    injected = json.loads(executed.read_text())["cells"][2]
    assert "injected-parameters" in injected["metadata"]["tags"]
    assert "alpha = 2.0" in "".join(injected["source"])
    assert "2 adults in emea" in outputs_of(executed)
    text = html.read_text()
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert "2 adults in emea" in text and "Cohort analysis" in text
    metrics = [(e.name, e.value, e.step) for e in harness.events if isinstance(e, MetricReported)]
    assert metrics == [("auc", 0.91, None), ("loss", 0.25, 2)]
    assert ("stdout", "2 adults in emea") in harness.logs()
    assert ("stdout", "step report") in harness.logs()


@pytest.mark.slow
def test_failing_cell_fails_the_step_and_keeps_the_partial_notebook(tmp_path: Path) -> None:
    store_url = str(tmp_path / "artifacts")
    events: list[ExecutorEvent] = []
    request = TaskRequest(
        key=("run-1", 1, 1),
        step_path="report",
        step_type="notebook",
        config={"file": str(DATA / "failing.ipynb"), "parameters": {"threshold": 7}},
        inputs={},
        params={},
        artifact_url=store_url,
    )
    run_task(request, events.append)
    failed = events[-1]
    assert isinstance(failed, StepFailed)
    assert failed.error.error_type == "NotebookError"
    first_line = failed.error.message.split(" (")[0]
    # The third cell of the file (papermill's injected parameters cell is not counted).
    assert first_line == "cell 3 failed: ValueError: bad cohort: threshold 7 is too high"
    assert "ValueError" in failed.error.traceback
    assert "kept as output 'notebook'" in failed.error.message
    ref = failed.outputs["notebook"]
    assert isinstance(ref, ArtifactRef) and ref.serializer == "files"
    partial = open_artifact_store(store_url).get(ref)
    kept = outputs_of(Path(partial))
    assert "before the failure" in kept and "bad cohort" in kept and "never printed" not in kept
    logged = [e.text for e in events if isinstance(e, LogLine)]
    assert "before the failure" in logged


@pytest.mark.slow
def test_the_step_type_raises_with_the_partial_notebook_as_an_output() -> None:
    with pytest.raises(StepError) as info:
        Harness().run(file=str(DATA / "failing.ipynb"), html=False)
    assert info.value.error_type == "NotebookError"
    partial = info.value.outputs["notebook"]
    assert isinstance(partial, Path)
    assert "bad cohort: threshold 1" in partial.read_text()


@pytest.mark.slow
def test_unknown_kernel_is_a_notebook_error() -> None:
    with pytest.raises(StepError) as info:
        Harness().run(file=str(DATA / "failing.ipynb"), kernel="no-such-kernel")
    assert info.value.error_type == "NotebookError"
    assert "no-such-kernel" in info.value.message


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.file"),
        ({"file": "analysis.txt", "base_dir": str(DATA)}, "config.file"),
        ({"file": "missing.ipynb", "base_dir": str(DATA)}, "config.file"),
        ({"file": "analysis.ipynb", "base_dir": str(DATA), "parameters": [1]}, "config.parameters"),
        (
            {"file": "analysis.ipynb", "base_dir": str(DATA), "parameters": {"a": {1, 2}}},
            "config.parameters",
        ),
        ({"file": "analysis.ipynb", "base_dir": str(DATA), "html": "yes"}, "config.html"),
        ({"file": "analysis.ipynb", "base_dir": str(DATA), "kernel": 3}, "config.kernel"),
        ({"file": "analysis.ipynb", "base_dir": str(DATA), "notebook": 3}, "config.notebook"),
    ],
)
def test_config_problems_name_the_field(config: dict[str, Any], field: str) -> None:
    problems = NotebookStepType().validate(config, HERE)
    assert [p.location.field for p in problems] == [f"steps.report.{field}"]


def test_valid_config_has_no_problems() -> None:
    config = {"file": "analysis.ipynb", "base_dir": str(DATA), "parameters": {"alpha": 1}}
    assert NotebookStepType().validate(config, HERE) == []


def test_record_and_metric_write_records_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(kaon.notebook.DIR_ENV, str(tmp_path))
    assert kaon.notebook.record("n", 3) == 3
    kaon.notebook.record("n", 4)
    kaon.notebook.record("table", USERS)
    kaon.notebook.metric("auc", 0.5)
    kaon.notebook.metric("loss", 1, step=3)
    outputs, metrics = kaon.notebook.read_records(str(tmp_path))
    assert outputs["n"] == 4
    pd.testing.assert_frame_equal(outputs["table"], USERS)
    assert metrics == [("auc", 0.5, None), ("loss", 1.0, 3)]


def test_get_input_reads_what_the_step_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kaon.notebook.write_inputs(str(tmp_path), {"users": USERS})
    monkeypatch.setenv(kaon.notebook.DIR_ENV, str(tmp_path))
    pd.testing.assert_frame_equal(kaon.notebook.get_input("users"), USERS)
    with pytest.raises(KeyError, match="available: users"):
        kaon.notebook.get_input("model")


def test_outside_a_step_values_stay_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kaon.notebook.DIR_ENV, raising=False)
    kaon.notebook.record("interactive", [1, 2])
    kaon.notebook.metric("acc", 0.7)
    seen = kaon.notebook.recorded()
    assert seen["outputs"]["interactive"] == [1, 2]
    assert ("acc", 0.7, None) in seen["metrics"]
    with pytest.raises(RuntimeError):
        kaon.notebook.get_input("users")


@pytest.mark.parametrize("name", ["", "notebook", "html"])
def test_record_rejects_empty_and_reserved_names(name: str) -> None:
    with pytest.raises(ValueError):
        kaon.notebook.record(name, 1)


def test_metric_rejects_non_finite_values() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        kaon.notebook.metric("loss", float("nan"))


def test_prune_removes_only_old_work_folders(tmp_path: Path) -> None:
    import os

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    os.utime(old, (0, 0))
    _prune(str(tmp_path), keep_s=60)
    assert not old.exists() and new.exists()


_KILLED_WORKER = """
import sys
from kaon.steptypes.context import StepContext
from kaon.steptypes.notebook import NotebookStepType

ctx = StepContext(("run-1", 1, 1), "report", "wf", {}, lambda event: None)
NotebookStepType().run(ctx, {"file": sys.argv[1]}, {})
"""
_SLEEPY = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": ["import time\n", "print('started', flush=True)\n", "time.sleep(60)"],
        }
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.mark.slow
def test_a_killed_worker_leaves_no_kernel_socket_in_the_workflows_folder(tmp_path: Path) -> None:
    """A worker killed while its kernel runs cannot shut the kernel down: its sockets are
    left behind, but in the step's work folder (pruned), not in the workflow's folder."""
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    work_root = Path(tempfile.gettempdir())
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "sleepy.ipynb").write_text(json.dumps(_SLEEPY))
    worker = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WORKER, str(folder / "sleepy.ipynb")],
        cwd=folder,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until the kernel's sockets exist, wherever
            sockets = list(work_root.glob(f"kaon-{worker.pid}-*/notebooks-*/step-*/ipc/*"))
            if sockets or list(folder.glob("kernel-ipc-*")):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the kernel did not start")
        time.sleep(1)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        for left in work_root.glob(f"kaon-{worker.pid}-*"):  # its atexit never ran
            shutil.rmtree(left, ignore_errors=True)
    assert sorted(p.name for p in folder.iterdir()) == ["sleepy.ipynb"]
    assert sockets and all(p.name.startswith("kernel-") for p in sockets)


@pytest.mark.slow
def test_the_kernel_leaves_nothing_in_the_notebooks_folder(tmp_path: Path) -> None:
    """The kernel's IPC sockets live in a temporary folder of their own, removed after the
    step: the workflow's folder (the kernel's working directory) stays as it was."""
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "analysis.ipynb").write_text((DATA / "analysis.ipynb").read_text())
    before = sorted(p.name for p in folder.iterdir())
    harness = Harness()
    outputs = harness.run(
        {"users": USERS, "n": 3, "region": "emea"}, file="analysis.ipynb", base_dir=str(folder)
    )
    assert outputs["n_adults"] == 2
    assert sorted(p.name for p in folder.iterdir()) == before


def test_numpy_numbers_are_injected_as_parameters() -> None:
    # An upstream step's np.int64 was not JSON, so it was not injected: the notebook ran
    # silently with its own default for that parameter.
    import numpy as np

    from kaon.steptypes.notebook import _split_inputs

    inputs = {"n": np.int64(3), "f": np.float32(0.5), "b": np.bool_(False), "t": pd.DataFrame()}
    parameters, pickled = _split_inputs({}, inputs)
    assert parameters == {"n": 3, "f": 0.5, "b": False}
    assert [type(v) for v in parameters.values()] == [int, float, bool]
    assert list(pickled) == ["t"]


def test_a_tuple_input_is_injected_as_a_list() -> None:
    # A tuple reaches a step as a tuple; papermill, which injects JSON types, wrote one as
    # the string "(2, 3)".
    from papermill.translators import PythonTranslator

    from kaon.steptypes.notebook import _split_inputs

    parameters, pickled = _split_inputs({}, {"shape": (2, 3), "nested": {"k": [(1, "a")]}})
    assert parameters == {"shape": [2, 3], "nested": {"k": [[1, "a"]]}} and not pickled
    assert PythonTranslator.translate(parameters["shape"]) == "[2, 3]"

"""Notebooks as tools write them: without kernel metadata (nbformat, jupytext), or unreadable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import Location, StepError
from kaon.steptypes.context import StepContext
from kaon.steptypes.notebook import NotebookStepType


def _notebook(path: Path, *sources: str, parameters: str = "", metadata: Any = None) -> Path:
    cells = [
        {
            "cell_type": "code",
            "metadata": {},
            "source": source,
            "outputs": [],
            "execution_count": None,
        }
        for source in sources
    ]
    if parameters:
        cells.insert(
            0,
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "source": parameters,
                "outputs": [],
                "execution_count": None,
            },
        )
    document = {"cells": cells, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 4}
    path.write_text(json.dumps(document))
    return path


def _run(path: Path, **config: Any) -> Any:
    ctx = StepContext(("run-1", 1, 1), "report", "wf", {}, lambda event: None)
    return NotebookStepType().run(ctx, {"file": str(path), "html": False, **config}, {})


@pytest.mark.slow
def test_a_notebook_without_kernel_metadata_runs_on_the_configured_kernel(
    tmp_path: Path,
) -> None:
    notebook = _notebook(
        tmp_path / "bare.ipynb",
        "import kaon.notebook\nkaon.notebook.record('y', alpha + 1)",
        parameters="alpha = 1",
    )
    outputs = _run(notebook, parameters={"alpha": 41})
    assert outputs["y"] == 42


@pytest.mark.slow
def test_an_unreadable_notebook_fails_naming_its_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(StepError) as info:
        _run(broken)
    assert info.value.error_type == "NotebookError"
    assert info.value.message.startswith(f"{broken}: ")


HERE = Location("flow.yaml", 7, "steps[2]")


def test_validation_reads_the_notebook(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    problems = NotebookStepType().validate({"file": str(broken)}, HERE)
    assert [p.location.field for p in problems] == ["steps[2].config.file"]
    assert problems[0].message.startswith(f"notebook {broken} cannot be read: ")
    not_a_notebook = tmp_path / "list.ipynb"
    not_a_notebook.write_text("[1, 2]")
    problems = NotebookStepType().validate({"file": str(not_a_notebook)}, HERE)
    assert [p.message for p in problems] == [f"{not_a_notebook} is not a Jupyter notebook"]


def test_a_parameter_the_notebooks_parameters_cell_lacks_is_a_problem(tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path / "report.ipynb", "print(alpha)", parameters="alpha = 1\nn: int = 3\n"
    )
    config = {"file": str(notebook), "parameters": {"alpah": 2, "n": 4}}
    problems = NotebookStepType().validate(config, HERE)
    assert [(p.location.field, p.location.line) for p in problems] == [
        ("steps[2].config.parameters.alpah", 7)
    ]
    assert problems[0].message == (
        f"notebook {notebook} has no parameter 'alpah' in its parameters cell "
        "(it has: alpha, n); did you mean 'alpha'?"
    )
    assert NotebookStepType().validate({**config, "parameters": {"alpha": 2}}, HERE) == []


def test_parameters_are_not_checked_where_the_notebook_cannot_say(tmp_path: Path) -> None:
    untagged = _notebook(tmp_path / "untagged.ipynb", "print(alpha)")  # injected at the top
    assert NotebookStepType().validate({"file": str(untagged), "parameters": {"a": 1}}, HERE) == []
    r_cell = _notebook(
        tmp_path / "r.ipynb",
        "print(alpha)",
        parameters="alpha <- 1",
        metadata={"kernelspec": {"name": "ir", "language": "R", "display_name": "R"}},
    )
    assert NotebookStepType().validate({"file": str(r_cell), "parameters": {"a": 1}}, HERE) == []

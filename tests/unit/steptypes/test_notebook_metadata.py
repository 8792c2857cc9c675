"""Notebooks as tools write them: without kernel metadata (nbformat, jupytext), or unreadable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import StepError
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

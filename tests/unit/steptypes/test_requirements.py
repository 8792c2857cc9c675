"""A step whose packages are not installed fails validation with the command that installs
them (exit 2 from ``kaon validate``), not with ModuleNotFoundError when it first runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaon.cli.main import app
from kaon.dsl.loader import load_workflow
from kaon.errors import DefinitionError
from kaon.steptypes.registry import get_step_type
from kaon.steptypes.requirements import Requirement, is_installed

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def _flow(tmp_path: Path, step: str) -> Path:
    (tmp_path / "report.ipynb").write_text(NOTEBOOK)
    path = tmp_path / "flow.yaml"
    path.write_text(f"name: w\nsteps:\n  - id: a\n{step}")
    return path


CASES = [
    ("    type: notebook\n    config: {file: report.ipynb}\n", "papermill", "notebook"),
    ("    type: spark\n    config: {function: 'jobs:count'}\n", "pyspark", "spark"),
    ("    type: sql\n    config: {query: 'select 1', result: scalar}\n", "duckdb", "ml"),
    (
        "    type: sql\n    config: {query: 'select 1', url: 'postgresql+psycopg://h/db'}\n",
        "psycopg",
        "postgres",
    ),
]


@pytest.mark.parametrize(("step", "module", "extra"), CASES)
def test_a_missing_package_is_a_validation_problem_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, module: str, extra: str
) -> None:
    flow = _flow(tmp_path, step)
    monkeypatch.setitem(sys.modules, module, None)  # as in an install without the extra
    with pytest.raises(DefinitionError) as info:
        load_workflow(str(flow))
    hint = f"needs {module}, which is not installed: pip install 'kaon[{extra}]'"
    assert any(
        hint in p.message and p.location.field == "steps[0].type" for p in info.value.problems
    )
    result = CliRunner().invoke(app, ["validate", str(flow)])
    assert result.exit_code == 2 and hint in result.stderr
    assert "Traceback" not in result.stderr


def test_with_the_packages_installed_the_same_steps_validate(tmp_path: Path) -> None:
    step, *_ = CASES[0]
    assert is_installed("papermill")  # the test environment has every extra
    assert load_workflow(str(_flow(tmp_path, step))).name == "w"


def test_step_types_declare_their_extras() -> None:
    assert get_step_type("notebook").requirements({"html": False}) == (
        Requirement("papermill", "notebook"),
        Requirement("ipykernel", "notebook"),
    )
    assert get_step_type("python").requirements({}) == ()
    assert get_step_type("sql").requirements({"url": "sqlite:///x.db", "result": "row"}) == ()
    assert not is_installed("kaon_no_such_module")

"""A shell step runs in the folder of the file that defines it, as a notebook or an R script
runs in its own: ``bash prep.sh`` beside ``flow.yaml`` used to fail ("No such file or
directory") unless ``kaon run`` was started in that very folder, and on a server (where the
worker's folder is the server's) it could never run a script pushed with the workflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kaon.dsl.loader import load_workflow
from kaon.errors import StepError
from kaon.model.specs import TaskSpec
from kaon.steptypes.context import StepContext
from kaon.steptypes.shell import ShellStepType, working_folder

FLOW_YAML = """\
name: scripted
steps:
  - id: prep
    shell: bash prep.sh
  - id: inside
    shell: {command: "bash ../read.sh", cwd: sub}
"""

FLOW_PY = """\
import kaon

@kaon.workflow
def scripted():
    kaon.shell("bash prep.sh", id="prep")
"""

PREP = 'echo "::kaon::output where=$(pwd)"\necho "::kaon::output dir=$KAON_WORKFLOW_DIR"\n'
READ = 'echo "::kaon::output note=$(cat note.txt)"\n'


def _project(root: Path) -> Path:
    project = root / "proj"
    (project / "sub").mkdir(parents=True)
    (project / "flow.yaml").write_text(FLOW_YAML)
    (project / "flow.py").write_text(FLOW_PY)
    (project / "prep.sh").write_text(PREP)
    (project / "read.sh").write_text(READ)
    (project / "sub" / "note.txt").write_text("hello\n")
    return project


def _outputs(tmp_path: Path, target: str) -> dict[str, dict[str, object]]:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "kaon", "run", target, "--json"],
        capture_output=True,
        text=True,
        cwd=elsewhere,  # not the workflow's folder
        env={**os.environ, "KAON_HOME": str(tmp_path / ".kaon")},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    detail = json.loads(done.stdout)
    return {
        s["path"]: {name: ref["value"] for name, ref in (s["outputs"] or {}).items()}
        for s in detail["steps"]
    }


def test_a_yaml_shell_step_runs_its_script_wherever_kaon_run_starts(tmp_path: Path) -> None:
    project = _project(tmp_path).resolve()
    outputs = _outputs(tmp_path, str(project / "flow.yaml"))
    assert outputs["prep"] == {"where": str(project), "dir": str(project)}
    assert outputs["inside"] == {"note": "hello"}  # a relative cwd is from the folder too


def test_a_python_shell_step_runs_in_its_files_folder(tmp_path: Path) -> None:
    project = _project(tmp_path).resolve()
    outputs = _outputs(tmp_path, f"{project / 'flow.py'}:scripted")
    assert outputs["prep"] == {"where": str(project), "dir": str(project)}


def test_the_folder_is_not_in_the_cache_key_its_scripts_are(tmp_path: Path) -> None:
    first = _project(tmp_path / "a")
    copy = tmp_path / "b" / "proj"
    shutil.copytree(first, copy)

    def fingerprint(project: Path) -> object:
        step = load_workflow(str(project / "flow.yaml")).graph.steps[0]
        assert isinstance(step, TaskSpec)
        assert step.config["base_dir"] == str(project.resolve())
        return ShellStepType().fingerprint(step.config)

    assert fingerprint(first) == fingerprint(copy)  # a copy of the project (a push) hits
    (copy / "prep.sh").write_text(PREP + "echo changed\n")
    assert fingerprint(first) != fingerprint(copy)  # the script beside it is its code


def test_a_missing_working_folder_is_named() -> None:
    config = {"command": "true", "base_dir": "/nonexistent/flows", "cwd": "data"}
    assert working_folder(config) == "/nonexistent/flows/data"
    with pytest.raises(StepError, match="working folder /nonexistent/flows/data does not exist"):
        ShellStepType().run(StepContext(("run-1", 1, 1), "s", "wf", {}, print), config, {})


def test_without_base_dir_the_command_runs_where_the_worker_is(tmp_path: Path) -> None:
    assert working_folder({"command": "true"}) is None
    assert working_folder({"command": "true", "cwd": str(tmp_path)}) == str(tmp_path)

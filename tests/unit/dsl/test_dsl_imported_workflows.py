"""A workflow imported from another file (to run as a subworkflow) is not one of the
importing file's own workflows: ``kaon run parent.py`` runs the one defined there."""

import os
from pathlib import Path

import pytest

from kaon.dsl.loader import load_workflow, load_workflows
from kaon.errors import DefinitionError

CHILD = """
import kaon

@kaon.step
def double(x: int) -> int:
    return x * 2

@kaon.workflow
def child(x: int = 1):
    double(x)
"""

PARENT = """
import kaon
from child_flow import child

@kaon.workflow
def parent(x: int = 3):
    kaon.subworkflow(child, id="sub", x=x)
"""

ONLY_IMPORTS = "from child_flow import child\n"


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def test_a_file_runs_its_own_workflow_not_the_one_it_imports(tmp_path: Path) -> None:
    write(tmp_path, "child_flow.py", CHILD)
    parent = write(tmp_path, "parent_flow.py", PARENT)
    spec = load_workflow(parent)
    assert spec.name == "parent"
    assert spec.location.file == os.path.realpath(parent)
    assert set(load_workflows(parent)) == {"parent"}


def test_an_imported_workflow_is_still_found_by_its_name(tmp_path: Path) -> None:
    write(tmp_path, "child_flow.py", CHILD)
    parent = write(tmp_path, "parent_flow.py", PARENT)
    assert load_workflow(parent + ":child").name == "child"
    with pytest.raises(DefinitionError, match=r"no workflow 'nope' here \(found: child, parent\)"):
        load_workflow(parent + ":nope")


def test_a_file_that_only_imports_a_workflow_runs_it(tmp_path: Path) -> None:
    write(tmp_path, "child_flow.py", CHILD)
    entry = write(tmp_path, "entry.py", ONLY_IMPORTS)
    assert load_workflow(entry).name == "child"


def test_a_folder_counts_an_imported_workflow_once(tmp_path: Path) -> None:
    """The folder's child_flow.py defines ``child`` and parent_flow.py imports it: one
    workflow, not 'a second workflow named child'."""
    write(tmp_path, "child_flow.py", CHILD)
    write(tmp_path, "parent_flow.py", PARENT)
    write(tmp_path, "entry.py", ONLY_IMPORTS)
    assert set(load_workflows(str(tmp_path))) == {"child", "parent"}


def test_two_files_defining_one_name_are_still_refused(tmp_path: Path) -> None:
    write(tmp_path, "child_flow.py", CHILD)
    write(tmp_path, "other_flow.py", CHILD)
    with pytest.raises(DefinitionError, match="a second workflow named 'child'"):
        load_workflows(str(tmp_path))

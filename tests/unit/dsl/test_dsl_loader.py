"""Loading ``FILE[:WORKFLOW]`` targets from Python and YAML files."""

import os
import sys
from pathlib import Path

import pytest

from kaon.dsl.loader import load_workflow, load_workflows, split_target
from kaon.errors import DefinitionError

TWO = """
import kaon

@kaon.step
def hello(name: str = "x") -> str:
    return "hi " + name

@kaon.workflow
def first(name: str = "a"):
    hello(name)

@kaon.workflow(name="second")
def other():
    hello()
"""


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def test_split_target() -> None:
    assert split_target("a/flow.py:main") == ("a/flow.py", "main")
    assert split_target("flow.yaml") == ("flow.yaml", None)
    assert split_target("flow.yml:x") == ("flow.yml", "x")
    assert split_target("weird:name") == ("weird:name", None)


def test_python_file_by_name_and_module_naming(tmp_path: Path) -> None:
    from kaon.steptypes.python import user_module_name

    path = write(tmp_path, "two.py", TWO)
    spec = load_workflow(f"{path}:second")
    assert spec.name == "second"
    assert user_module_name(os.path.realpath(path)) in sys.modules
    assert os.path.dirname(os.path.realpath(path)) not in sys.path  # siblings: see codeload
    assert load_workflow(f"{path}:first").params[0].name == "name"
    assert set(load_workflows(path)) == {"first", "second"}


def test_several_workflows_need_a_name(tmp_path: Path) -> None:
    path = write(tmp_path, "many.py", TWO)
    with pytest.raises(DefinitionError, match=r"several workflows \(first, second\)") as info:
        load_workflow(path)
    assert info.value.problems[0].location.file == os.path.realpath(path)


def test_single_workflow_needs_no_name(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yaml", "name: solo\nsteps: [{id: a, shell: echo}]\n")
    assert load_workflow(path).name == "solo"
    assert load_workflow(f"{path}:solo").name == "solo"


def test_unknown_name_missing_file_and_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yaml", "name: solo\nsteps: [{id: a, shell: echo}]\n")
    with pytest.raises(DefinitionError, match=r"no workflow 'other' here \(found: solo\)"):
        load_workflow(f"{path}:other")
    with pytest.raises(DefinitionError, match="workflow file not found") as info:
        load_workflow(str(tmp_path / "nope.py"))
    assert info.value.problems[0].location.file == str(tmp_path / "nope.py")
    txt = write(tmp_path, "flow.txt", "")
    with pytest.raises(DefinitionError, match="unknown workflow file type"):
        load_workflow(txt)
    empty = write(tmp_path, "empty.py", "x = 1\n")
    with pytest.raises(DefinitionError, match=r"no @kaon\.workflow"):
        load_workflow(empty)


def test_import_errors_point_at_the_line(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.py", "import kaon\n\nraise ValueError('bad')\n")
    with pytest.raises(DefinitionError, match="ValueError: bad") as info:
        load_workflow(broken)
    assert info.value.problems[0].location.line == 3
    syntax = write(tmp_path, "syntax.py", "def (:\n")
    with pytest.raises(DefinitionError, match="syntax error") as info:
        load_workflow(syntax)
    assert info.value.problems[0].location.line == 1


def test_definition_problems_of_a_python_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.py",
        "import kaon\n\n@kaon.workflow\ndef bad():\n    kaon.shell('echo', needs=['ghost'])\n",
    )
    with pytest.raises(DefinitionError, match="ghost") as info:
        load_workflow(path)
    assert info.value.problems[0].location.line == 5


def test_a_workflow_body_that_exits_or_cannot_say_why_is_a_definition_error(
    tmp_path: Path,
) -> None:
    """``raise SystemExit(0)`` in a workflow's body made ``kaon run`` and ``kaon validate``
    exit 0 having done nothing; an exception whose ``__str__`` raises gave a traceback."""
    path = write(
        tmp_path,
        "exits.py",
        "import kaon\n\n"
        "class Unsayable(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError('str exploded')\n\n"
        "@kaon.workflow\n"
        "def leaves():\n"
        "    raise SystemExit(0)\n\n"
        "@kaon.workflow\n"
        "def mute():\n"
        "    raise Unsayable()\n",
    )
    with pytest.raises(DefinitionError, match="raised SystemExit") as info:
        load_workflow(path + ":leaves")
    assert info.value.problems[0].location.line == 9
    with pytest.raises(DefinitionError, match="could not be read") as info:
        load_workflow(path + ":mute")
    assert [p.location.line for p in info.value.problems] == [13]  # not leaves' problem


def test_a_named_workflow_loads_whatever_the_others_of_its_file_do(tmp_path: Path) -> None:
    """``kaon run FILE:good`` (and ``validate``) failed because another workflow of the file
    was broken; the file as a whole (``kaon validate FILE``, a push) still reports it."""
    path = write(
        tmp_path,
        "mixed.py",
        TWO.replace("    hello()\n", "    hello()\n    raise ValueError('broken')\n"),
    )
    assert load_workflow(path + ":first").name == "first"
    with pytest.raises(DefinitionError, match="ValueError: broken"):
        load_workflow(path + ":second")
    with pytest.raises(DefinitionError, match="ValueError: broken"):
        load_workflows(path)


def test_load_workflows_from_a_folder(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: a\nsteps: [{id: s, shell: echo}]\n")
    write(tmp_path, "b.py", TWO)
    write(tmp_path, "_helper.py", "raise RuntimeError('never imported')\n")
    write(tmp_path, "notes.txt", "ignored")
    assert set(load_workflows(str(tmp_path))) == {"a", "first", "second"}
    write(tmp_path, "c.yml", "name: a\nsteps: [{id: s, shell: echo}]\n")
    with pytest.raises(DefinitionError, match="a second workflow named 'a'"):
        load_workflows(str(tmp_path))

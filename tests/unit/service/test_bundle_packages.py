"""A push refuses a workflow that imports a package folder beside it, naming the folder.

A push carries the files directly beside the workflow file, not its subfolders. A workflow
(or a sibling module) doing ``import utils`` of a ``utils/`` package beside it ran locally,
and its push (or ``kaon run`` against a server) was refused with only what the server saw,
``flow.py:2: importing the file raised ModuleNotFoundError: No module named 'utils'`` (or
worse, ran a ``utils`` installed on the server: other code than the one run locally).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kaon.errors import DefinitionError
from kaon.service.bundle import read_push

FLOW = """import kaon
import utils
from helper import f


@kaon.step
def u() -> object:
    return utils.VERSION


@kaon.workflow
def pkgflow() -> None:
    u()
"""


def test_a_package_folder_beside_the_workflow_is_named(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "helper.py").write_text("import json\n\n\ndef f():\n    from tools.x import y\n")
    for package in ("utils", "tools"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("VERSION = 1\n")
    (tmp_path / "data").mkdir()  # a folder no code imports: not a problem
    with pytest.raises(DefinitionError) as raised:
        read_push(str(tmp_path / "flow.py"))
    problems = raised.value.problems
    assert [(Path(str(p.location.file)).name, p.location.line) for p in problems] == [
        ("flow.py", 2),
        ("helper.py", 5),
    ]
    assert "'utils' is the folder utils/ beside flow.py" in problems[0].message
    assert "a push carries the files directly beside flow.py" in problems[0].message


def test_modules_and_installed_packages_pass(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "utils.py").write_text("VERSION = 1\n")  # a module beside it: pushed
    (tmp_path / "helper.py").write_text("import json\n\n\ndef f():\n    pass\n")
    source, files = read_push(str(tmp_path / "flow.py"))
    assert source == FLOW
    assert sorted(files) == ["helper.py", "utils.py"]

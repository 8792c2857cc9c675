"""A notebook's, an R script's and a Spark job's cache fingerprint covers the project files
their code reads (:mod:`kaon.steptypes._deps`): editing ``helper.R`` or ``nbhelp.py`` used to
be a cache hit that returned the old results."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.steptypes._deps import code_dependencies
from kaon.steptypes.base import CodeFingerprint
from kaon.steptypes.registry import get_step_type


def _notebook(*cells: str) -> str:
    return json.dumps(
        {
            "cells": [{"cell_type": "code", "source": c, "metadata": {}} for c in cells]
            + [{"cell_type": "markdown", "source": "import not_code", "metadata": {}}],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def _digest(step_type: str, config: dict[str, Any]) -> str:
    found = get_step_type(step_type).fingerprint(config)
    assert isinstance(found, CodeFingerprint)
    return found.digest


def _changes(
    digest: Callable[[], str], edit: Path, before: str, after: str
) -> tuple[str, str, str]:
    edit.write_text(before)
    first = digest()
    edit.write_text(after)
    second = digest()
    edit.write_text(before)
    return first, second, digest()


def test_a_notebook_covers_the_modules_its_cells_import(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "deep.py").write_text("from . import leaf\n")
    (tmp_path / "pkg" / "leaf.py").write_text("X = 1\n")
    (tmp_path / "ran.py").write_text("Y = 1\n")
    (tmp_path / "unrelated.py").write_text("Z = 1\n")
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(
        _notebook("%matplotlib inline\nfrom nbhelp import FACTOR", "import pkg.deep", "%run ran.py")
    )
    (tmp_path / "nbhelp.py").write_text("FACTOR = 2\n")
    assert {str(Path(p).relative_to(tmp_path)) for p in code_dependencies(str(notebook))} == {
        "pkg/__init__.py",
        "pkg/deep.py",
        "pkg/leaf.py",
        "nbhelp.py",
        "ran.py",
    }
    config = {"file": str(notebook)}
    for edited in ("nbhelp.py", "pkg/leaf.py", "ran.py"):
        path = tmp_path / edited
        first, changed, back = _changes(
            lambda: _digest("notebook", config), path, path.read_text(), "CHANGED = 5\n"
        )
        assert first != changed and back == first, edited
    before = _digest("notebook", config)
    (tmp_path / "unrelated.py").write_text("Z = 2\n")
    assert _digest("notebook", config) == before
    parts = get_step_type("notebook").fingerprint(config).parts  # type: ignore[union-attr]
    assert "file nbhelp.py" in parts and "file pkg/leaf.py" in parts  # what explain names


def test_an_r_script_covers_what_it_sources(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "inner.R").write_text("J <- 1\n")
    (tmp_path / "helper.R").write_text('K <- 10\nsource(file = "lib/inner.R")\n')
    main = tmp_path / "main.R"
    main.write_text('source("helper.R")\nkaon_output("k", K)\n')
    assert {Path(p).name for p in code_dependencies(str(main))} == {"inner.R", "helper.R"}
    for edited in ("helper.R", "lib/inner.R"):
        path = tmp_path / edited
        first, changed, back = _changes(
            lambda: _digest("r", {"file": str(main)}), path, path.read_text(), "K <- 100\n"
        )
        assert first != changed and back == first, edited


@pytest.fixture
def on_path(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("sparkmod", "sparkconsts"):
            sys.modules.pop(name, None)


def test_a_spark_job_covers_its_function_and_what_it_reads(on_path: Path) -> None:
    """``function: "sparkmod:answer"`` hashed the configuration alone, and ``file: jobs.py``
    the file alone (not the ``sparkconsts`` it imports)."""
    pytest.importorskip("pyspark")
    (on_path / "sparkconsts.py").write_text("OFFSET = 0\n")
    job = "import sparkconsts\n\ndef answer(spark):\n    return 10 + sparkconsts.OFFSET\n"
    (on_path / "sparkmod.py").write_text(job)
    by_module = get_step_type("spark").fingerprint({"function": "sparkmod:answer"})
    assert isinstance(by_module, CodeFingerprint)
    assert "constant sparkconsts.py:OFFSET" in by_module.parts
    config = {"file": str(on_path / "sparkmod.py"), "function": "answer"}
    first = _in_a_new_process("spark", config)  # as each `kaon run`: modules loaded afresh
    (on_path / "sparkconsts.py").write_text("OFFSET = 1\n")
    assert _in_a_new_process("spark", config) != first


def _in_a_new_process(step_type: str, config: dict[str, Any]) -> str:
    code = (
        "import json, sys\n"
        "from kaon.steptypes.registry import get_step_type\n"
        "print(get_step_type(sys.argv[1]).fingerprint(json.loads(sys.argv[2])).digest)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, step_type, json.dumps(config)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()

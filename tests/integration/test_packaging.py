"""The published package: a wheel and an sdist that pass ``twine check``, and a wheel that
installs with no extras into a fresh virtualenv where ``kaon --version`` works.

The build runs on a copy of the sources (the repository stays clean) with the build backend
already installed (``--no-isolation``); the fresh virtualenv gets Kaon's core dependencies
from the package index through pip's cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import kaon

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


# The fresh virtualenv must see only what was installed in it: not these sources.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=110, cwd=cwd, env=CLEAN_ENV
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the sdist, built from a copy of the sources."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source)
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("kaon-*.whl")
    return wheel


def test_wheel_and_sdist_pass_twine_check(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert {f.suffix for f in files} == {".whl", ".gz"}
    _run(sys.executable, "-m", "twine", "check", "--strict", *files)


def test_wheel_metadata_declares_license_typing_urls_and_extras(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as wheel:
        names = wheel.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(wheel.read(meta_name).decode())
    assert meta["Version"] == kaon.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Typing :: Typed" in meta.get_all("Classifier", [])
    assert "kaon/py.typed" in names
    urls = {u.split(",")[0] for u in meta.get_all("Project-URL", [])}
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= urls
    extras = set(meta.get_all("Provides-Extra", []))
    assert {"postgres", "s3", "ml", "notebook", "spark", "examples", "all"} <= extras
    assert "dev" not in extras  # a dependency group, not something users install
    # the example's data set and scikit-learn are in `examples` only
    heavy = [r for r in meta.get_all("Requires-Dist", []) if r.startswith(("scikit", "rdat"))]
    assert heavy and all('extra == "examples"' in r for r in heavy)
    # no package of the wheel is an empty shell
    packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    for package in packages:
        assert any(n.startswith(package + "/") and not n.endswith("__init__.py") for n in names)


def test_dev_is_a_dependency_group() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dev" not in pyproject["project"]["optional-dependencies"]
    group = pyproject["dependency-groups"]["dev"]
    assert any(r.startswith("twine") for r in group)
    assert "--group dev" in (ROOT / "Makefile").read_text()


def test_wheel_installs_with_no_extras_into_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python]
    _run(*pip, "install", "-q", "--no-compile", "--disable-pip-version-check", _wheel(dist))
    assert _run(venv / "bin" / "kaon", "--version").strip() == f"kaon {kaon.__version__}"
    # no extra came along, and the core import and the CLI's help work without them
    installed = _run(*pip, "list", "--format=freeze", "--disable-pip-version-check").lower()
    for extra_only in ("pandas", "duckdb", "scikit-learn", "papermill", "pyspark", "psycopg"):
        assert f"\n{extra_only}==" not in "\n" + installed
    _run(python, "-c", "import kaon; assert kaon.step and kaon.workflow", cwd=tmp_path)
    _run(python, "-m", "kaon", "--help", cwd=tmp_path)
    # a notebook step needs the `notebook` extra: validation says so, with the command
    (tmp_path / "report.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4}')
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: w\nsteps:\n  - id: a\n    type: notebook\n    config: {file: report.ipynb}\n"
    )
    done = subprocess.run(
        [venv / "bin" / "kaon", "validate", flow],
        capture_output=True,
        text=True,
        timeout=60,
        env=CLEAN_ENV,
    )
    assert done.returncode == 2, done.stderr
    assert "needs papermill, which is not installed: pip install 'kaon[notebook]'" in done.stderr

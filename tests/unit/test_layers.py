"""The layers of DESIGN.md, enforced: imports point inward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "kaon"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize("path", _files("model"), ids=lambda p: p.name)
def test_model_imports_nothing_of_kaon_but_errors(path: Path) -> None:
    kaon = {m for m in _imports(path) if m == "kaon" or m.startswith("kaon.")}
    allowed = {m for m in kaon if m == "kaon.errors" or m.startswith("kaon.model")}
    assert kaon == allowed, f"{path.name} imports {sorted(kaon - allowed)}"


FORBIDDEN_IN_ENGINE = (
    "sqlalchemy",
    "fastapi",
    "ray",
    "typer",
    "rich",
    "kaon.store.sql",
    "kaon.executors.inline",
    "kaon.executors.process",
    "kaon.api",
    "kaon.cli",
    "kaon.service",
)


@pytest.mark.parametrize("path", _files("engine"), ids=lambda p: p.name)
def test_engine_depends_on_interfaces_only(path: Path) -> None:
    bad = {
        m for m in _imports(path) for f in FORBIDDEN_IN_ENGINE if m == f or m.startswith(f + ".")
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("package", ["model", "dsl", "engine", "store", "executors", "artifacts"])
def test_inner_layers_never_import_the_outer_ring(package: str) -> None:
    for path in _files(package):
        outer = {m for m in _imports(path) if m.startswith(("kaon.api", "kaon.cli", "kaon.ui"))}
        assert not outer, f"{path} imports {sorted(outer)}"

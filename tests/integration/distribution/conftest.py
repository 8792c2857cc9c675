"""The built distributions, shared by the packaging, extras and container image tests.

The build runs on a copy of the sources (the repository stays clean) with the build backend
already installed (``--no-isolation``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from distbuild import ROOT, run


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the sdist, built from a copy of the sources."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source)
    return out


@pytest.fixture(scope="session")
def wheel(dist: Path) -> Path:
    """Kaon's wheel."""
    (found,) = dist.glob("kaon-*.whl")
    return found

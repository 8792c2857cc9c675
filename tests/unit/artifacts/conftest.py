"""Fixtures for the artifact store tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.artifacts.fsspec_store import FsspecArtifactStore


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Extract `files` artifacts under the test's own temp dir, not the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("KAON_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def local_store(tmp_path: Path) -> FsspecArtifactStore:
    """A store in a fresh local directory."""
    return FsspecArtifactStore(str(tmp_path / "store"))


@pytest.fixture
def memory_store() -> Iterator[FsspecArtifactStore]:
    """A store on fsspec's in-memory filesystem, removed after the test."""
    url = f"memory://kaon-test-{uuid.uuid4().hex}"
    store = FsspecArtifactStore(url)
    yield store
    fs = store._fs
    root = store._root
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest) -> FsspecArtifactStore:
    """Each test using this runs against a local and an in-memory store."""
    fixture: FsspecArtifactStore = request.getfixturevalue(f"{request.param}_store")
    return fixture

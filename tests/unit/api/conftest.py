"""An in-process API over a SQLite store in a temp folder, with a token per role."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.api.app import build_services, create_app
from kaon.api.deps import Services
from kaon.service.settings import Settings


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(Settings.from_env(home=str(tmp_path / "home"), executor="inline"))
    try:
        yield built
    finally:
        built.runs.close()


@pytest.fixture
def tokens(services: Services) -> dict[str, str]:
    """A secret per role: admin, owner (group ml), operator (ml), viewer, stranger (owner of
    group other)."""
    made: dict[str, str] = {}
    for name, role, groups in (
        ("admin", "admin", []),
        ("owner", "owner", ["ml"]),
        ("operator", "operator", ["ml"]),
        ("viewer", "viewer", []),
        ("stranger", "owner", ["other"]),
    ):
        made[name] = services.auth.create_token(name, role, groups)[1]
    return made


@pytest.fixture
def client(services: Services) -> Iterator[Any]:
    with warnings.catch_warnings():
        # starlette's TestClient warns about httpx at import: not ours to fix.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with TestClient(create_app(services)) as test_client:
        yield test_client

"""Shared fixtures of the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.api.app import build_services
from kaon.api.deps import Services
from kaon.service.settings import Settings


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """A server's services on a fresh home (SQLite, inline executor), closed after."""
    built = build_services(Settings.from_env(home=str(tmp_path / "home"), executor="inline"))
    try:
        yield built
    finally:
        built.runs.close()

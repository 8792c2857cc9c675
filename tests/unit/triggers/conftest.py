"""Fixtures for the trigger tests: a SQLite store with the registry, an engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from triggers_support import EngineThread

from kaon.store import open_store
from kaon.store.sql import SQLStore
from kaon.store.triggers import SQLTriggerStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'kaon.db'}")
    assert isinstance(opened, SQLStore)
    yield opened
    opened.close()


@pytest.fixture
def triggers(store: SQLStore) -> SQLTriggerStore:
    return SQLTriggerStore(store)


@pytest.fixture
def engine(store: SQLStore, tmp_path: Path) -> Iterator[EngineThread]:
    running = EngineThread(store, tmp_path)
    yield running
    running.stop()

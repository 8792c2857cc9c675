"""Store URLs and how SQLite connections are set up."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from kaon.errors import ConfigurationError
from kaon.model.status import RunStatus
from kaon.store import default_store_url, open_store
from kaon.store._engines import WRITE_OPTION, create_store_engine
from kaon.store.base import RunRecord, WriteBatch


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "http://example.com", "not a url", "sqlite+aiosqlite:///x.db", ""],
)
def test_unsupported_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError, match="store URL"):
        open_store(url)


def test_plain_postgresql_url_uses_psycopg() -> None:
    engine, in_memory = create_store_engine("postgresql://kaon:secret@127.0.0.1:1/kaon")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert not in_memory
    finally:
        engine.dispose()


def test_file_url_creates_folders_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "kaon.db"
    engine, in_memory = create_store_engine(f"sqlite:///{path}")
    try:
        assert not in_memory
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert pragma("PRAGMA busy_timeout").scalar() == 10_000
            assert pragma("PRAGMA foreign_keys").scalar() == 0
        assert path.exists()
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_memory_urls(url: str) -> None:
    engine, in_memory = create_store_engine(url)
    engine.dispose()
    assert in_memory


def test_write_transactions_begin_immediate_and_reads_take_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    engine, _ = create_store_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").all()
            other.execute("BEGIN IMMEDIATE")  # a read holds no lock
            other.execute("COMMIT")
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            conn.exec_driver_sql("SELECT 1").all()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # the writer holds the write lock already
    finally:
        other.close()
        engine.dispose()


def test_memory_store_is_shared_by_threads() -> None:
    store = open_store("sqlite://")
    try:
        done = threading.Event()

        def writer() -> None:
            store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.PENDING)]))
            done.set()

        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(10)
        assert done.is_set()
        assert store.get_run("r1").workflow == "wf"
    finally:
        store.close()


def test_default_store_url_is_an_absolute_sqlite_file(tmp_path: Path) -> None:
    url = default_store_url(tmp_path / "home")
    assert url == f"sqlite:///{tmp_path / 'home' / 'kaon.db'}"
    assert sa.make_url(url).database == str(tmp_path / "home" / "kaon.db")
    open_store(url).close()
    assert (tmp_path / "home" / "kaon.db").exists()


def test_default_store_url_of_a_relative_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_store_url(Path(".kaon")) == f"sqlite:///{tmp_path / '.kaon' / 'kaon.db'}"


def test_postgresql_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as in a core install
    with pytest.raises(ConfigurationError) as info:
        create_store_engine("postgresql+psycopg://kaon@127.0.0.1:1/kaon")
    assert (
        "a PostgreSQL store needs psycopg, which is not installed: pip install 'kaon[postgres]'"
        in (str(info.value))
    )

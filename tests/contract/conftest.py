"""Fixtures for the store contract suite: a throwaway PostgreSQL cluster.

The cluster is started once per session (``initdb`` + ``pg_ctl`` on a free loopback port,
unix sockets in its own temp dir, trust auth, durability off for speed) and each test gets a
fresh database in it. PostgreSQL refuses to run as root, so under root the cluster belongs to
the ``postgres`` system user and its commands run through ``runuser``. Missing binaries fail
the tests (they do not skip): the Makefile installs PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kaon.store import open_store
from kaon.store.base import StateStore

PG_BIN = Path(os.environ.get("KAON_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


@dataclass(frozen=True)
class PostgresCluster:
    """A running throwaway cluster."""

    port: int
    root: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() != 0:
        return list(command)
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root but `runuser` is missing: cannot start PostgreSQL as postgres")
    return [runuser, "-u", PG_USER, "--", *command]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}): {done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """Start a PostgreSQL cluster for the session; stop it and remove its files after."""
    missing = [name for name in ("initdb", "pg_ctl") if not (PG_BIN / name).exists()]
    if missing:
        pytest.fail(
            f"PostgreSQL binaries {missing} not found in {PG_BIN} (set KAON_PG_BIN or install "
            "postgresql-15): the PostgreSQL store contract tests need a real server"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("psycopg is not installed: pip install 'psycopg[binary]'")
    root = Path(tempfile.mkdtemp(prefix="kaon-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, PG_USER)
        shutil.chown(sockets, PG_USER)
    port = _free_port()
    initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER]
    _run(_as_postgres(*initdb, "-E", "UTF8", "--no-sync"), "initdb")
    options = (
        f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=100"
    )
    pg_ctl = str(PG_BIN / "pg_ctl")
    log = root / "server.log"
    _run(
        _as_postgres(pg_ctl, "-D", str(data), "-l", str(log), "-w", "-o", options, "start"),
        "pg_ctl start",
    )
    try:
        yield PostgresCluster(port, root)
    finally:
        subprocess.run(
            _as_postgres(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


_database_numbers = itertools.count(1)


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """The URL of a fresh, empty database in the session's cluster."""
    return pg_cluster.create_database(f"kaon_test_{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kaon.db'}"
    found: str = request.getfixturevalue("pg_url")
    return found


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    """A state store on each backend (see :func:`url`), closed after."""
    opened = open_store(url)
    yield opened
    opened.close()

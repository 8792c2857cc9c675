"""A throwaway PostgreSQL cluster for benchmarks, durable as in production (fsync on,
synchronous_commit on), and the database's own durable commit latency.

    with pg_cluster() as url: ...
    commit_latency_ms(url)  # mean of one-row INSERT + COMMIT round trips
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("KAON_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def pg_cluster() -> Iterator[str]:
    """Start a cluster on a free loopback port; yield the URL of database ``bench``."""
    with pg_cluster_logged() as (url, _log):
        yield url


@contextmanager
def pg_cluster_logged(*settings: str) -> Iterator[tuple[str, Path]]:
    """:func:`pg_cluster` with server ``settings`` (``name=value``); yields the URL and the
    path of the server's log."""
    root = Path(tempfile.mkdtemp(prefix="kaon-bench-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        **run,  # type: ignore[call-overload]
    )
    options = f"-h 127.0.0.1 -p {port} -k {sockets}" + "".join(f" -c {s}" for s in settings)
    pg_ctl = str(PG_BIN / "pg_ctl")
    start = [pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o", options, "start"]
    subprocess.run(_as_postgres(*start), **run)  # type: ignore[call-overload]
    try:
        import psycopg

        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/bench", root / "log"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres(*stop), capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


def commit_latency_ms(url: str, commits: int = 500) -> float:
    """Mean milliseconds of one durable one-row INSERT + COMMIT, as the store's driver sees it."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id serial, at float8)")
        conn.commit()
        started = time.perf_counter()
        for _ in range(commits):
            conn.execute("INSERT INTO bench_commit (at) VALUES (%s)", (time.time(),))
            conn.commit()
        return (time.perf_counter() - started) / commits * 1000

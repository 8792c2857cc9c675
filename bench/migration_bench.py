"""What upgrading a big store costs: a store at ``--from`` (default 0020, the revision before
this session's 0021-0025) filled with ``--runs`` runs, ``--runs * --steps`` step runs,
``--runs * --events`` events, ``--audit`` audit entries and a few tables of users' values,
then migrated to the head as ``kaon server`` migrates it on open (one call of
:func:`kaon.store.migrations.upgrade_to_head` under the migration lock), in a child process
whose peak memory is reported.

A reader meanwhile reads a run and a step run by primary key every 50 ms (on PostgreSQL
with a 30 s statement timeout; its longest wait is reported), and on PostgreSQL a sampler
records which tables the upgrade holds ACCESS EXCLUSIVE (no reads) or SHARE (no writes: a
plain CREATE INDEX) and for how long (first to last sample seen held).

    python bench/migration_bench.py --runs 50000 --steps 20 --events 40 --audit 200000 \\
        [--postgres | --url postgresql+psycopg://...] [--sqlite PATH]

prints one JSON line per store: seconds to fill, seconds to upgrade, peak RSS of the
upgrading process, and (PostgreSQL) the locks and the reader's longest wait.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


from kaon.store._engines import WRITE_OPTION, create_store_engine

FROM = "0020_runs_claim_order"

_UPGRADE = """
import sys, time
from kaon.store import migrations
from kaon.store._engines import WRITE_OPTION, create_store_engine
from kaon.store.sql import SQLStore
began = time.perf_counter()
SQLStore(sys.argv[1]).close()

"""


def _series(dialect: str, count: int) -> str:
    """A row source of ``i`` = 0 .. count - 1."""
    if dialect == "postgresql":
        return f"generate_series(0, {count - 1}) AS s(i)"
    return (
        f"(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {count - 1}) "
        "SELECT i FROM s) AS s"
    )


def fill(url: str, runs: int, steps: int, events: int, audit: int) -> float:
    """Migrate an empty database at ``url`` to ``FROM`` and fill it with SQL (no row passes
    through Python); returns the seconds it took."""
    from alembic import command
    from alembic.config import Config

    from kaon.store import migrations

    began = time.perf_counter()
    engine, _ = create_store_engine(url)
    engine = engine.execution_options(**{WRITE_OPTION: True})
    dialect = engine.dialect.name
    config = Config()
    config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))

    def j(text: str) -> str:
        return f"CAST({text} AS jsonb)" if dialect == "postgresql" else text

    def t(column: str) -> str:
        return f"CAST({column} AS TEXT)"

    def doc(before: str, column: str = "", after: str = "") -> str:
        """A JSON document: ``before`` + the text of ``column`` + ``after``."""
        if not column:
            return j(f"'{before}'")
        return j(f"'{before}' || {t(column)} || '{after}'")

    def over(count: int) -> str:
        return _series(dialect, max(count, 1))

    i, n = t("i"), steps
    child = f"i % {n} BETWEEN 1 AND 10"
    run_of = f"'run-' || {t(f'i % {runs}')}"
    empty = doc("{}")
    spec = doc('{"steps": {"zeta": 1, "a": ', "i", "}}")
    params = doc('{"zeta": 1, "a": ', "i", "}")
    item = doc('{"region": "eu", "n": ', "i", "}")
    outputs = doc('{"return": {"zeta": 1, "a": ', "i", "}}")
    event = doc('{"attempt": 1, "status": "succeeded"}')
    by_token = doc('{"token_id": "tok-', "i % 50", '"}')
    day = doc('{"day": 1}')
    signal = doc('{"b": 1, "a": 2}')
    cached = doc('{"return": 1}')
    statements = [
        f"INSERT INTO definitions (hash, name, spec, source, created_at) SELECT 'h' || {i}, "
        f"'wf' || {i}, {spec}, '', i FROM {over(100)}",
        "INSERT INTO runs (id, workflow, definition_hash, status, params, created_at, "
        "started_at, ended_at, restarts, executor, labels, lease_epoch, priority) SELECT "
        f"'run-' || {i}, 'wf' || {t('i % 100')}, 'h' || {t('i % 100')}, "
        "CASE WHEN i % 1000 = 0 THEN 'pending' ELSE 'succeeded' END, "
        f"{params}, i, i + 1, CASE WHEN i % 1000 = 0 THEN NULL ELSE i + 2 END, 0, 'process', "
        f"{empty}, 0, 0 FROM {over(runs)}",
        # Step run n of a run: 1 a foreach, 2 .. 11 its items (tasks), the others top level.
        'INSERT INTO step_runs (run_id, id, path, step_id, kind, status, parent_id, "index", '
        "item, attempts, platform_attempts, outputs, reason, created_at, started_at, ended_at, "
        "first_status, first_started_at, first_ended_at) SELECT "
        f"'run-' || {t(f'i / {n}')}, i % {n} + 1, 's' || {t(f'i % {n}')}, "
        f"'s' || {t(f'i % {n}')}, CASE WHEN i % {n} = 0 THEN 'foreach' ELSE 'task' END, "
        f"'succeeded', CASE WHEN {child} THEN 1 END, CASE WHEN {child} THEN i % {n} - 1 END, "
        f"CASE WHEN {child} THEN {item} END, 1, 0, {outputs}, "
        f"'', i, i, i + 1, 'succeeded', i, i + 1 FROM {over(runs * n)}",
        "INSERT INTO events (run_id, step_run_id, kind, at, data) SELECT "
        f"'run-' || {t(f'i / {events}')}, i % {n} + 1, 'step_succeeded', i, {event} "
        f"FROM {over(runs * events)}",
        "INSERT INTO audit (at, actor, action, target, data) SELECT i, 'ci', 'run.create', "
        f"{run_of}, CASE WHEN i % 2 = 0 THEN {by_token} ELSE {empty} END FROM {over(audit)}",
        "INSERT INTO trigger_firings (trigger_id, dedupe_key, workflow, run_id, status, params, "
        f"labels, due_at, created_at) SELECT 'cron:wf' || {t('i % 100')}, {i}, "
        f"'wf' || {t('i % 100')}, {run_of}, 'done', {day}, {empty}, i, i FROM {over(runs * 2)}",
        f"INSERT INTO signals (name, params, at, by) SELECT 'sig', {signal}, i, 'ci' "
        f"FROM {over(runs // 2)}",
        "INSERT INTO commands (run_id, kind, payload, created_at, by, done_at) SELECT "
        f"{run_of}, 'cancel', {empty}, i, 'ci', i + 1 FROM {over(runs // 2)}",
        "INSERT INTO cache_entries (key, workflow, step_id, path, run_id, step_run_id, outputs, "
        f"components, created_at) SELECT 'k' || {i}, 'wf', 's', 's', {run_of}, 1, {cached}, "
        f"{empty}, i FROM {over(runs)}",
    ]
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, FROM)
        for statement in statements:
            # psycopg's paramstyle is "format": a '%' of the SQL is written '%%'.
            conn.exec_driver_sql(statement.replace("%", "%%") if dialect != "sqlite" else statement)
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - began


def _watch_sqlite(
    url: str, stop: threading.Event, found: dict[str, Any]
) -> list[Callable[[], None]]:
    """A thread that times a reader of the SQLite file until ``stop``."""
    import sqlite3

    def read() -> None:
        worst = 0.0
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            while not stop.is_set():
                began = time.perf_counter()
                conn.execute("SELECT id, status FROM runs WHERE id = 'run-7'").fetchall()
                conn.execute(
                    "SELECT id, status FROM step_runs WHERE run_id = 'run-7' AND id = 3"
                ).fetchall()
                worst = max(worst, time.perf_counter() - began)
                time.sleep(0.05)
        finally:
            conn.close()
        found["reader_worst_wait_s"] = round(worst, 2)

    return [read]


def _watch_postgres(
    url: str, stop: threading.Event, found: dict[str, Any]
) -> list[Callable[[], None]]:
    """Threads that sample ACCESS EXCLUSIVE locks and time a reader until ``stop``."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")

    def sample() -> None:
        held: dict[str, dict[str, list[float]]] = {"exclusive_s": {}, "share_s": {}}
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                now = time.perf_counter()
                for name, mode in conn.execute(
                    "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c "
                    "ON c.oid = l.relation WHERE l.mode IN ('AccessExclusiveLock', 'ShareLock') "
                    "AND l.granted AND c.relkind = 'r' AND l.pid <> pg_backend_pid()"
                ):
                    kind = "exclusive_s" if mode == "AccessExclusiveLock" else "share_s"
                    span = held[kind].setdefault(str(name), [now, now])
                    span[1] = now
                time.sleep(0.05)
        for kind, spans in held.items():  # first to last sample seen held (blocks reads/writes)
            found[kind] = {k: round(v[1] - v[0], 1) for k, v in sorted(spans.items())}

    def read() -> None:
        worst = 0.0
        failed = 0
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '30s'")
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    conn.execute("SELECT id, status FROM runs WHERE id = 'run-7'").fetchall()
                    conn.execute(
                        "SELECT id, status FROM step_runs WHERE run_id = 'run-7' AND id = 3"
                    ).fetchall()
                except psycopg.Error:
                    failed += 1
                worst = max(worst, time.perf_counter() - began)
                time.sleep(0.05)
        found["reader_worst_wait_s"] = round(worst, 2)
        found["reader_timeouts"] = failed

    return [sample, read]


def upgrade(url: str) -> dict[str, Any]:
    """Migrate ``url`` to the head in a child process (as ``kaon server`` does on open)."""
    found: dict[str, Any] = {}
    stop = threading.Event()
    watch = _watch_postgres if url.startswith("postgresql") else _watch_sqlite
    threads = [threading.Thread(target=f) for f in watch(url, stop, found)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-c", _UPGRADE, url], check=True)
    finally:
        found["upgrade_s"] = round(time.perf_counter() - began, 1)
        stop.set()
        for thread in threads:
            thread.join()
    found["upgrade_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=20, help="step runs per run (>= 12)")
    parser.add_argument("--events", type=int, default=40, help="events per run")
    parser.add_argument("--audit", type=int, default=200_000)
    parser.add_argument("--postgres", action="store_true", help="a throwaway cluster")
    parser.add_argument("--url", help="an empty PostgreSQL database to use instead")
    parser.add_argument("--sqlite", help="the SQLite file (default: a temporary one)")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    sizes = (args.runs, args.steps, args.events, args.audit)

    def measure(url: str, store: str) -> None:
        filled = fill(url, *sizes)
        shown = {"store": store, "runs": args.runs, "step_runs": args.runs * args.steps}
        shown |= {"events": args.runs * args.events, "audit": args.audit}
        shown |= {"fill_s": round(filled, 1), **upgrade(url)}
        print(json.dumps(shown), flush=True)

    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            path = args.sqlite or str(Path(folder) / "big.db")
            measure(f"sqlite:///{path}", "sqlite")
    if args.url:
        measure(args.url, "postgresql")
    elif args.postgres:
        from pg_cluster import pg_cluster

        with pg_cluster() as url:
            measure(url, "postgresql")


if __name__ == "__main__":
    main()

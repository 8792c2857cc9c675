"""Upgrading a PostgreSQL store while servers keep reading it: each revision commits on its
own, index builds are concurrent, a backfill commits in batches (see
:mod:`kaon.store.migrations.online`)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from kaon.errors import StoreError
from kaon.store import migrations
from kaon.store._engines import create_store_engine
from kaon.store.migrations import online
from kaon.store.sql import SQLStore

pytestmark = pytest.mark.integration

BEFORE = "0020_runs_claim_order"


def _at(url: str, revision: str, *statements: str) -> None:
    """Migrate an empty database to ``revision`` and run ``statements`` in it."""
    engine, _ = create_store_engine(url)
    config = Config()
    config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


STEPS = (
    "INSERT INTO runs (id, workflow, definition_hash, status, params, created_at, restarts, "
    "executor, labels) VALUES ('r1', 'wf', 'h', 'succeeded', '{\"b\": 1, \"a\": 2}', 1, 0, "
    "'process', '{}')",
    "INSERT INTO step_runs (run_id, id, path, step_id, kind, status, attempts, "
    "platform_attempts, reason, created_at, outputs) VALUES ('r1', 1, 's', 's', 'task', "
    "'succeeded', 1, 0, '', 1, '{\"return\": 1}')",
)


def test_a_revision_locks_no_table_an_earlier_one_changed(
    pg_url: str,
) -> None:
    """Revision 0021 rewrites ``runs`` (ACCESS EXCLUSIVE); 0025 builds an index of
    ``step_runs``. When the upgrade ran in one transaction, 0021's locks were held until the
    end, and every index build (SHARE, blocking writes) too: a server could read no run for
    the whole upgrade. Now the index is built concurrently, by a session that holds no lock
    on ``runs`` any more."""
    _at(pg_url, BEFORE, *STEPS)
    held: dict[str, set[tuple[str, str]]] = {}

    def locks_at(statement: str, conn: Any) -> None:
        if "ix_step_runs_metrics" in statement and "CREATE INDEX" in statement:
            pid = conn.connection.driver_connection.info.backend_pid
            with psycopg.connect(_dsn(pg_url), autocommit=True) as other:
                rows = other.execute(
                    "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c "
                    "ON c.oid = l.relation WHERE l.pid = %s AND c.relkind = 'r'",
                    (pid,),
                ).fetchall()
            held[statement] = {(str(name), str(mode)) for name, mode in rows}

    sa.event.listen(sa.Engine, "before_cursor_execute", _calling(locks_at))
    try:
        SQLStore(pg_url).close()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", _calling(locks_at))
    assert held, "the upgrade built no ix_step_runs_metrics"
    for statement, locks in held.items():
        assert "CONCURRENTLY" in statement
        assert not {name for name, _ in locks} & {"runs", "definitions"}, locks
    with psycopg.connect(_dsn(pg_url)) as conn:
        types = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM "
                "information_schema.columns WHERE column_name IN ('params', 'outputs') "
                "AND table_name IN ('runs', 'step_runs')"
            ).fetchall()
        )
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()
        names = {
            str(n)
            for (n,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'step_runs'"
            ).fetchall()
        }
    assert types == {"runs.params": "json", "step_runs.outputs": "json"}
    assert invalid == (0,)
    assert {"ix_step_runs_metrics", "ix_step_runs_parent_index"} <= names
    assert not [n for n in names if n.endswith("__new")]


_listeners: dict[Any, Any] = {}


def _calling(check: Any) -> Any:
    """One listener per ``check`` (so that it can be removed)."""
    if check not in _listeners:

        def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            check(statement, conn)

        _listeners[check] = listener
    return _listeners[check]


def test_an_interrupted_concurrent_build_is_built_again(pg_url: str) -> None:
    """A concurrent build that failed (a crash, a cancel) leaves an INVALID index; the next
    upgrade drops it and builds it again, rather than skipping it as existing."""
    _at(pg_url, "0024_top_level_index", *STEPS)
    with psycopg.connect(_dsn(pg_url), autocommit=True) as conn:
        conn.execute(
            "CREATE INDEX ix_step_runs_metrics__new ON step_runs (status, first_ended_at) "
            "WHERE kind = 'task'"
        )
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
            "'ix_step_runs_metrics__new'::regclass"
        )
    SQLStore(pg_url).close()
    with psycopg.connect(_dsn(pg_url)) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indexrelid WHERE c.relname LIKE 'ix_step_runs_metrics%'"
        ).fetchall()
        revision = conn.execute("SELECT version_num FROM kaon_schema_version").fetchall()
    assert rows == [("ix_step_runs_metrics", True)]
    assert revision == [(migrations.head_revision(),)]


def test_the_audit_backfill_commits_in_batches(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revision 0023 fills ``audit.token_id`` from each entry's JSON. One UPDATE of the
    whole table held a row lock on every entry it filled (a server writing the trail waited)
    and wrote the whole table's WAL in one transaction; now ranges of ids commit one by one
    (and a rerun fills only what is left)."""
    entry = (
        "INSERT INTO audit (at, actor, action, target, data) VALUES "
        "({0}, 'ci', 'run.create', 'r', '{{\"token_id\": \"t{1}\"}}')"
    )
    _at(pg_url, "0022_firings_expiry", *(entry.format(n, n % 3) for n in range(25)))
    monkeypatch.setattr(online, "BATCH", 10, raising=False)
    filled_before: list[int] = []

    def count_filled(statement: str, conn: Any) -> None:
        if statement.startswith("UPDATE audit SET token_id"):
            with psycopg.connect(_dsn(pg_url), autocommit=True) as other:
                try:  # -1: the column is not committed yet (the revision's transaction)
                    row = other.execute("SELECT count(token_id) FROM audit").fetchone()
                except psycopg.errors.UndefinedColumn:
                    row = (-1,)
            filled_before.append(int(row[0]) if row else -1)

    sa.event.listen(sa.Engine, "before_cursor_execute", _calling(count_filled))
    try:
        SQLStore(pg_url).close()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", _calling(count_filled))
    assert filled_before == [0, 10, 20]
    with psycopg.connect(_dsn(pg_url)) as conn:
        rows = conn.execute("SELECT token_id, count(*) FROM audit GROUP BY 1 ORDER BY 1")
        assert rows.fetchall() == [("t0", 9), ("t1", 8), ("t2", 8)]


def test_a_downgrade_to_jsonb_names_the_value_jsonb_cannot_hold(pg_url: str) -> None:
    """``json`` keeps a string's NUL (``\\u0000``), ``jsonb`` refuses it: going back below
    0021 failed on the ALTER of whichever table held one, with PostgreSQL's "unsupported
    Unicode escape sequence". It is now refused first, naming the table, column and row;
    an escaped backslash before ``u0000`` is no NUL and does not stop it."""
    _at(
        pg_url,
        "head",
        *STEPS,
        "INSERT INTO signals (name, params, at, by) VALUES ('s', '{\"k\": \"a\\u0000\"}', 1, 'x')",
        "UPDATE runs SET params = '{\"path\": \"c:\\\\u0000\"}' WHERE id = 'r1'",
    )
    engine, _ = create_store_engine(pg_url)
    config = Config()
    config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))
    try:
        with pytest.raises(StoreError) as caught, engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, BEFORE)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM signals")
            config.attributes["connection"] = conn
            command.downgrade(config, BEFORE)
            params = conn.exec_driver_sql("SELECT params::text FROM runs").scalar_one()
    finally:
        engine.dispose()
    message = str(caught.value)
    assert "signals.params of the row id=1 holds the JSON escape \\u0000" in message
    assert "below revision 0021_user_values_as_json" in message
    assert params == '{"path": "c:\\\\u0000"}'


def test_a_table_rewrite_waiting_for_its_lock_does_not_stop_the_readers(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0021's ALTER of ``runs`` needs ACCESS EXCLUSIVE. Behind a long transaction reading
    ``runs`` (a report, a pg_dump) it waited without a bound, and every read of ``runs``
    queued behind it: a server could read no run until that transaction ended. Now the
    ALTER waits LOCK_TIMEOUT_MS at a time and lets the queued reads through between tries."""
    monkeypatch.setattr(online, "LOCK_TIMEOUT_MS", 200, raising=False)
    monkeypatch.setattr(online, "LOCK_PAUSE_S", 0.2, raising=False)
    _at(pg_url, BEFORE, *STEPS)
    holder = psycopg.connect(_dsn(pg_url))
    holder.execute("SELECT id FROM runs").fetchall()  # ACCESS SHARE until it commits
    failed: list[BaseException] = []

    def upgrade() -> None:
        try:
            SQLStore(pg_url).close()
        except BaseException as error:
            failed.append(error)

    migrating = threading.Thread(target=upgrade)
    waits: list[float] = []
    errors: list[str] = []
    try:
        migrating.start()
        with psycopg.connect(_dsn(pg_url), autocommit=True) as reader:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                blocked = reader.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE runs %%'"
                ).fetchall()
                if blocked:
                    break
                time.sleep(0.02)
            reader.execute("SET statement_timeout = 1500")
            for _ in range(8):
                began = time.monotonic()
                try:
                    reader.execute("SELECT count(*) FROM runs").fetchall()
                except psycopg.errors.QueryCanceled as error:
                    errors.append(str(error))
                waits.append(time.monotonic() - began)
                time.sleep(0.1)
    finally:
        holder.close()
        migrating.join(60)
    assert not failed, failed
    assert not errors, errors
    assert max(waits) < 1.0, waits
    with psycopg.connect(_dsn(pg_url)) as conn:
        revision = conn.execute("SELECT version_num FROM kaon_schema_version").fetchall()
    assert revision == [(migrations.head_revision(),)]

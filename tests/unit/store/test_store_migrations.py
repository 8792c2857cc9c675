"""Schema migrations: the migrated database matches the schema module, and reruns are safe."""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from kaon.errors import SchemaVersionError
from kaon.store import _ddl, migrations
from kaon.store._engines import WRITE_OPTION, create_store_engine
from kaon.store.schema import VERSION_TABLE, metadata


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine set up as the store sets it up; its transactions write (BEGIN IMMEDIATE)."""
    engine, _ = create_store_engine(f"sqlite:///{tmp_path / 'm.db'}")
    yield engine.execution_options(**{WRITE_OPTION: True})
    engine.dispose()


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_revisions_form_one_line_with_one_head() -> None:
    script = migrations.script_directory()
    assert script.get_heads() == [migrations.head_revision()]
    assert migrations.head_revision() in migrations.known_revisions()
    bases = script.get_bases()
    assert len(bases) == 1


def test_shipped_files_are_where_package_data_expects_them() -> None:
    folder = migrations.MIGRATIONS_DIR
    assert (folder / "env.py").is_file()
    assert (folder / "script.py.mako").is_file()
    assert (folder / "alembic.ini").is_file()
    assert sorted(p.name for p in (folder / "versions").glob("*.py"))


def test_upgrade_creates_every_table_and_stamps_head(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        migrations.upgrade_to_head(conn, "test db")
    assert _tables(engine) == set(metadata.tables) | {VERSION_TABLE}
    with engine.connect() as conn:
        assert migrations.current_revisions(conn) == (migrations.head_revision(),)


def _run_every_revision(engine: sa.Engine) -> None:
    """Alembic's upgrade from base to head (what an old database goes through)."""
    config = Config()
    config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _dump(engine: sa.Engine) -> dict[str, object]:
    """Every table's columns, indexes, unique constraints, primary key and rows."""
    inspector = sa.inspect(engine)
    dump: dict[str, object] = {}
    with engine.connect() as conn:
        for name in sorted(inspector.get_table_names()):
            columns = [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(name)
            ]
            indexes = sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            )
            uniques = sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
            )
            key = inspector.get_pk_constraint(name)["constrained_columns"]
            rows = sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {name}")).all()))
            dump[name] = (columns, indexes, uniques, key, rows)
    return dump


def test_revision_files_give_alembics_head_without_alembic() -> None:
    assert migrations._revision_graph() is not None
    assert migrations.head_revision() == migrations.script_directory().get_current_head()
    expected = {s.revision for s in migrations.script_directory().walk_revisions()}
    assert migrations.known_revisions() == expected


def test_a_new_database_is_created_as_every_revision_would_leave_it(tmp_path: Path) -> None:
    """A new database is made from the schema module and stamped; it must equal one migrated
    revision by revision (tables, columns, indexes, keys and any rows a migration inserts)."""
    created, _ = create_store_engine(f"sqlite:///{tmp_path / 'created.db'}")
    migrated, _ = create_store_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    try:
        with created.begin() as conn:
            migrations.upgrade_to_head(conn, "test db")
        _run_every_revision(migrated)
        assert _dump(created) == _dump(migrated)
    finally:
        created.dispose()
        migrated.dispose()


def test_the_shipped_sqlite_ddl_is_the_schema_modules() -> None:
    """A new SQLite store runs ``schema_sqlite.sql`` as it is: it must be what SQLAlchemy
    renders from the schema module now (after a schema change: ``python -m kaon.store._ddl``)."""
    assert _ddl.read_script() == _ddl.render_sqlite(), "run: python -m kaon.store._ddl"
    statements = _ddl.read_script()
    assert sum(s.startswith("CREATE TABLE ") for s in statements) == len(metadata.tables) + 1


def test_a_new_database_compiles_no_ddl(tmp_path: Path) -> None:
    """Creating a new SQLite store runs the pre-rendered statements: SQLAlchemy's DDL
    compiler is never asked for a CREATE."""
    compiled: list[str] = []
    engine, _ = create_store_engine(f"sqlite:///{tmp_path / 'n.db'}")
    sa.event.listen(engine, "before_execute", lambda conn, clause, *a: compiled.append(clause))
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            migrations.upgrade_to_head(conn, "test db")
        assert not [c for c in compiled if isinstance(c, sa.schema.ExecutableDDLElement)]
        assert _tables(engine) == set(metadata.tables) | {VERSION_TABLE}
    finally:
        engine.dispose()


def test_a_database_with_an_empty_version_table_is_created_and_stamped(tmp_path: Path) -> None:
    """A file holding only Kaon's version table, with no revision in it, is new: created."""
    path = tmp_path / "v.db"
    with sqlite3.connect(path) as raw:
        raw.execute(_ddl.read_script()[-1])  # the version table's CREATE, the script's last
    assert _ddl.read_script()[-1].startswith(f"CREATE TABLE {VERSION_TABLE} ")
    engine, _ = create_store_engine(f"sqlite:///{path}")
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            migrations.upgrade_to_head(conn, "test db")
        with engine.connect() as conn:
            assert migrations.current_revisions(conn) == (migrations.head_revision(),)
        assert _tables(engine) == set(metadata.tables) | {VERSION_TABLE}
    finally:
        engine.dispose()


def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    code = (
        "import sys; from kaon.store import open_store; "
        f"open_store({url!r}).close(); open_store({url!r}).close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_migrated_database_matches_the_schema_module(engine: sa.Engine) -> None:
    _run_every_revision(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_upgrade_again_is_a_no_op(engine: sa.Engine) -> None:
    for _ in range(3):
        with engine.begin() as conn:
            migrations.upgrade_to_head(conn, "test db")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    assert rows == [(migrations.head_revision(),)]


def test_upgrade_rolls_back_with_its_transaction(engine: sa.Engine) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), engine.begin() as conn:
        migrations.upgrade_to_head(conn, "test db")
        raise Abort
    assert _tables(engine) == set()


def test_unknown_revision_is_refused_and_left_alone(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        migrations.upgrade_to_head(conn, "test db")
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00d'"))
    with pytest.raises(SchemaVersionError) as caught, engine.begin() as conn:
        migrations.upgrade_to_head(conn, "db at /x")
    message = str(caught.value)
    assert "db at /x has schema revision f00d" in message
    assert f"knows up to {migrations.head_revision()}" in message
    assert message.endswith("upgrade Kaon")
    with engine.connect() as conn:
        assert migrations.current_revisions(conn) == ("f00d",)


def test_downgrade_to_base_and_back(engine: sa.Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        command.downgrade(config, "base")
    assert _tables(engine) == {VERSION_TABLE}
    with engine.begin() as conn:
        migrations.upgrade_to_head(conn, "test db")
    assert _tables(engine) == set(metadata.tables) | {VERSION_TABLE}


def test_alembic_command_line_setup_works(tmp_path: Path) -> None:
    """Developers run ``alembic -c .../alembic.ini -x url=... upgrade head``."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = Config(
        str(migrations.MIGRATIONS_DIR / "alembic.ini"),
        cmd_opts=argparse.Namespace(x=[f"url={url}"]),
    )
    command.upgrade(config, "head")
    engine = sa.create_engine(url)
    try:
        assert _tables(engine) == set(metadata.tables) | {VERSION_TABLE}
    finally:
        engine.dispose()


def test_first_attempts_move_into_their_step_runs_and_back(engine: sa.Engine) -> None:
    """Revision 0012 folds each step run's first attempt into its row (retries stay rows of
    ``attempts``); its downgrade moves them back."""
    config = Config()
    config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))
    step = (
        "INSERT INTO step_runs (run_id, id, path, step_id, kind, status, attempts, "
        "platform_attempts, reason, created_at) VALUES ('r', {0}, 's{0}', 's{0}', 'task', "
        "'succeeded', 1, 0, '', 0)"
    )
    attempt = (
        "INSERT INTO attempts (run_id, step_run_id, number, status, started_at, ended_at, "
        "worker, error) VALUES ('r', {0}, {1}, '{2}', {1}, {1}.5, 'w{1}', {3})"
    )
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0011_step_events_index")
        for statement in (
            step.format(1),
            step.format(2),
            attempt.format(1, 1, "failed", "'{\"m\": 1}'"),
            attempt.format(1, 2, "succeeded", "NULL"),
        ):
            conn.execute(sa.text(statement))
        command.upgrade(config, "head")
        folded = conn.execute(
            sa.text(
                "SELECT id, first_status, first_started_at, first_ended_at, first_worker, "
                "first_error FROM step_runs ORDER BY id"
            )
        ).all()
        retries = conn.execute(sa.text("SELECT step_run_id, number FROM attempts")).all()
        command.downgrade(config, "0011_step_events_index")
        back = conn.execute(
            sa.text("SELECT step_run_id, number, status, worker FROM attempts ORDER BY number")
        ).all()
    assert folded == [(1, "failed", 1.0, 1.5, "w1", '{"m": 1}'), (2, None, None, None, None, None)]
    assert retries == [(1, 2)]
    assert back == [(1, 1, "failed", "w1"), (1, 2, "succeeded", "w2")]


def test_artifact_uses_are_filled_from_the_inputs_artifacts_name(engine: sa.Engine) -> None:
    """Revision 0014 records, for every blob an existing artifact names as an input, the
    attempt that read it, with every blob that attempt stored (one use per blob read)."""
    config = Config()
    config.set_main_option("script_location", str(migrations.MIGRATIONS_DIR))
    artifact = (
        "INSERT INTO artifacts (hash, run_id, step_run_id, path, output, serializer, size, "
        "attempt, type_name, inputs, created_at) VALUES ('{0}', 'r', {1}, '{2}', '{3}', 'pickle', "
        "1, {4}, 't', '{5}', {1})"
    )
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0013_bundles")
        for values in (
            ("data", 1, "load", "return", 1, "[]"),
            ("model", 2, "fit", "model", 1, '["data"]'),
            ("plot", 2, "fit", "plot", 1, '["data"]'),
            ("model2", 2, "fit", "model", 2, '["data", "extra"]'),
            ("report", 3, "report", "return", 1, '["model"]'),
        ):
            conn.execute(sa.text(artifact.format(*values)))
        command.upgrade(config, "head")
        uses = conn.execute(
            sa.text(
                "SELECT hash, step_run_id, path, attempt, outputs FROM artifact_uses ORDER BY id"
            )
        ).all()
        command.downgrade(config, "0013_bundles")
        left = set(sa.inspect(conn).get_table_names())
    assert uses == [
        ("data", 2, "fit", 1, '[["model", "model"], ["plot", "plot"]]'),
        ("data", 2, "fit", 2, '[["model", "model2"]]'),
        ("extra", 2, "fit", 2, '[["model", "model2"]]'),
        ("model", 3, "report", 1, '[["return", "report"]]'),
    ]
    assert "artifact_uses" not in left

"""The SQLite path without SQLAlchemy (kaon.store._lite): the shipped statements are what
SQLAlchemy compiles from kaon.store._queries now, updates rendered from a column list match
SQLAlchemy's, lists and LIKE patterns bind as SQLAlchemy would, and a store opened this way
is the same store."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaon.errors import ForeignDatabaseError, StoreError
from kaon.model.status import RunStatus, StepStatus
from kaon.store import _ddl, _lite
from kaon.store._queries import catalogue_keys, compile_sqlite, render_catalogue, table_columns
from kaon.store._rows import INSERTED, KEYS
from kaon.store.base import RunRecord, StepRunRecord, WriteBatch
from kaon.store.reads import SQLRunReads, StepQuery
from kaon.store.sql import SQLStore


def test_the_shipped_statements_are_the_queries_modules() -> None:
    """``_sqlite_statements.py`` must be what SQLAlchemy compiles now (after changing a
    statement or the schema: ``python -m kaon.store._ddl``)."""
    assert _ddl.STATEMENTS.read_text(encoding="utf-8") == render_catalogue(), (
        "run: python -m kaon.store._ddl"
    )
    assert set(_lite.shipped_catalogue()) == set(catalogue_keys())


@given(data=st.data())
def test_an_update_rendered_from_its_columns_is_sqlalchemys(data: st.DataObject) -> None:
    table = data.draw(st.sampled_from(sorted(KEYS)))
    keys = KEYS[table]
    others = [c for c in table_columns()[table] if c not in keys]
    columns = sorted(data.draw(st.sets(st.sampled_from(others), min_size=1)))
    rendered = _lite.update_statement(table, keys, columns)
    compiled = compile_sqlite(("update", table, keys, *columns))
    assert rendered.sql == compiled.sql
    assert sorted(rendered.json_params) == sorted(compiled.json_params)


@given(data=st.data())
def test_an_insert_rendered_from_its_columns_is_sqlalchemys(data: st.DataObject) -> None:
    table = data.draw(st.sampled_from(sorted(INSERTED)))
    known = table_columns()[table]
    optional = [c for c in INSERTED[table] if known[c][2]]  # may be left out to mean NULL
    left_out = data.draw(st.sets(st.sampled_from(optional))) if optional else set()
    columns = [c for c in INSERTED[table] if c not in left_out]
    rendered = _lite.insert_statement(table, columns)
    ordered = [c for c in table_columns()[table] if c in columns]
    compiled = compile_sqlite(("insert", "sqlite", table, *ordered))
    assert rendered.sql == compiled.sql
    assert sorted(rendered.json_params) == sorted(compiled.json_params)


def test_an_update_of_an_unknown_column_is_refused() -> None:
    with pytest.raises(KeyError, match="nope"):
        _lite.update_statement("runs", ("id",), ["status", "nope"])


@pytest.mark.parametrize(
    ("values", "inside", "outside"),
    [(["a", "c"], ["a", "c"], ["b"]), ([], [], ["a", "b", "c"])],
)
def test_a_list_binds_as_an_in_and_an_empty_one_as_an_empty_set(
    values: list[str], inside: list[str], outside: list[str]
) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("a",), ("b",), ("c",)])
    for negate, expected in (("", inside), ("NOT ", outside)):
        statement = _lite.Statement(
            f"SELECT v FROM t WHERE v {negate}IN (__[POSTCOMPILE_vs]) ORDER BY v",
            expanding=("vs",),
        )
        sql, params = statement.bound({"vs": values})
        assert [v for (v,) in db.execute(sql, params)] == expected


# What a store's text can hold: no surrogates (not UTF-8); no NUL (LIKE ends a pattern there).
_NO_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@given(text=st.text(_NO_NUL, min_size=1, max_size=8), value=st.text(_NO_NUL, max_size=16))
def test_a_like_pattern_matches_exactly_the_values_that_contain_the_text(
    text: str, value: str
) -> None:
    db = sqlite3.connect(":memory:")
    pattern = _lite.like_pattern(text)
    (found,) = db.execute(
        "SELECT lower(:v) LIKE lower(:p) ESCAPE '/'", {"v": value, "p": pattern}
    ).fetchone()
    # SQLite's lower() and LIKE fold ASCII letters only
    assert bool(found) == (_ascii_lower(text) in _ascii_lower(value))


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def test_a_statement_the_catalogue_lacks_is_compiled_on_first_use(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        batch = WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)])
        batch.insert_step_run(StepRunRecord("r1", 1, "a", "a", "task", StepStatus.FAILED))
        batch.insert_step_run(StepRunRecord("r1", 2, "b", "b", "task", StepStatus.SUCCEEDED))
        store.write(batch)
        query = StepQuery(text="A", sort="path", descending=True)
        key = ("step_page", True, ("text",), "path", True, False)
        assert key not in _lite.shipped_catalogue()
        page = SQLRunReads(store).step_page("r1", query)
        assert [row.path for row in page.rows] == ["a"] and page.total == 1
    finally:
        store.close()


def test_a_store_file_opens_and_runs_without_sqlalchemy(tmp_path: Path) -> None:
    """A new store file is created from the rendered DDL, and written and read, with no
    SQLAlchemy module imported (in a fresh interpreter)."""
    code = (
        "import sys\n"
        "from kaon.store import open_store\n"
        "from kaon.store.base import RunRecord, WriteBatch\n"
        "from kaon.model.status import RunStatus\n"
        f"store = open_store('sqlite:///{tmp_path / 'k.db'}')\n"
        "store.write(WriteBatch(runs=[RunRecord('r1', 'wf', 'h', RunStatus.PENDING)]))\n"
        "assert store.get_run('r1').status is RunStatus.PENDING\n"
        "assert store.acquire_lease('r1', 'me', 30.0) == 1\n"
        "store.close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy')))\n"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_forked_child_opens_its_own_connections(tmp_path: Path) -> None:
    """A child forked while the parent holds idle connections neither uses nor closes them
    (closing SQLite's "last" connection of a WAL file in the child could delete the WAL
    under the parent); it reads through connections of its own."""
    import os

    store = SQLStore(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
        assert store._lite is not None
        inherited = list(store._lite._idle)
        assert inherited
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            ok = not store._lite._idle and store.get_run("r1").id == "r1"
            ok = ok and all(c not in store._lite._idle for c in inherited)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.get_run("r1").status is RunStatus.RUNNING  # the parent's are fine
        assert (tmp_path / "k.db-wal").exists()
    finally:
        store.close()


def test_a_write_transaction_commits_pools_its_connection_and_discards_a_failed_one(
    tmp_path: Path,
) -> None:
    """``LiteDatabase.transaction``: the body's writes are committed and the connection goes
    back to the pool; a body that raises is rolled back and its connection closed; a
    ``BEGIN`` that fails (the file locked by another writer) leaves nothing held."""
    path = tmp_path / "k.db"
    store = SQLStore(f"sqlite:///{path}")
    raw = sqlite3.connect(path, timeout=0)
    try:
        raw.execute("CREATE TABLE scratch (x)")
        lite = store._lite
        assert lite is not None
        lite._idle.clear()
        with lite.transaction() as cursor:
            cursor.execute("INSERT INTO scratch VALUES (1)")
        assert len(lite._idle) == 1 and not lite._idle[0].in_transaction
        pooled = lite._idle[0]
        with pytest.raises(RuntimeError, match="body"), lite.transaction() as cursor:
            cursor.execute("INSERT INTO scratch VALUES (2)")
            raise RuntimeError("body")
        assert lite._idle == []  # the connection that failed is closed, not pooled
        with pytest.raises(sqlite3.ProgrammingError):
            pooled.execute("SELECT 1")
        assert raw.execute("SELECT x FROM scratch").fetchall() == [(1,)]
        waiting = lite.connect()
        waiting.execute("PRAGMA busy_timeout = 50")
        lite._idle[:] = [waiting]
        raw.execute("BEGIN IMMEDIATE")  # another writer holds the file
        with pytest.raises(sqlite3.OperationalError, match="locked"), lite.transaction():
            pass  # pragma: no cover - BEGIN IMMEDIATE fails first
        assert lite._idle == []
        raw.rollback()
        with lite.transaction() as cursor:  # the file is writable again
            cursor.execute("INSERT INTO scratch VALUES (3)")
        assert raw.execute("SELECT x FROM scratch ORDER BY x").fetchall() == [(1,), (3,)]
    finally:
        raw.close()
        store.close()


def test_a_new_store_is_private_to_its_user(tmp_path: Path) -> None:
    """Its file, and the ``-wal``/``-shm`` files SQLite derives from it, are ``0600`` and a
    folder created for it ``0700``, whatever the umask; an existing file keeps its mode."""
    import os
    import stat

    from kaon.store import open_store

    old = os.umask(0o022)
    try:
        path = tmp_path / "home" / "kaon.db"
        store = open_store(f"sqlite:///{path}")
        store.write(WriteBatch())
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode)
            for p in path.parent.iterdir()
            if p.name.startswith("kaon.db")
        }
        store.close()
        assert {"kaon.db", "kaon.db-wal", "kaon.db-shm"} <= set(modes), modes
        assert all(mode == 0o600 for mode in modes.values()), modes
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        shared = tmp_path / "shared.db"
        shared.touch(mode=0o640)
        os.chmod(shared, 0o640)
        open_store(f"sqlite:///{shared}").close()
        assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_damaged_store_is_said_to_be_damaged_not_someone_elses(tmp_path: Path) -> None:
    """A Kaon store cut short (a copy that stopped half way, a disk fault) used to be
    refused as "not a Kaon store" (exit 2: point --db at Kaon's own database), sending the
    operator to look for another file. It is Kaon's, and damaged: a StoreError says so and
    how to get back (exit 3, as a corrupt blob is); a file that is no SQLite database at
    all is still not a Kaon store."""
    path = tmp_path / "kaon.db"
    store = SQLStore(f"sqlite:///{path}")
    runs = [RunRecord(f"r{i}", "wf", "h", RunStatus.SUCCEEDED) for i in range(50)]
    store.write(WriteBatch(runs=runs))
    store.close()
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 3)
    with pytest.raises(StoreError) as caught:
        SQLStore(f"sqlite:///{path}", create=False)
    assert not isinstance(caught.value, ForeignDatabaseError)
    message = str(caught.value)
    assert f"the state store {path} is damaged: database disk image is malformed" in message
    assert "restore it from a backup" in message
    other = tmp_path / "notes.txt"
    other.write_text("shopping list\n" * 200)
    with pytest.raises(ForeignDatabaseError, match=r"notes\.txt is not a Kaon store"):
        SQLStore(f"sqlite:///{other}", create=False)

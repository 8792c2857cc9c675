"""The write-ahead log of a store file is checkpointed off the writers' path
(kaon.store._lite.Checkpointer): commits never copy the log into the database file, a thread
does while writes go on, the log is restarted before it grows without bound, a reader holding
an old snapshot delays a restart only briefly, and closing a store checkpoints what it left
in a long log."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from kaon.model.status import RunStatus, StepStatus
from kaon.store import _lite
from kaon.store.base import RunRecord, StepRunRecord, WriteBatch
from kaon.store.sql import SQLStore

FRAME = 4096 + 24  # a WAL frame at the store's page size


def _frames(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size // FRAME if wal.exists() else 0


def _write_steps(store: SQLStore, first: int, count: int) -> None:
    """A chain step's writes, ``count`` times: a step run inserted, then updated."""
    for number in range(first, first + count):
        batch = WriteBatch()
        batch.insert_step_run(
            StepRunRecord("r1", number, f"s{number}", "s", "task", StepStatus.RUNNING)
        )
        store.write(batch)
        done = WriteBatch()
        done.update_step_run("r1", number, status=StepStatus.SUCCEEDED, outputs={"n": number})
        store.write(done)


def _store(path: Path) -> SQLStore:
    store = SQLStore(f"sqlite:///{path}")
    store.write(WriteBatch(runs=[RunRecord("r1", "wf", "h", RunStatus.RUNNING)]))
    return store


def test_commits_leave_the_log_to_the_checkpointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SQLite's threshold (1,000 pages) a commit would copy the log into the database
    file and wait for two fsyncs; here no commit does, and a short writer starts no thread."""
    monkeypatch.setattr(_lite, "CHECKPOINT_EVERY_S", 3600.0)  # the thread never starts
    path = tmp_path / "k.db"
    store = _store(path)
    try:
        size = path.stat().st_size
        _write_steps(store, 1, 400)
        assert _frames(path) > 1000  # SQLite's automatic checkpoint would have run
        assert path.stat().st_size == size  # nothing copied into the database file
        assert store._lite is not None and store._lite.checkpointer.passes == 0
        assert store._lite.checkpointer._thread is None
        assert len(store.step_runs("r1")) == 400
    finally:
        store.close()


def test_the_checkpointer_copies_and_restarts_the_log_while_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lite, "CHECKPOINT_EVERY_S", 0.01)
    monkeypatch.setattr(_lite, "RESTART_FRAMES", 200)
    path = tmp_path / "k.db"
    store = _store(path)
    try:
        assert store._lite is not None
        checkpointer = store._lite.checkpointer
        before = path.stat().st_size
        written = 0
        deadline = time.monotonic() + 20
        while (checkpointer.restarts < 3 or written < 3000) and time.monotonic() < deadline:
            _write_steps(store, written + 1, 50)
            written += 50
        assert checkpointer.passes >= 3 and checkpointer.restarts >= 3
        assert path.stat().st_size > before  # pages were copied into the database file
        # Without restarts the log would hold every frame written: at least two per commit,
        # two commits per step. Its file (as long as the log ever was: a restart reuses it
        # from its start) stays a part of that, even when a loaded machine delays the thread.
        assert _frames(path) < 2 * written
        assert len(store.step_runs("r1")) == written
        assert all(s.status is StepStatus.SUCCEEDED for s in store.step_runs("r1"))
    finally:
        store.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT count(*) FROM step_runs").fetchone() == (written,)
    finally:
        check.close()


def test_a_reader_on_an_old_snapshot_delays_a_restart_only_briefly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart waits for readers to leave the log while it holds the writers' turn: a
    reader that keeps an old snapshot makes it give up after RESTART_BUSY_MS, not stall
    the writers for the busy timeout (10 s)."""
    monkeypatch.setattr(_lite, "CHECKPOINT_EVERY_S", 3600.0)
    monkeypatch.setattr(_lite, "RESTART_FRAMES", 1)
    path = tmp_path / "k.db"
    store = _store(path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        _write_steps(store, 1, 5)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM step_runs").fetchone()  # holds its snapshot
        _write_steps(store, 6, 5)
        assert store._lite is not None
        connection = store._lite.connect()
        try:
            began = time.monotonic()
            store._lite.checkpointer.checkpoint(connection)
            assert time.monotonic() - began < 2.0
            assert store._lite.checkpointer.restarts == 0  # the reader held it back
        finally:
            connection.close()
        _write_steps(store, 11, 5)  # writers go on
        assert len(store.step_runs("r1")) == 15
    finally:
        reader.execute("COMMIT")
        reader.close()
        store.close()


def test_closing_a_store_checkpoints_the_long_log_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process keeps the file open (a server), closing is not the last
    connection's checkpoint: the store checkpoints the log it grew past SQLite's threshold."""
    monkeypatch.setattr(_lite, "CHECKPOINT_EVERY_S", 3600.0)
    path = tmp_path / "k.db"
    store = _store(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("SELECT count(*) FROM runs").fetchone()
        _write_steps(store, 1, 400)
        assert _frames(path) > 1000
        assert store._lite is not None
        checkpointer = store._lite.checkpointer
        store.close()
        assert checkpointer.passes == 1
        busy, log, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and log > 1000 and copied == log  # nothing was left to copy
    finally:
        other.close()


def test_writes_through_sqlalchemy_leave_the_log_to_the_checkpointer_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry, triggers and claims write through the store's SQLAlchemy engine: its
    connections leave the log to the checkpointer too, and their commits count as writes."""
    import sqlalchemy as sa

    monkeypatch.setattr(_lite, "CHECKPOINT_EVERY_S", 3600.0)
    path = tmp_path / "k.db"
    store = _store(path)
    try:
        size = path.stat().st_size
        insert = sa.text(
            "INSERT INTO audit (at, actor, action, target, data) "
            "VALUES (:at, 'me', 'test', :target, :data)"
        )
        rows = [{"at": 1.0, "target": f"t{i}", "data": '"' + "x" * 3000 + '"'} for i in range(1500)]
        with store.writing() as conn:
            conn.execute(insert, rows)
        assert _frames(path) > 1000  # SQLite's automatic checkpoint would have run
        assert path.stat().st_size == size
        assert store._lite is not None and store._lite.checkpointer._dirty
    finally:
        store.close()


def test_closing_while_a_writer_starts_the_thread_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store closed while another thread's commit is starting the checkpointer joins a
    started thread (CI once saw ``cannot join thread before it is started``: the thread was
    published before it was started, and closing did not wait for the start)."""
    import threading

    thread = threading.Thread  # the test's own threads start at once
    in_start, go_on = threading.Event(), threading.Event()

    class _SlowStart(threading.Thread):
        def start(self) -> None:
            in_start.set()
            assert go_on.wait(5.0)
            super().start()

    monkeypatch.setattr(_lite, "CHECKPOINT_EVERY_S", 3600.0)
    store = _store(tmp_path / "k.db")  # its first commit, long ago
    assert store._lite is not None
    checkpointer = store._lite.checkpointer
    checkpointer.wrote()
    monkeypatch.setattr(_lite, "CHECKPOINT_EVERY_S", 0.0)  # the next commit starts it
    monkeypatch.setattr(_lite.threading, "Thread", _SlowStart)
    writer = thread(target=checkpointer.wrote)
    writer.start()
    assert in_start.wait(5.0)
    errors: list[BaseException] = []

    def stop() -> None:
        try:
            checkpointer.stop()
        except BaseException as error:  # the test reports it
            errors.append(error)

    stopper = thread(target=stop)
    stopper.start()
    time.sleep(0.1)  # the stopper is in stop() while the writer is in start()
    go_on.set()
    stopper.join(5.0)
    writer.join(5.0)
    store.close()
    assert not errors, errors
    assert not stopper.is_alive()

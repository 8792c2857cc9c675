"""Faults of the state store's disk while runs go on: the engine waits, nothing is lost.

A SQLite store whose disk fills up (or turns read-only) cannot take any write, whichever run
it is for: the engine must retry, as it does while PostgreSQL is unreachable, and finish the
run once space is freed, without running a finished step again and without failing (or
"quarantining") the run whose write happened to meet the full disk.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest
from conftest import Harness, flow, task

from kaon.errors import StoreUnavailableError
from kaon.model.status import RunStatus, StepStatus


class _Disk:
    """How many pages the store's file may grow to (None: no limit), applied by every
    write transaction of every connection: SQLite then fails a write that needs more with
    SQLITE_FULL, "database or disk is full", as it does on a full disk."""

    def __init__(self) -> None:
        self.pages: int | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        disk = self
        connect = sqlite3.connect

        class Cursor(sqlite3.Cursor):
            def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
                if sql == "BEGIN IMMEDIATE":
                    limit = disk.pages if disk.pages is not None else 2**30
                    super().execute(f"PRAGMA max_page_count = {limit}")
                return super().execute(sql, *args)

        class Connection(sqlite3.Connection):
            def cursor(self, factory: Any = Cursor) -> Any:  # type: ignore[override]
                return super().cursor(factory)

        def capped(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            kwargs.setdefault("factory", Connection)
            return connect(*args, **kwargs)

        monkeypatch.setattr(sqlite3, "connect", capped)


def test_a_full_disk_pauses_the_run_until_space_is_freed(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _Disk()
    disk.install(monkeypatch)  # before the store's connections are made
    h = Harness(tmp_path, "inline")
    try:
        spec = flow(
            task("first", "const", inputs={"value": 1, "state": str(h.state), "name": "first"}),
            task("talk", "chatty", needs=("first",), inputs={"n": 3000}),
            task("last", "const", needs=("talk",), inputs={"value": 2, "state": str(h.state)}),
        )
        run_id = h.create(spec)
        lite = h.store._lite  # type: ignore[attr-defined]
        with lite.connection() as connection:
            used = connection.execute("PRAGMA page_count").fetchone()[0]
        disk.pages = used + 60  # room for the first steps, not for talk's log and metrics
        freed = threading.Timer(2.0, lambda: setattr(disk, "pages", None))
        freed.start()
        try:
            status = h.drive(run_id, timeout=60)
        finally:
            freed.cancel()
        run = h.store.get_run(run_id)
        assert (status, run.error) == (RunStatus.SUCCEEDED, None)
        rows = h.rows(run_id)
        assert {p: r.status for p, r in rows.items()} == {
            "first": StepStatus.SUCCEEDED,
            "talk": StepStatus.SUCCEEDED,
            "last": StepStatus.SUCCEEDED,
        }
        assert (h.count("first"), h.count("const")) == (1, 1)  # no step ran again
    finally:
        h.store.close()


def test_a_runner_stopped_during_an_outage_leaves_its_run_to_resume_at_once(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or SIGTERM) of `kaon run` while the store cannot be written: the write
    being retried gave up with StoreUnavailableError, which the engine took for an error of
    the run's own rows and "quarantined" the run (failing it for good had that write got
    through; here it crashed the runner, exit 3). The run stays running, the runner reports
    it stopped (exit 130), and since its lease could not be released its lock file stays:
    the next engine takes the run at once, not after the lease's 30 s."""
    spec = flow(
        task("first", "const", inputs={"value": 1, "state": str(inline.state), "name": "first"}),
        task("slow", "sleeper", needs=("first",), inputs={"seconds": 0.5}),
    )
    run_id = inline.create(spec)
    engine = inline.engine()
    engine.start()
    engine.add_run(run_id)
    while "slow" not in inline.rows(run_id):
        engine.turn(max_wait=0.05)

    def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailableError("store: writing failed: (OperationalError) connection refused")

    monkeypatch.setattr(inline.store, "write", down)
    monkeypatch.setattr(inline.store, "release_lease", down)
    threading.Timer(1.0, engine.stop).start()  # Ctrl-C, while the writes are being retried
    try:
        assert engine.run_until_done(run_id) is RunStatus.RUNNING
    finally:
        engine.close()
    monkeypatch.undo()
    record = inline.store.get_run(run_id)
    assert (record.status, record.error) == (RunStatus.RUNNING, None)
    started = time.monotonic()
    assert inline.drive(run_id, timeout=20) is RunStatus.SUCCEEDED
    assert time.monotonic() - started < 10  # not after the lease's 30 s
    assert inline.count("first") == 1


def test_a_run_let_go_in_an_outage_is_taken_again_with_the_lease_it_kept(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store outage met while the engine applies an event lets the run go, to be loaded
    again from the store; the store refusing the lease's release too, the lease stayed this
    engine's, and `kaon run` loading the run again failed with LeaseError: "run R is being
    run by <this engine> (its lease has not expired); kill it or wait". The engine takes its
    own lease again and finishes the run."""
    spec = flow(
        task("first", "const", inputs={"value": 1, "state": str(inline.state), "name": "first"}),
        task("last", "const", needs=("first",), inputs={"value": 2, "state": str(inline.state)}),
    )
    run_id = inline.create(spec)
    engine = inline.engine()
    apply, release = engine._apply, inline.store.release_lease
    down = threading.Event()

    def apply_in_an_outage(event: Any) -> None:
        if not down.is_set():
            down.set()  # the store fails from this read on, for a moment
            threading.Timer(0.3, down.clear).start()
            raise StoreUnavailableError("store: reading failed: (OperationalError) refused")
        apply(event)

    def release_in_an_outage(*args: Any, **kwargs: Any) -> None:
        if down.is_set():
            raise StoreUnavailableError("store: writing failed: (OperationalError) refused")
        release(*args, **kwargs)

    monkeypatch.setattr(engine, "_apply", apply_in_an_outage)
    monkeypatch.setattr(inline.store, "release_lease", release_in_an_outage)
    assert inline.drive(run_id, timeout=20, engine=engine) is RunStatus.SUCCEEDED
    assert inline.store.get_run(run_id).error is None

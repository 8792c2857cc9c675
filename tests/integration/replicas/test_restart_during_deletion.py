"""A restart racing a deletion of the same run, on PostgreSQL (two replicas: one restarts
the run for a user, the other deletes it for ``DELETE /runs/{id}`` or ``--retention``).

The restart read the finished run, then the deletion claimed it, then the restart wrote it
back to running: the run was active, claimed for deletion by a lease that never ends (no
engine could take it: stuck ``running``), and the deletion went on and deleted it, the
restart having answered that it was running again. The interleaving is made by holding an
``ACCESS EXCLUSIVE`` lock on ``step_runs``, which both read between those two points.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from kaon.engine import operations
from kaon.errors import KaonError
from kaon.model.params import bind_params
from kaon.model.specs import GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import WriteBatch

pytestmark = pytest.mark.integration


def _waiting_on_lock(conn: psycopg.Connection[Any], count: int) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database()"
    ).fetchone()
    return row is not None and int(row[0]) >= count


def _wait_for_waiters(conn: psycopg.Connection[Any], count: int) -> None:
    deadline = time.monotonic() + 10
    while not _waiting_on_lock(conn, count):
        assert time.monotonic() < deadline, f"fewer than {count} sessions waited on the lock"
        time.sleep(0.02)


def test_a_run_restarted_while_it_is_deleted_is_restarted_or_deleted_not_both(
    pg_url: str,
) -> None:
    spec = WorkflowSpec(
        name="raced",
        graph=GraphSpec(steps=(TaskSpec(id="a", config={"command": "true"}, step_type="shell"),)),
    )
    restarter, deleter = open_store(pg_url), open_store(pg_url)
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    outcome: dict[str, Any] = {}
    try:
        run_id = operations.create_run(restarter, spec, bind_params(spec, {})).id
        batch = WriteBatch()
        batch.update_run(run_id, status=RunStatus.FAILED, ended_at=time.time() - 10)
        restarter.write(batch)

        def restart() -> None:
            try:
                outcome["restart"] = operations.restart_run(restarter, run_id).status
            except KaonError as error:
                outcome["restart"] = error

        def delete() -> None:
            try:
                outcome["delete"] = deleter.delete_runs([run_id], by="retention")
            except KaonError as error:
                outcome["delete"] = error

        with psycopg.connect(dsn) as locker, psycopg.connect(dsn, autocommit=True) as watcher:
            locker.execute("LOCK TABLE step_runs IN ACCESS EXCLUSIVE MODE")
            first = threading.Thread(target=restart)
            first.start()
            _wait_for_waiters(watcher, 1)  # the restart read the run, waits to read its steps
            second = threading.Thread(target=delete)
            second.start()
            _wait_for_waiters(watcher, 2)  # the deletion claimed it, waits on its steps
            locker.rollback()
            first.join(30)
            second.join(30)
        restarted = outcome["restart"] is RunStatus.PENDING  # queued for an engine again
        deleted = outcome["delete"] == 1
        assert restarted != deleted, outcome  # exactly one of them happened
        rows = restarter.list_runs(limit=10)
        if restarted:
            (record,) = rows
            assert record.status is RunStatus.PENDING
            assert record.owner is None or not record.owner.startswith("kaon:deleting"), record
        else:
            assert rows == []
    finally:
        restarter.close()
        deleter.close()

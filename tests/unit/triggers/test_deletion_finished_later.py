"""A run deletion interrupted by a kill is finished by a server's trigger loop.

A deletion (``DELETE /runs/{id}``, ``kaon runs delete``, retention) claims the run, then
deletes its rows in bounded transactions, the run's row last. Killed midway, it left the run
listed, claimed and half deleted until someone asked again: nothing finished it (retention
only when the run was past its age and not among the newest kept). The claim is now a lease
the deletion renews; a server finishes a deletion whose claim lapsed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kaon.model.status import RunStatus
from kaon.store.base import DELETING_OWNER, EventRecord, RunRecord, WriteBatch
from kaon.store.sql import SQLStore
from kaon.triggers.service import TriggerService

_DELETER = textwrap.dedent(
    """
    import sys
    from kaon.store import deletion, open_store

    deletion.CLAIM_S = 1.0  # the claim lapses a second after the deleter's last renewal
    store = open_store(sys.argv[1])
    deletion.delete_runs(store, [sys.argv[2]], chunk_rows=1, by="cli")
    """
)


def _finished_run(store: SQLStore, run_id: str, events: int) -> None:
    now = time.time()
    record = RunRecord(
        id=run_id,
        workflow="w",
        definition_hash="h",
        status=RunStatus.SUCCEEDED,
        created_at=now - 60,
        ended_at=now - 30,
    )
    rows = [EventRecord(run_id, "action", now - 30, {"n": n}) for n in range(events)]
    store.write(WriteBatch(runs=[record], events=rows))


def test_a_deletion_killed_midway_is_finished_by_the_trigger_loop(
    store: SQLStore, tmp_path: Path
) -> None:
    _finished_run(store, "doomed", 20_000)
    _finished_run(store, "kept", 3)
    url = f"sqlite:///{tmp_path / 'kaon.db'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    deleter = subprocess.Popen([sys.executable, "-c", _DELETER, url, "doomed"], env=env)
    try:
        deadline = time.monotonic() + 30
        while store.get_run("doomed").owner != DELETING_OWNER:
            assert time.monotonic() < deadline, "the deletion never claimed the run"
            assert deleter.poll() is None, "the deleter ended before claiming the run"
            time.sleep(0.005)
        time.sleep(0.1)  # some of its rows are gone
        os.kill(deleter.pid, signal.SIGKILL)
        deleter.wait(10)
    finally:
        if deleter.poll() is None:
            deleter.kill()
            deleter.wait(10)
    assert store.get_run("doomed").owner == DELETING_OWNER  # left half done
    time.sleep(1.5)  # its claim lapses: no deleter renews it

    service = TriggerService(store, on_lag=None, with_alerts=False)  # no retention set
    service.tick()

    assert {r.id for r in store.list_runs(limit=10)} == {"kept"}
    assert store.query(("run_exists",), run_id="doomed") == []
    assert len(store.events("kept")) == 3

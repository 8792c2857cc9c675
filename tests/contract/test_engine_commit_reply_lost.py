"""A commit PostgreSQL made whose answer never reached the engine (the database restarted, or
the network cut, after the ``Sync`` and before the reply).

The engine retried such a write as if nothing had been written: its step run inserts then
met their own rows (``duplicate key value violates unique constraint "step_runs_pkey"``) and
the run was quarantined, failed by a restart of the database. The store now marks a batch
whose commit was sent when its connection was lost; a retry that meets the batch's own rows
returns as written.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import PostgresCluster

from kaon.artifacts import open_artifact_store
from kaon.engine import operations
from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.params import bind_params
from kaon.model.specs import Const, GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store
from kaon.store.base import WriteBatch

pytestmark = pytest.mark.integration

STEPS = str(Path(__file__).parents[1] / "unit" / "engine" / "engine_steps.py")


@dataclass
class _Proxy:
    """A TCP relay to PostgreSQL that, once armed, lets the next request of a connection
    through but drops the server's answer and then cuts that connection: what a client sees
    when the database commits and dies before replying."""

    target: int
    armed: threading.Event = field(default_factory=threading.Event)
    cut: int = 0
    _listener: socket.socket = field(default_factory=socket.socket)

    def start(self) -> int:
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        port: int = self._listener.getsockname()[1]
        return port

    def stop(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            dropping = threading.Event()
            for relay, ends in ((self._up, (client, server)), (self._down, (server, client))):
                threading.Thread(target=relay, args=(*ends, dropping), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, dropping: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self.armed.is_set() and not dropping.is_set():
                    self.armed.clear()
                    dropping.set()
                    threading.Timer(1.0, self._cut, args=(client, server)).start()
                server.sendall(data)
        except OSError:
            pass

    def _down(
        self, server: socket.socket, client: socket.socket, dropping: threading.Event
    ) -> None:
        try:
            while data := server.recv(65536):
                if not dropping.is_set():
                    client.sendall(data)
        except OSError:
            pass

    def _cut(self, client: socket.socket, server: socket.socket) -> None:
        self.cut += 1
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def proxy(pg_cluster: PostgresCluster) -> Iterator[_Proxy]:
    relay = _Proxy(pg_cluster.port)
    yield relay
    relay.stop()


def _task(step_id: str, value: int, state: Path, needs: tuple[str, ...] = ()) -> TaskSpec:
    inputs = {"value": Const(value), "state": Const(str(state)), "name": Const(step_id)}
    config = {"file": STEPS, "function": "const"}
    return TaskSpec(id=step_id, config=config, inputs=inputs, needs=needs)  # type: ignore[arg-type]


def _loses_a_step_run_insert(batch: WriteBatch) -> bool:
    return any(r.path == "second" for r in batch.step_runs.values())


def _loses_the_runs_end(batch: WriteBatch) -> bool:
    return any(u.get("status") == RunStatus.SUCCEEDED for u in batch.run_updates.values())


@pytest.mark.parametrize("loses", [_loses_a_step_run_insert, _loses_the_runs_end])
def test_a_commit_whose_reply_was_lost_is_not_written_twice(
    pg_cluster: PostgresCluster,
    pg_url: str,
    proxy: _Proxy,
    tmp_path: Path,
    loses: Callable[[WriteBatch], bool],
) -> None:
    """The step run insert's write was rejected as a duplicate and the run quarantined; the
    run's last write (which releases its lease) was refused by its own fence, and the
    runner raised FencingError ("taken over by another engine") for a run that had
    succeeded; its events were recorded twice."""
    state = tmp_path / "state"
    state.mkdir()
    database = pg_url.rsplit("/", 1)[1]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.start()}/{database}"
    store = open_store(url)
    steps = (
        _task("first", 1, state),
        _task("second", 2, state, needs=("first",)),
        _task("last", 3, state, needs=("second",)),
    )
    spec = WorkflowSpec(name="lost_reply", graph=GraphSpec(steps=steps))
    run_id = operations.create_run(store, spec, bind_params(spec, {})).id
    write = store.write

    def write_then_lose_the_reply(batch: WriteBatch) -> None:
        if not proxy.cut and loses(batch):
            proxy.armed.set()  # this write commits; its answer is lost
        write(batch)

    store.write = write_then_lose_the_reply  # type: ignore[method-assign]
    engine = Engine(store, create_executor("inline", workers=2), open_artifact_store(str(tmp_path)))
    timer = threading.Timer(60, engine.stop)
    timer.start()
    started = time.monotonic()
    try:
        engine.add_run(run_id)
        status = engine.run_until_done(run_id)
    finally:
        timer.cancel()
        engine.close()
    try:
        assert proxy.cut == 1
        record = store.get_run(run_id)
        assert (status, record.error) == (RunStatus.SUCCEEDED, None)
        rows = {r.path: r for r in store.step_runs(run_id)}
        assert {p: r.status for p, r in rows.items()} == dict.fromkeys(
            ("first", "second", "last"), StepStatus.SUCCEEDED
        )
        for name in ("first", "second"):  # each step ran once
            assert len((state / name).read_text().splitlines()) == 1
        events: list[Any] = store.events(run_id, limit=1000)
        seen = [(e.kind, e.step_run_id, e.at, repr(e.data)) for e in events]
        assert len(seen) == len(set(seen)), "an event was recorded twice"
        assert time.monotonic() - started < 30
    finally:
        store.close()

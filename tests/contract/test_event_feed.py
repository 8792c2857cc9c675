"""The lossless feed test: every event, signal and alert reaches each reader exactly once.

Writers commit events and signals concurrently; on PostgreSQL one of them is slowed down
*inside* its transaction (a trigger sleeps after its rows are inserted, so its ids are taken
long before it commits) while the others commit later ids. The four readers of the feed run
all along: the live stream (``GET /events``'s generator), the trigger service's signal cursor
(one run per signal), the alert scanner's event cursor (one delivery per failed run) and wait
steps driven by an engine (one wait per signal). A reader that jumped to the largest id it
saw would lose the slow writer's rows.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from kaon.api import routes_events
from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.specs import (
    GraphSpec,
    ParamSpec,
    ParamType,
    TaskSpec,
    WaitSpec,
    WorkflowSpec,
)
from kaon.model.status import RunStatus
from kaon.model.triggers import SignalTriggerSpec
from kaon.store import open_store
from kaon.store.base import EventRecord, SignalRecord, WriteBatch
from kaon.store.sql import SQLStore
from kaon.store.triggers import SQLTriggerStore
from kaon.triggers.alerts import AlertService
from kaon.triggers.catalog import StaticCatalog
from kaon.triggers.service import TriggerService

N = 8  # signals (one per wait run) and failed runs (one alert each); half of them slow
SLOW_S = 0.2

_DELAY = """
CREATE FUNCTION kaon_test_delay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep({slow}); RETURN NULL; END $$;
CREATE TRIGGER delay_events AFTER INSERT ON events FOR EACH ROW
  WHEN (jsonb_exists(NEW.data, 'slow')) EXECUTE FUNCTION kaon_test_delay();
CREATE TRIGGER delay_signals AFTER INSERT ON signals FOR EACH ROW
  WHEN (NEW.by = 'slow') EXECUTE FUNCTION kaon_test_delay();
"""


def _task(step_id: str) -> TaskSpec:
    return TaskSpec(id=step_id, step_type="shell", config={"command": "true"})


def _specs() -> tuple[WorkflowSpec, WorkflowSpec, WorkflowSpec]:
    waiting = WorkflowSpec(
        name="waiting",
        graph=GraphSpec(steps=(WaitSpec(id="w", signal="feed", match="signal.n == params.k"),)),
        params=(ParamSpec("k", ParamType.INT, 0),),
    )
    triggered = WorkflowSpec(
        name="triggered",
        graph=GraphSpec(steps=(_task("t"),)),
        triggers=(SignalTriggerSpec(signal="feed"),),
    )
    alerted = WorkflowSpec(name="alerted", graph=GraphSpec(steps=(_task("a"),)))
    return waiting, triggered, alerted


class _Request:
    """What the stream generator asks of a request: whether the client left."""

    async def is_disconnected(self) -> bool:
        return False


class _Loop(threading.Thread):
    """Calls ``body`` every ``every`` seconds until stopped."""

    def __init__(self, body: Any, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.body, self.every, self.halt = body, every, threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.body()
                time.sleep(self.every)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)
        assert self.error is None, self.error


def _follow(
    store: SQLStore, seen: list[int], stopping: threading.Event, hub: Any = None
) -> threading.Thread:
    services = SimpleNamespace(store=store)

    async def follow() -> None:
        shared = () if hub is None else (hub,)
        stream = routes_events._events(_Request(), services, None, 0, stopping, *shared)  # type: ignore[arg-type]
        async for chunk in stream:  # a chunk holds a batch's frames
            seen.extend(int(line[4:]) for line in chunk.splitlines() if line.startswith("id: "))

    thread = threading.Thread(target=anyio.run, args=(follow,), daemon=True)
    thread.start()
    return thread


def _write(store: SQLStore, items: list[tuple[str, int]], slow: bool) -> None:
    """Write each item (a failed run's event, or a signal) in its own transaction, with
    filler events; slow writers' transactions sleep after inserting."""
    for what, value in items:
        batch = WriteBatch()
        flag = {"slow": True} if slow else {}
        if what == "signal":
            by = "slow" if slow else "fast"
            batch.signals.append(SignalRecord("feed", {"n": value}, time.time(), by))
        else:
            data = {"status": "failed", **flag}
            batch.events.append(EventRecord(str(value), "run", time.time(), data))
        if not slow:
            for _ in range(3):
                batch.events.append(EventRecord("filler", "progress", time.time(), {}))
        store.write(batch)
        time.sleep(0.005)


@pytest.fixture(params=["sqlite", "postgresql"])
def feed_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kaon.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = open_store(url)
    assert isinstance(store, SQLStore)
    if request.param == "postgresql":
        with store.writing() as conn:
            conn.exec_driver_sql(_DELAY.format(slow=SLOW_S))
    yield store
    store.close()


def test_every_event_signal_and_alert_reaches_each_reader_once(
    feed_store: SQLStore, tmp_path: Path
) -> None:
    store = feed_store
    waiting, triggered, alerted = _specs()
    wait_runs = [create_run(store, waiting, {"k": k}).id for k in range(N)]
    failed_runs = [create_run(store, alerted, {}).id for _ in range(N)]
    engine = Engine(
        store,
        create_executor("inline", workers=2),
        open_artifact_store(str(tmp_path / "artifacts")),
        command_poll_s=0.02,
    )
    engine.start()
    for run_id in wait_runs:
        engine.add_run(run_id)
    triggers = TriggerService(
        store, StaticCatalog([triggered]), clock=time.time, on_lag=None, with_alerts=False
    )
    hook = {"alerts": {"on_failure": "http://127.0.0.1:9/hook"}}
    alerts = AlertService(store, SQLTriggerStore(store), properties=lambda _s, _w: hook)
    triggers.tick()  # the signal trigger counts from now
    alerts.scan_finished(time.time())  # alerts about what happens from now
    seen: list[int] = []
    stopping = threading.Event()
    follower = _follow(store, seen, stopping)
    hub = None
    if hasattr(routes_events, "FeedHub"):  # the shared reader of the API process
        hub = routes_events.FeedHub(store, stopping)
        hub.start()
    seen_by_hub: list[int] = []
    hub_follower = _follow(store, seen_by_hub, stopping, hub)
    loops = [
        _Loop(lambda: engine.turn(max_wait=0.01), every=0.0),
        _Loop(triggers.tick),
        _Loop(lambda: alerts.scan_finished(time.time())),
    ]
    for loop in loops:
        loop.start()
    items = [("signal", k) for k in range(N)] + [("event", i) for i in range(N)]
    slow = [(w, failed_runs[v] if w == "event" else v) for w, v in items[::2]]
    fast = [(w, failed_runs[v] if w == "event" else v) for w, v in items[1::2]]
    writers = [
        threading.Thread(target=_write, args=(store, slow, True)),
        threading.Thread(target=_write, args=(store, fast[: N // 2], False)),
        threading.Thread(target=_write, args=(store, fast[N // 2 :], False)),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    # Generous: on a loaded 2-core machine the engine's turns are slow (correctness, not
    # speed, is what this test checks).
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            done = all(store.get_run(r).status is RunStatus.SUCCEEDED for r in wait_runs)
            fired = store.list_runs(workflow="triggered", limit=100)
            delivered = SQLTriggerStore(store).deliveries(limit=100)
            last = max(e.id or 0 for e in store.events(limit=100_000))
            streamed = seen and seen[-1] >= last and seen_by_hub and seen_by_hub[-1] >= last
            if done and len(fired) >= N and len(delivered) >= N and streamed:
                break
            time.sleep(0.1)
    finally:
        for loop in loops:
            loop.stop()
        stopping.set()
        follower.join(timeout=10)
        hub_follower.join(timeout=10)
        engine.close()
        alerts.close()
    # The live stream: every committed event once, in id order.
    everything = [e.id for e in store.events(limit=100_000)]
    assert seen == everything
    assert seen_by_hub == everything
    # Wait steps: each woken by its own signal.
    signal_ids = {s.params["n"]: s.id for s in store.signals(name="feed")}
    assert len(signal_ids) == N
    for k, run_id in enumerate(wait_runs):
        assert store.get_run(run_id).status is RunStatus.SUCCEEDED, f"wait run {k}"
        assert store.get_step_run(run_id, "w").reason == f"signal feed #{signal_ids[k]}"
    # The trigger service: one run per signal.
    fired_by = sorted(r.labels["signal_id"] for r in store.list_runs(workflow="triggered"))
    assert fired_by == sorted(signal_ids.values())
    # Alerts: one delivery per failed run.
    delivered_for = sorted(d.run_id or "" for d in SQLTriggerStore(store).deliveries(limit=100))
    assert delivered_for == sorted(failed_runs)

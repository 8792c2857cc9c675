"""Costs that must not grow with the number of runs or with history (issue 8, item 8).

Three measurements against one store (SQLite in a temp dir by default, or ``--url``):

* ``poll``: the engine's command poll with N held runs: one query for all of them
  (``pending_commands_of``) against the old query per run (``pending_commands``); and a wait
  step's signal poll after many older signals: from its cursor against from id 0;
* ``metrics``: one ``/metrics`` scrape (the store collector) with 40k step runs and 40k
  attempts, the first scrape (sums all history once) and the next ones;
* ``sse``: runs created per second with 0 and 20 live-stream followers polling the feed.

    .venv/bin/python bench/feed_bench.py [--url URL] [--only poll,metrics,sse]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio

from kaon.api import routes_events
from kaon.api.feed_hub import FeedHub
from kaon.api.metrics import _StoreCollector
from kaon.engine.operations import create_run
from kaon.model.specs import GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.service.auth import AuthService
from kaon.store import open_store
from kaon.store.base import (
    AttemptRecord,
    RunRecord,
    SignalRecord,
    StepRunRecord,
    WriteBatch,
)
from kaon.store.registry import SQLRegistryStore
from kaon.store.sql import SQLStore


def _ms(action: Callable[[], Any], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _runs(store: SQLStore, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}-{i:06d}" for i in range(n)]
    now = time.time()
    for start in range(0, n, 1000):
        batch = WriteBatch(
            runs=[
                RunRecord(i, "bench", "h", RunStatus.RUNNING, created_at=now)
                for i in ids[start : start + 1000]
            ]
        )
        store.write(batch)
    return ids


def _analyze(store: SQLStore) -> None:
    """Refresh the planner's statistics after a bulk load (autovacuum would, later)."""
    if store.dialect == "postgresql":
        with store.writing("analyzing") as conn:
            conn.exec_driver_sql("ANALYZE")


def bench_poll(store: SQLStore) -> None:
    print("command poll (ms per poll, median of 5):")
    print(f"  {'held runs':>10} {'one query':>10} {'per run (old)':>14}")
    for held in (10, 100, 1000):
        ids = _runs(store, f"poll{held}", held)
        one = _ms(lambda ids=ids: store.pending_commands_of(ids))  # type: ignore[misc]
        old = _ms(lambda ids=ids: [store.pending_commands(i) for i in ids], rounds=3)  # type: ignore[misc]
        print(f"  {held:>10} {one:>10.2f} {old:>14.2f}")
    older = 100_000
    now = time.time()
    for _ in range(0, older, 5000):
        signals = [SignalRecord("old", {}, now - 3600, "bench") for _n in range(5000)]
        store.write(WriteBatch(signals=signals))
    _analyze(store)
    since = time.time()
    cursor = store.signal_cursor_since(since)
    from_cursor = _ms(lambda: store.signals(after_id=cursor, limit=500))
    from_zero = _ms(lambda: store.signals(after_id=0, since=since, limit=500))
    print(
        f"wait step signal poll after {older} older signals: from its cursor "
        f"{from_cursor:.2f} ms, from id 0 (old) {from_zero:.2f} ms; "
        f"cursor lookup {_ms(lambda: store.signal_cursor_since(since)):.2f} ms"
    )


def bench_metrics(store: SQLStore, rows: int = 40_000) -> None:
    now = time.time()
    per_run = 100
    for r in range(rows // per_run):
        batch = WriteBatch()
        run_id = f"m-{r:05d}"
        batch.runs.append(RunRecord(run_id, "bench", "h", RunStatus.SUCCEEDED, created_at=now))
        for n in range(1, per_run + 1):
            ended = now - 3600 + n
            batch.insert_step_run(
                StepRunRecord(run_id, n, f"s{n}", f"s{n}", "task", StepStatus.SUCCEEDED)
            )
            batch.insert_attempt(AttemptRecord(run_id, n, 1, "succeeded", ended - 1, ended, "w"))
        store.write(batch)
    _analyze(store)
    collector = _StoreCollector(store)
    first = _ms(lambda: list(collector.collect()), rounds=1)
    later = _ms(lambda: list(collector.collect()), rounds=9)
    print(
        f"/metrics store collector with {rows} step runs and {rows} attempts: "
        f"first scrape {first:.1f} ms, next scrapes {later:.1f} ms (median of 9)"
    )


class _Request:
    async def is_disconnected(self) -> bool:
        return False


def _follower(
    store: SQLStore, stopping: threading.Event, hub: FeedHub | None, after: int | None = None
) -> tuple[threading.Thread, list[int]]:
    """A live follower of every run's events, as ``GET /events`` streams them to a client
    holding a real admin token (the stream checks it again every few seconds): from the
    events after ``after``, or from whenever its thread gets to start (now). Returns its
    thread and its count of events received (its own: a count shared by the followers'
    threads lost updates)."""
    seen = [0]
    auth = AuthService(SQLRegistryStore(store))
    _token, secret = auth.create_token(f"bench-follower-{uuid.uuid4().hex[:8]}", "admin")
    services = SimpleNamespace(store=store, auth=auth)

    async def follow() -> None:
        start = routes_events.start_cursor(services, None, after, None)  # type: ignore[arg-type]
        stream = routes_events._events(
            _Request(),  # type: ignore[arg-type]
            services,  # type: ignore[arg-type]
            None,
            start,
            stopping,
            hub,
            secret=secret,
        )
        async for chunk in stream:  # a chunk holds a batch of events, an id line each
            seen[0] += sum(1 for line in chunk.split("\n") if line.startswith("id: "))

    thread = threading.Thread(target=anyio.run, args=(follow,), daemon=True)
    thread.start()
    return thread, seen


def bench_sse(store: SQLStore, seconds: float = 5.0) -> None:
    spec = WorkflowSpec(
        name="sse", graph=GraphSpec(steps=(TaskSpec(id="a", step_type="shell", config={}),))
    )
    create_run(store, spec, {})  # stores the definition
    print(f"runs created per second (each one event) for {seconds:g} s:")
    for followers, shared in ((0, False), (20, False), (20, True)):
        stopping = threading.Event()
        hub = FeedHub(store, stopping) if shared else None
        if hub is not None:
            hub.start()
        started = [_follower(store, stopping, hub) for _ in range(followers)]
        time.sleep(0.3)
        created = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            create_run(store, spec, {})
            created += 1
        rate = created / (time.perf_counter() - start)
        time.sleep(0.5)
        stopping.set()
        for thread, _seen in started:
            thread.join(timeout=10)
        delivered = sum(seen[0] for _thread, seen in started) / followers if followers else 0
        how = "one shared reader" if shared else "a query each"
        print(
            f"  {followers:>2} followers ({how}): {rate:7.1f} runs/s"
            + (f" (each follower got {delivered:.0f} of {created} events)" if followers else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="store URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--only", default="poll,metrics,sse")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = open_store(url)
        assert isinstance(store, SQLStore)
        print(f"store: {store.dialect}")
        try:
            parts = args.only.split(",")
            if "poll" in parts:
                bench_poll(store)
            if "metrics" in parts:
                bench_metrics(store)
            if "sse" in parts:
                bench_sse(store)
        finally:
            store.close()


if __name__ == "__main__":
    main()

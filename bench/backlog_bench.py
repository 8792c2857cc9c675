"""Backlog drain: how fast one engine in server mode (``Engine.serve``) claims and finishes a
backlog of pending runs of a 3-step no-op workflow (claiming, admission, engine turns, one
durable commit per turn).

    python bench/backlog_bench.py --runs 5000 [--store pg] [--executor inline|process]
        [--followers 20]

With ``--followers N``, N live-stream followers (``GET /events``'s generator, through the
API process's shared reader, as in ``kaon server``) follow the event feed meanwhile, and
each must have received every event by the end.

prints one JSON line: runs, wall seconds, runs per second, peak RSS (MB).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

from feed_bench import _follower

from kaon.api.feed_hub import FeedHub
from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.specs import GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import EventRecord, RunRecord, WriteBatch

STEPS = str(Path(__file__).with_name("noop_steps.py"))


def three_steps() -> WorkflowSpec:
    """a -> b -> c, each a no-op."""
    steps = tuple(
        TaskSpec(
            id=name,
            config={"file": STEPS, "function": "noop"},
            needs=(previous,) if previous else (),
        )
        for name, previous in (("a", ""), ("b", "a"), ("c", "b"))
    )
    return WorkflowSpec(name="three", graph=GraphSpec(steps=steps))


def measure(url: str | None, runs: int, executor: str, followers: int = 0) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="kaon-backlog-"))
    try:
        store = open_store(url or f"sqlite:///{home / 'kaon.db'}")
        first = create_run(store, three_steps(), {})
        now = time.time()
        batch = WriteBatch()
        for n in range(1, runs):
            run_id = f"{first.id}-{n:06d}"
            batch.runs.append(
                RunRecord(
                    run_id,
                    "three",
                    first.definition_hash,
                    RunStatus.PENDING,
                    created_at=now + n * 1e-6,
                )
            )
            batch.events.append(EventRecord(run_id, "run", now, {"status": "pending"}))
        store.write(batch)
        before = len(store.events(limit=10_000_000))  # followers start from now
        stopping = threading.Event()
        hub = FeedHub(store, stopping) if followers else None
        if hub is not None:
            hub.start()
        head = store.last_event_id()  # every follower counts from here, however late it starts
        streams = [_follower(store, stopping, hub, head) for _ in range(followers)]  # type: ignore[arg-type]

        def received() -> int:
            return sum(seen[0] for _stream, seen in streams)

        engine = Engine(store, create_executor(executor), open_artifact_store(str(home / "a")))
        engine.start()
        thread = threading.Thread(target=engine.serve, kwargs={"claim_every_s": 0.1})
        started = time.perf_counter()
        thread.start()
        open_runs = [RunStatus.PENDING, RunStatus.RUNNING]
        while store.list_runs(statuses=open_runs, limit=1):  # one row: cheap to ask
            time.sleep(0.25)
        wall = time.perf_counter() - started
        engine.stop()
        thread.join(30)
        engine.close()
        events = len(store.events(limit=10_000_000)) - before
        deadline = time.monotonic() + 60
        while followers and received() < events * followers and time.monotonic() < deadline:
            time.sleep(0.2)
        stopping.set()
        for stream, _seen in streams:
            stream.join(10)
        failed = store.list_runs(statuses=[RunStatus.FAILED], limit=5)
        assert not failed, failed[0].error
        if followers and received() != events * followers:  # each follower gets every event
            raise SystemExit(f"followers got {received()} events, not {followers} x {events}")
        store.close()
        return {
            "runs": runs,
            "executor": executor,
            "store": "sqlite" if url is None else "postgresql",
            "wall_s": round(wall, 2),
            "runs_per_s": round(runs / wall, 1),
            "followers": followers,
            "events_each_follower_got": round(received() / followers) if followers else None,
            "events": events,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--executor", default="inline", choices=["inline", "process"])
    parser.add_argument("--store", default="sqlite", help="sqlite, pg, or a store URL")
    parser.add_argument("--followers", type=int, default=0, help="live-stream followers")
    args = parser.parse_args()
    if args.store == "pg":
        from pg_cluster import pg_cluster

        with pg_cluster() as url:
            print(json.dumps(measure(url, args.runs, args.executor, args.followers)))
    else:
        url = None if args.store == "sqlite" else args.store
        print(json.dumps(measure(url, args.runs, args.executor, args.followers)))


if __name__ == "__main__":
    main()

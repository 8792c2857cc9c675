"""Trigger lag: from a cron slot's due time to its run being created (and started).

The trigger service runs its production loop (a pass every 0.25 s) against a SQLite store
with ``--workflows`` workflows that each fire every second (``* * * * * *``), while an
engine in serve mode (inline executor, claiming every 0.1 s like ``kaon server``) starts
the runs. Target: lag under 1 s.

    python bench/trigger_bench.py [--workflows 20] [--seconds 10]

Prints a human summary and one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.specs import Const, GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.model.triggers import CronTriggerSpec
from kaon.store import open_store
from kaon.store.sql import SQLStore
from kaon.triggers import strategies
from kaon.triggers.catalog import StaticCatalog
from kaon.triggers.service import TriggerService

HERE = Path(__file__).parent


def _spec(index: int) -> WorkflowSpec:
    step = TaskSpec(
        id="noop",
        config={"file": str(HERE / "noop_steps.py"), "function": "noop"},
        inputs={"x": Const(index)},
    )
    return WorkflowSpec(
        name=f"tick{index}",
        graph=GraphSpec(steps=(step,)),
        triggers=(CronTriggerSpec(cron="* * * * * *"),),
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.25, help="trigger pass interval")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/kaon.db")
        assert isinstance(store, SQLStore)
        lags: list[float] = []
        catalog = StaticCatalog([_spec(i) for i in range(args.workflows)])
        service = TriggerService(
            store, catalog, on_lag=lambda _name, lag: lags.append(lag), with_alerts=False
        )
        engine = Engine(
            store,
            create_executor("inline", workers=8),
            open_artifact_store(f"{tmp}/artifacts"),
        )
        stop = threading.Event()
        loop = threading.Thread(target=service.run_forever, args=(stop, args.interval))
        serve = threading.Thread(
            target=engine.serve,
            kwargs={"admit": functools.partial(strategies.admit, store), "claim_every_s": 0.1},
        )
        loop.start()
        serve.start()
        time.sleep(args.seconds)
        stop.set()
        loop.join()
        time.sleep(1.0)  # let the engine start what was created
        engine.stop()
        serve.join()
        engine.close()
        runs = store.list_runs(limit=100_000)
        start_lags = []
        for run in runs:
            due = run.labels.get("slot")
            if run.started_at is None or due is None:
                continue
            from datetime import datetime

            start_lags.append(run.started_at - datetime.fromisoformat(due).timestamp())
        succeeded = sum(1 for r in runs if r.status is RunStatus.SUCCEEDED)
        store.close()
    if not lags:
        sys.exit("no run was created")
    result = {
        "bench": "trigger_lag",
        "workflows": args.workflows,
        "interval_s": args.interval,
        "runs": len(lags),
        "succeeded": succeeded,
        "created_p50_s": round(statistics.median(lags), 4),
        "created_p95_s": round(_percentile(lags, 0.95), 4),
        "created_max_s": round(max(lags), 4),
        "started_p50_s": round(statistics.median(start_lags), 4) if start_lags else None,
        "started_p95_s": round(_percentile(start_lags, 0.95), 4) if start_lags else None,
        "started_max_s": round(max(start_lags), 4) if start_lags else None,
    }
    print(
        f"trigger lag over {len(lags)} cron runs ({args.workflows} workflows, pass every "
        f"{args.interval}s): due -> created p50 {result['created_p50_s']}s, p95 "
        f"{result['created_p95_s']}s, max {result['created_max_s']}s; due -> started p50 "
        f"{result['started_p50_s']}s, p95 {result['started_p95_s']}s, max "
        f"{result['started_max_s']}s (target < 1 s)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

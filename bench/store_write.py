"""Cost of one typical engine write batch on the SQL store.

A batch like the one the engine commits when a step finishes and its successor starts: one
step-run insert, one attempt insert, two updates (the finished step run and its attempt) and
two events, fenced by the run's lease as the engine's are. Prints microseconds per batch, wall
and CPU time of the writing thread (median and mean over several rounds).

    .venv/bin/python bench/store_write.py [--url sqlite:///tmp/bench.db] [--batches 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store
from kaon.store.base import (
    AttemptRecord,
    EventRecord,
    RunRecord,
    StateStore,
    StepRunRecord,
    WriteBatch,
)

try:
    from kaon.store.base import Fence
except ImportError:  # a Kaon from before fenced writes (comparisons with old checkouts)
    Fence = None  # type: ignore[assignment,misc]


def _batch(run_id: str, n: int, now: float) -> WriteBatch:
    batch = WriteBatch()
    batch.insert_step_run(
        StepRunRecord(run_id, n, f"step{n}", f"step{n}", "task", StepStatus.RUNNING, created_at=now)
    )
    batch.insert_attempt(AttemptRecord(run_id, n, 1, "running", started_at=now, worker="w1"))
    if n > 1:
        batch.update_step_run(
            run_id, n - 1, status=StepStatus.SUCCEEDED, ended_at=now, outputs={"x": {"v": n}}
        )
        batch.update_attempt((run_id, n - 1, 1), status="succeeded", ended_at=now)
    batch.events.append(EventRecord(run_id, "step_succeeded", now, {"step": n - 1}, n - 1))
    batch.events.append(EventRecord(run_id, "step_started", now, {"step": n}, n))
    return batch


def _round(store: StateStore, run_id: str, batches: int) -> tuple[float, float]:
    """Write ``batches`` batches of a new run; (wall, CPU) microseconds per batch."""
    first = WriteBatch()
    first.runs.append(RunRecord(run_id, "bench", "h", RunStatus.RUNNING, created_at=time.time()))
    store.write(first)
    prepared = [_batch(run_id, n, time.time()) for n in range(1, batches + 1)]
    if Fence is not None:
        epoch = store.acquire_lease(run_id, "bench", 60.0)
        assert epoch is not None
        for batch in prepared:
            batch.fence = Fence("bench", {run_id: epoch})
    start, cpu = time.perf_counter(), time.thread_time()
    for batch in prepared:
        store.write(batch)
    return (
        (time.perf_counter() - start) / batches * 1e6,
        (time.thread_time() - cpu) / batches * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="store URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--batches", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = open_store(url)
        try:
            _round(store, "warmup", 200)
            costs = [_round(store, f"run{r}", args.batches) for r in range(args.rounds)]
        finally:
            store.close()
    wall, cpu = [c[0] for c in costs], [c[1] for c in costs]
    print(
        f"{url.split('://')[0]}: {statistics.median(wall):.1f} us per batch median "
        f"({statistics.fmean(wall):.1f} mean), CPU {statistics.median(cpu):.1f} us median, "
        f"over {args.rounds} x {args.batches} batches (1 step-run insert + 1 attempt insert "
        "+ 2 updates + 2 events, fenced)"
    )


if __name__ == "__main__":
    main()

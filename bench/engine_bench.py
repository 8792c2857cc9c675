"""Engine benchmarks W1-W3: orchestration overhead per step with full durability.

W1: a chain of 1,000 no-op steps. W2: a foreach of 10,000 no-op items and a join.
W3: a foreach of 100,000 no-op items and a join. Every transition is committed to a SQLite
(WAL) store before it is acted on, exactly as in production. Steps do nothing, so the wall
time divided by the number of steps is the orchestration overhead per step.

    python bench/engine_bench.py W2 --executor process

prints one JSON line: workflow, executor, steps, wall seconds, ms per step, the engine
process's CPU time per step (``cpu_ms_per_step``: user + system, all its threads; steadier than
wall time on a shared machine), peak RSS (MB) of the engine process.

    python bench/engine_bench.py W1 --steps 3000

runs a chain of 3,000 steps instead of 1,000.

    python bench/engine_bench.py W1 --store pg

runs on a throwaway PostgreSQL cluster (durable: fsync and synchronous commit on) and also
prints the database's own durable commit latency (``pg_commit_ms``, the floor for a chain: the
mean of one measurement before the run and one after, as the disk's latency drifts) and the
chain's time per step over it (``per_step_over_commit``).
``--store URL`` uses an existing database.

    python bench/engine_bench.py W1 --store pg --pg-sync off

sets the database's ``synchronous_commit`` off for the run and the commit measurement (a
measurement only, not a setting for production: a commit then returns before the log is on
disk), which splits a chain step into what the disk's flush costs and what does not: the
engine's work and the round trip. It also prints the write-ahead log per step
(``pg_wal_bytes_per_step``, from the log's insert position).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.specs import Expr, ForeachSpec, GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store import open_store

STEPS = str(Path(__file__).with_name("noop_steps.py"))


def _task(step_id: str, function: str = "noop", **kwargs: object) -> TaskSpec:
    return TaskSpec(id=step_id, config={"file": STEPS, "function": function}, **kwargs)  # type: ignore[arg-type]


def chain(n: int) -> tuple[WorkflowSpec, int]:
    """W1: n no-op steps, each after the previous one."""
    steps = [_task(f"s{i}", needs=(f"s{i - 1}",) if i else ()) for i in range(n)]
    return WorkflowSpec(name=f"chain{n}", graph=GraphSpec(steps=tuple(steps))), n


def fan_out(n: int) -> tuple[WorkflowSpec, int]:
    """W2/W3: a foreach of n no-op items between a source and a join."""
    body = GraphSpec(steps=(_task("work"),))
    steps = (
        _task("src", "items", inputs={"n": Expr(str(n))}),
        ForeachSpec(id="each", items=Expr("steps.src"), body=body),
        _task("join", "count", inputs={"values": Expr("steps.each")}),
    )
    return WorkflowSpec(name=f"foreach{n}", graph=GraphSpec(steps=steps)), n + 2


WORKFLOWS = {
    "W1": lambda: chain(1000),
    "W2": lambda: fan_out(10_000),
    "W3": lambda: fan_out(100_000),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workflow", choices=sorted(WORKFLOWS))
    parser.add_argument("--executor", default="inline", choices=["inline", "process"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="W1's chain length (default 1,000)")
    parser.add_argument("--store", default="sqlite", help="sqlite, pg, or a store URL")
    parser.add_argument(
        "--pg-sync",
        choices=["on", "off"],
        default="on",
        help="PostgreSQL's synchronous_commit for the run (off: a measurement only)",
    )
    args = parser.parse_args()
    if args.pg_sync == "off" and args.store != "pg":
        parser.error("--pg-sync off changes the database: only with --store pg (throwaway)")
    if args.store == "pg":
        from pg_cluster import pg_cluster

        with pg_cluster() as url:
            measure(args, url)
    else:
        measure(args, None if args.store == "sqlite" else args.store)


def measure(args: argparse.Namespace, url: str | None) -> None:
    """Run the workflow once on a fresh store; print the figures as one JSON line."""
    if args.steps is not None and args.workflow != "W1":
        raise SystemExit("--steps sets W1's chain length only")
    spec, steps = chain(args.steps) if args.steps else WORKFLOWS[args.workflow]()
    home = Path(tempfile.mkdtemp(prefix="kaon-bench-"))
    if getattr(args, "pg_sync", "on") == "off":
        _pg_sync_off(url)  # before the store's first connection
    try:
        store = open_store(url or f"sqlite:///{home / 'kaon.db'}")
        artifacts = open_artifact_store(str(home / "artifacts"))
        options = {"workers": args.workers} if args.workers else {}
        engine = Engine(store, create_executor(args.executor, **options), artifacts)
        engine.start()  # worker start-up is not orchestration overhead
        commit_before = _commit_ms(url)  # the disk's sync latency drifts: measured each side
        wal_before = _wal_bytes(url)
        run = create_run(store, spec, {})
        started = time.perf_counter()
        cpu_before = time.process_time()
        status = engine.run_until_done(run.id)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        engine.close()
        assert status is RunStatus.SUCCEEDED, store.get_run(run.id).error
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = {
            "workflow": args.workflow,
            "executor": args.executor,
            "steps": steps,
            "wall_s": round(wall, 3),
            "ms_per_step": round(wall / steps * 1000, 4),
            "cpu_ms_per_step": round(cpu / steps * 1000, 4),
            "peak_rss_mb": round(rss_mb, 1),
            "store": "sqlite" if url is None else "postgresql",
        }
        if wal_before is not None:
            result["pg_wal_bytes_per_step"] = round(((_wal_bytes(url) or 0) - wal_before) / steps)
        if commit_before is not None:
            commit = (commit_before + (_commit_ms(url) or commit_before)) / 2
            result["pg_commit_ms"] = round(commit, 4)
            result["per_step_over_commit"] = round(wall / steps * 1000 / commit, 2)
        print(json.dumps(result))
        store.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _commit_ms(url: str | None) -> float | None:
    """PostgreSQL's own durable commit latency (ms), or None for another store."""
    if url is None or not url.startswith("postgresql"):
        return None
    from pg_cluster import commit_latency_ms

    return commit_latency_ms(url)


def _pg_sync_off(url: str | None) -> None:
    """Turn the database's ``synchronous_commit`` off for its new sessions (a throwaway
    cluster's: see ``--pg-sync``)."""
    if url is None or not url.startswith("postgresql"):
        return
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET synchronous_commit = off')
        conn.commit()


def _wal_bytes(url: str | None) -> int | None:
    """The cluster's write-ahead log position (bytes), or None for another store."""
    if url is None or not url.startswith("postgresql"):
        return None
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
        return int(row[0]) if row is not None else None


if __name__ == "__main__":
    main()

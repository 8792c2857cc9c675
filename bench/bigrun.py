"""Build a large run fast: rows written straight through the store, no engine.

The run has the shape the engine writes for ``chain`` (``--steps`` shell tasks in a chain)
followed by a foreach ``segments`` over ``--items`` items whose body is one task ``train``:
one container row, one ``item`` frame row and one body task row per item, attempts for the
tasks, a few log lines and metrics on some of them. Statuses are mixed (mostly succeeded,
some failed, running, queued and pending) as in a run caught in flight.

Used by ``bench/read_bench.py`` and ``bench/ui_bench.py``; it can also be run by itself to
leave a big run in a store (for a look at the UI)::

    python bench/bigrun.py --db sqlite:////tmp/big.db --items 100000
"""

from __future__ import annotations

import argparse
import time
import uuid

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.model.codec import spec_hash, workflow_to_dict
from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import (
    AttemptRecord,
    DefinitionRecord,
    LogRecord,
    MetricRecord,
    RunRecord,
    StateStore,
    StepRunRecord,
    WriteBatch,
)

_BATCH = 20_000


def big_workflow(steps: int) -> str:
    """The YAML of a chain of ``steps`` tasks then a foreach of one task."""
    lines = ["name: big", "steps:"]
    for i in range(steps):
        lines.append(f"  - id: s{i}\n    shell: 'true'")
        if i:
            lines.append(f"    needs: [s{i - 1}]")
    lines.append("  - id: segments")
    lines.append("    foreach: '${{ params.items }}'")
    if steps:
        lines.append(f"    needs: [s{steps - 1}]")
    lines.append("    steps:\n      - id: train\n        shell: 'true'")
    # What the step panel resolves when a task is read: an item, an upstream output.
    upstream = f", after: '${{{{ steps.s{steps - 1} }}}}'" if steps else ""
    lines.append(f"        inputs: {{segment: '${{{{ item.segment }}}}'{upstream}}}")
    return "name: big\nparams:\n  items: {type: list, default: []}\n" + "\n".join(lines[1:])


def _status(i: int, failed_every: int = 1000) -> StepStatus:
    if i % failed_every == 7 % failed_every:
        return StepStatus.FAILED
    if i % 97 == 3:
        return StepStatus.RUNNING
    if i % 89 == 5:
        return StepStatus.QUEUED
    if i % 83 == 1:
        return StepStatus.PENDING
    return StepStatus.SUCCEEDED


def build_big_run(
    store: StateStore,
    items: int,
    steps: int = 50,
    *,
    held_by: str | None = None,
    failed_every: int = 1000,
) -> str:
    """Write a run of ``steps`` chained tasks and a foreach of ``items`` items; its id. One
    item in ``failed_every`` failed.

    ``held_by`` names an engine holding the run's lease for a day, so that a server started
    on the same store leaves the synthetic run alone (its engine must not drive it)."""
    spec = load_yaml_text(big_workflow(steps), "big.yaml")
    digest = spec_hash(spec)
    run_id = uuid.uuid4().hex
    now = time.time()
    batch = WriteBatch()
    batch.definitions.append(DefinitionRecord(digest, "big", workflow_to_dict(spec), "", now))
    batch.runs.append(
        RunRecord(
            run_id,
            "big",
            digest,
            RunStatus.RUNNING,
            created_at=now,
            started_at=now,
            executor="inline",
            owner=held_by,
            lease_until=now + 86400 if held_by else None,
            labels={"by": "bench"},
        )
    )
    next_id = 1
    for i in range(steps):
        _task(batch, run_id, next_id, f"s{i}", f"s{i}", None, None, StepStatus.SUCCEEDED, now)
        next_id += 1
    container = next_id
    next_id += 1
    batch.insert_step_run(
        StepRunRecord(run_id, container, "segments", "segments", "foreach", StepStatus.RUNNING)
    )
    store.write(batch)
    batch = WriteBatch()
    for i in range(items):
        status = _status(i, failed_every)
        frame = next_id
        batch.insert_step_run(
            StepRunRecord(
                run_id,
                frame,
                f"segments[{i}]",
                "segments",
                "item",
                status,
                parent_id=container,
                index=i,
                item={"segment": f"seg-{i}"},
                created_at=now,
            )
        )
        path = f"segments[{i}].train"
        _task(batch, run_id, frame + 1, path, "train", frame, None, status, now)
        next_id += 2
        if len(batch.step_runs) >= _BATCH:
            store.write(batch)
            batch = WriteBatch()
    store.write(batch)
    return run_id


def _task(
    batch: WriteBatch,
    run_id: str,
    row_id: int,
    path: str,
    step_id: str,
    parent_id: int | None,
    index: int | None,
    status: StepStatus,
    now: float,
) -> None:
    started = status not in (StepStatus.PENDING, StepStatus.QUEUED)
    ended = status in (StepStatus.SUCCEEDED, StepStatus.FAILED)
    error = (
        {"type": "ValueError", "message": "bad segment"} if status is StepStatus.FAILED else None
    )
    batch.insert_step_run(
        StepRunRecord(
            run_id,
            row_id,
            path,
            step_id,
            "task",
            status,
            parent_id=parent_id,
            index=index,
            attempts=1 if started else 0,
            error=error,
            created_at=now,
            started_at=now if started else None,
            ended_at=now + 1.5 if ended else None,
        )
    )
    if not started:
        return
    attempt = "running" if status is StepStatus.RUNNING else status.value
    batch.insert_attempt(
        AttemptRecord(run_id, row_id, 1, attempt, now, now + 1.5 if ended else None, "w1", error)
    )
    if row_id % 50 == 0 or parent_id is None:
        for n in range(3):
            batch.logs.append(LogRecord(run_id, row_id, 1, now, "stdout", f"{path}: line {n}"))
        batch.metrics.append(MetricRecord(run_id, row_id, 1, "loss", 1.0 / row_id, now))


def main() -> None:
    """Build one big run in the store named by ``--db`` and print its id."""
    from kaon.store import open_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a store URL (sqlite:///... or postgresql)")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--failed-every", type=int, default=1000, help="one item in N failed")
    args = parser.parse_args()
    store = open_store(args.db)
    try:
        print(build_big_run(store, args.items, args.steps, failed_every=args.failed_every))
    finally:
        store.close()


if __name__ == "__main__":
    main()

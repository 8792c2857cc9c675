"""Counts by status are kept per state of a run: a change committed with an event is seen."""

from __future__ import annotations

import time
from pathlib import Path

from kaon.model.status import RunStatus, StepStatus
from kaon.service.run_reads import RunReads
from kaon.store import open_store
from kaon.store.base import EventRecord, RunRecord, StepRunRecord, WriteBatch

S = StepStatus


def test_counts_follow_the_runs_events(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/counts.db")
    try:
        batch = WriteBatch()
        batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.RUNNING, created_at=1.0))
        batch.insert_step_run(StepRunRecord("r1", 1, "each", "each", "foreach", S.RUNNING))
        for i in range(4):
            batch.insert_step_run(
                StepRunRecord("r1", 2 + i, f"each[{i}]", "each", "item", S.RUNNING, 1, i)
            )
        batch.events.append(EventRecord("r1", "run", 1.0))
        store.write(batch)
        reads = RunReads(store)
        assert reads.children("r1", "each").counts == {"running": 4}
        assert reads.summary("r1").nodes[0].children == {"running": 4}

        done = WriteBatch()
        done.update_step_run("r1", 3, status=S.SUCCEEDED)
        done.events.append(EventRecord("r1", "step", 2.0, step_run_id=3))
        store.write(done)
        assert reads.children("r1", "each").counts == {"running": 3, "succeeded": 1}
        assert reads.summary("r1").nodes[0].children == {"running": 3, "succeeded": 1}
        assert reads.page("r1").steps[0].children == {"running": 3, "succeeded": 1}
    finally:
        store.close()


def test_a_running_task_shows_its_last_progress_and_the_time_left(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/progress.db")
    try:
        now = time.time()
        batch = WriteBatch()
        batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.RUNNING, created_at=now))
        batch.insert_step_run(
            StepRunRecord("r1", 1, "train", "train", "task", S.RUNNING, started_at=now - 10)
        )
        for fraction in (0.1, 0.25):
            data = {"fraction": fraction, "message": f"epoch {fraction}", "attempt": 1}
            batch.events.append(EventRecord("r1", "progress", now, data, step_run_id=1))
        batch.events.append(EventRecord("r1", "log", now, {}, step_run_id=1))
        store.write(batch)
        progress = RunReads(store).step("r1", "train").progress
        assert progress is not None
        assert (progress.fraction, progress.message) == (0.25, "epoch 0.25")
        assert progress.eta_s is not None and 29 <= progress.eta_s <= 32  # 10 s for 25 %
    finally:
        store.close()


def test_an_items_task_shows_the_attempts_it_made_as_its_own_view_does(tmp_path: Path) -> None:
    """The items table said 1 attempt for a task that failed once and then succeeded (the
    row's count of failed attempts); ``GET /runs/R/step`` and ``kaon show`` said 2."""
    from kaon.store.base import AttemptRecord

    store = open_store(f"sqlite:///{tmp_path}/attempts.db")
    try:
        batch = WriteBatch()
        batch.runs.append(RunRecord("r1", "wf", "h", RunStatus.SUCCEEDED, created_at=1.0))
        batch.insert_step_run(StepRunRecord("r1", 1, "each", "each", "foreach", S.SUCCEEDED))
        batch.insert_step_run(StepRunRecord("r1", 2, "each[0]", "each", "item", S.SUCCEEDED, 1, 0))
        task = StepRunRecord("r1", 3, "each[0].score", "score", "task", S.SUCCEEDED, 2)
        task.attempts = 1  # one failed attempt
        batch.insert_step_run(task)
        batch.insert_attempt(AttemptRecord("r1", 3, 1, "failed", 1.0, 2.0))
        batch.insert_attempt(AttemptRecord("r1", 3, 2, "succeeded", 2.0, 3.0))
        batch.events.append(EventRecord("r1", "run", 1.0))
        store.write(batch)
        reads = RunReads(store)
        [row] = reads.children("r1", "each[0]").items
        assert row.attempts == 2 == reads.step("r1", "each[0].score").step.attempts
    finally:
        store.close()


def test_a_steps_panel_gets_its_last_metrics_and_a_cached_steps_reused_ones(
    tmp_path: Path,
) -> None:
    """The panel showed the first 1,000 values (its "last" loss was the 1,000th, a metric
    reported after them was missing, and nothing said so); a cached step showed none."""
    from kaon.service.run_reads import STEP_METRICS
    from kaon.store.base import MetricRecord

    store = open_store(f"sqlite:///{tmp_path}/metrics.db")
    try:
        batch = WriteBatch()
        for run in ("r1", "r2"):
            batch.runs.append(RunRecord(run, "wf", "h", RunStatus.SUCCEEDED, created_at=1.0))
            batch.events.append(EventRecord(run, "run", 1.0))
        batch.insert_step_run(StepRunRecord("r1", 1, "fit", "fit", "task", S.SUCCEEDED))
        cached = StepRunRecord("r2", 1, "fit", "fit", "task", S.CACHED)
        cached.cached_from = "r1:fit"
        batch.insert_step_run(cached)
        for epoch in range(1500):
            batch.metrics.append(MetricRecord("r1", 1, 1, "loss", 1.0 / (epoch + 1), 1.0, epoch))
        batch.metrics.append(MetricRecord("r1", 1, 1, "final_loss", 0.5, 2.0))
        store.write(batch)
        reads = RunReads(store)
        own = reads.step("r1", "fit")
        assert own.metrics_truncated and len(own.metrics) == STEP_METRICS
        assert own.metrics[-1].name == "final_loss"
        assert own.metrics[-2].name == "loss" and own.metrics[-2].value == 1.0 / 1500
        reused = reads.step("r2", "fit")
        assert [m.reused_from for m in reused.metrics[-1:]] == ["r1:fit"]
        assert reused.metrics[-1].name == "final_loss" and reused.metrics_truncated
    finally:
        store.close()

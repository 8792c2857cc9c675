"""Aggregates for ``/metrics``, computed in the database with indexed queries.

Counts by status read an index (``ix_runs_status_created``, ``ix_step_runs_metrics``).
The latency histogram is summed over a range of the attempts' end times (``ix_attempts_ended``
for retries; ``ix_step_runs_metrics`` for first attempts, which live in their step runs' rows),
so a reader can keep the sums of settled history and ask only for what ended since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kaon.model.status import StepStatus
from kaon.store import schema


@dataclass(slots=True)
class DurationSums:
    """A histogram of attempt durations: cumulative counts per upper bound, sum, count."""

    bounds: tuple[float, ...]
    buckets: list[float] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.buckets:
            self.buckets = [0.0] * len(self.bounds)

    def add(self, other: DurationSums) -> DurationSums:
        """The sums of both (same bounds)."""
        return DurationSums(
            self.bounds,
            [a + b for a, b in zip(self.buckets, other.buckets, strict=True)],
            self.total + other.total,
            self.count + other.count,
        )


def status_counts(conn: Connection) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """``(runs by status, task step runs by status)``, each one grouped index scan (``conn``
    from :meth:`SQLStore.reading`)."""
    runs, steps = schema.runs.c, schema.step_runs.c
    run_counts = conn.execute(sa.select(runs.status, sa.func.count()).group_by(runs.status))
    by_run = [(str(s), int(n)) for s, n in run_counts]
    tasks = sa.text(schema.TASK_ROWS)  # ix_step_runs_metrics' predicate, as a literal
    step_counts = conn.execute(
        sa.select(steps.status, sa.func.count()).where(tasks).group_by(steps.status)
    )
    by_step = [(str(s), int(n)) for s, n in step_counts]
    return by_run, by_step


def attempt_durations(
    conn: Connection, bounds: Sequence[float], start: float | None, end: float | None
) -> DurationSums:
    """The histogram of attempts that ended in ``[start, end)`` (open ends: unbounded):
    the retries' rows and the first attempts' columns of the step runs, each one indexed
    range."""
    a, s = schema.attempts.c, schema.step_runs.c
    sums = _durations(conn, bounds, start, end, a.started_at, a.ended_at)
    # First attempts are tasks' (ix_step_runs_metrics, partial on its literal predicate: one
    # range per status).
    tasks = (sa.text(schema.TASK_ROWS), s.status.in_([status.value for status in StepStatus]))
    return sums.add(
        _durations(conn, bounds, start, end, s.first_started_at, s.first_ended_at, *tasks)
    )


def _durations(
    conn: Connection,
    bounds: Sequence[float],
    start: float | None,
    end: float | None,
    started: sa.ColumnElement[float],
    ended: sa.ColumnElement[float],
    *where: sa.ColumnElement[bool] | sa.TextClause,
) -> DurationSums:
    duration = ended - started
    columns = [sa.func.sum(sa.case((duration <= bound, 1), else_=0)) for bound in bounds]
    stmt = sa.select(sa.func.count(), sa.func.sum(duration), *columns).where(
        *where, ended.is_not(None), started.is_not(None)
    )
    if start is not None:
        stmt = stmt.where(ended >= start)
    if end is not None:
        stmt = stmt.where(ended < end)
    row = conn.execute(stmt).one()
    return DurationSums(
        tuple(bounds),
        [float(row[2 + i] or 0) for i in range(len(bounds))],
        float(row[1] or 0.0),
        int(row[0] or 0),
    )

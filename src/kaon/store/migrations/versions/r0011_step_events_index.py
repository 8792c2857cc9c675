"""Indexes for the reads of one step's events and of a run's logs, metrics and failed tasks.

* ``ix_events_run_step`` (run, step run, id): a step's newest events (``step_events``, the
  progress shown in the step panel) without walking the run's whole event log;
* ``ix_logs_run`` (run, id): a run's log lines after an id (``kaon watch``, ``GET
  /runs/{id}/log`` without ``path``) in order, without sorting every line of the run;
* ``ix_metrics_run`` (run, id): a run's first metrics (``GET /runs/{id}``, ``kaon show``)
  without sorting every metric of the run;
* ``ix_step_runs_kind_status`` gains ``id``: the first failed tasks of every level (``kaon
  show``, ``--status failed --page N``) read in order from the index (PostgreSQL, like SQLite,
  then needs no sort of every failed task).

Revision ID: 0011_step_events_index
Revises: 0010_pools
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision: str = "0011_step_events_index"
down_revision: str | None = "0010_pools"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the indexes (and widen the step runs' kind and status index)."""
    op.create_index("ix_events_run_step", "events", ["run_id", "step_run_id", "id"])
    op.create_index("ix_logs_run", "logs", ["run_id", "id"])
    op.create_index("ix_metrics_run", "metrics", ["run_id", "id"])
    op.drop_index("ix_step_runs_kind_status", table_name="step_runs")
    op.create_index("ix_step_runs_kind_status", "step_runs", ["run_id", "kind", "status", "id"])


def downgrade() -> None:
    """Drop them (and narrow the step runs' index back)."""
    op.drop_index("ix_step_runs_kind_status", table_name="step_runs")
    op.create_index("ix_step_runs_kind_status", "step_runs", ["run_id", "kind", "status"])
    op.drop_index("ix_metrics_run", table_name="metrics")
    op.drop_index("ix_logs_run", table_name="logs")
    op.drop_index("ix_events_run_step", table_name="events")

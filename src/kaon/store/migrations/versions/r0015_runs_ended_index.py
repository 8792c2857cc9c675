"""The last run of a workflow to end in a status: ``ix_runs_workflow_status_ended``.

A strict-sequential workflow is blocked by a run that failed after its last unblock. That
was decided from the five failed runs created last: a run created before them, restarted
after an unblock (a restart goes straight to running) and failed again, was not among them,
and the workflow went on. The store now answers "which run of this workflow ended failed
last, after T" (:meth:`kaon.store.base.StateStore.last_ended_run`) from this index, whatever
the number of runs.

Revision ID: 0015_runs_ended_index
Revises: 0014_artifact_uses
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision: str = "0015_runs_ended_index"
down_revision: str | None = "0014_artifact_uses"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the index."""
    op.create_index(
        "ix_runs_workflow_status_ended", "runs", ["workflow", "status", "ended_at", "id"]
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_runs_workflow_status_ended", table_name="runs")

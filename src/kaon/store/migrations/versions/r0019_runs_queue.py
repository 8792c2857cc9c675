"""A workflow's run queue counted in two small partial indexes: ``ix_runs_waiting`` (its
pending unclaimed runs in claiming order) and ``ix_runs_claimed`` (its pending claimed ones).

A run strategy (``sequential``, ``strict_sequential``, ``first_only``, ``parallel`` with a
``concurrency``) admitted a pending run by reading its workflow's open runs, up to 10,000
rows, for each run it looked at: 110 ms for a workflow with 5,000 queued runs, at every
claiming pass. It now counts the workflow's active runs and the waiting runs ahead of the
run in claiming order, each up to the strategy's limit, as index ranges.

Revision ID: 0019_runs_queue
Revises: 0018_firings_by_workflow
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

WAITING = "status = 'pending' AND owner IS NULL"
CLAIMED = "status = 'pending' AND owner IS NOT NULL"

revision: str = "0019_runs_queue"
down_revision: str | None = "0018_firings_by_workflow"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the indexes."""
    waiting, claimed = sa.text(WAITING), sa.text(CLAIMED)
    op.create_index(
        "ix_runs_waiting",
        "runs",
        ["workflow", "priority", "created_at", "id"],
        sqlite_where=waiting,
        postgresql_where=waiting,
    )
    op.create_index(
        "ix_runs_claimed",
        "runs",
        ["workflow", "status", "id"],
        sqlite_where=claimed,
        postgresql_where=claimed,
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_runs_claimed", table_name="runs")
    op.drop_index("ix_runs_waiting", table_name="runs")

"""Indexes for reads that cost what they show (run summaries, pages of foreach items).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Index step runs by (run, kind, status) and (run, parent, status, index)."""
    op.create_index("ix_step_runs_kind_status", "step_runs", ["run_id", "kind", "status"])
    op.create_index(
        "ix_step_runs_parent_status", "step_runs", ["run_id", "parent_id", "status", "index"]
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_step_runs_parent_status", table_name="step_runs")
    op.drop_index("ix_step_runs_kind_status", table_name="step_runs")

"""Indexes for reads that must not grow with history: the engine's command poll (pending
commands only), /metrics counts and latency sums.

(The event feed's ordering needs no schema change: see :mod:`kaon.store.feed`.)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Index pending commands, task step runs by kind and status, attempts by end time."""
    pending = sa.text("done_at IS NULL")
    op.create_index(
        "ix_commands_pending",
        "commands",
        ["run_id"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_index("ix_step_runs_metrics", "step_runs", ["kind", "status"])
    op.create_index("ix_attempts_ended", "attempts", ["ended_at"])


def downgrade() -> None:
    """Drop the two indexes."""
    op.drop_index("ix_attempts_ended", table_name="attempts")
    op.drop_index("ix_step_runs_metrics", table_name="step_runs")
    op.drop_index("ix_commands_pending", table_name="commands")

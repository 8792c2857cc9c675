"""Why a firing started no run: ``trigger_firings.error``.

A backfill slot whose parameters failed to compute (a ``params`` expression over ``slot``
that fails for one date) stopped its backfill for good: every pass tried the slot again and
logged that the backfill waits. Such a slot is now skipped as a cron trigger's is, and its
firing is kept as dropped with the error, which ``kaon backfills`` shows; a firing dropped
because its parameters do not bind or its pool does not exist keeps its error too.

Revision ID: 0016_firing_errors
Revises: 0015_runs_ended_index
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016_firing_errors"
down_revision: str | None = "0015_runs_ended_index"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column (NULL for the firings of before)."""
    op.add_column("trigger_firings", sa.Column("error", sa.Text()))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("trigger_firings") as batch:
        batch.drop_column("error")

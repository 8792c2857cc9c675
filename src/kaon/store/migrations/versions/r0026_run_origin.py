"""``runs.origin``: who may drive a run ('' any engine serving the store, 'local' only a local
command: ``kaon.store.base.LOCAL_ORIGIN``).

A run a local ``kaon run`` created on a home a server also serves was claimed by the server's
engine before the local engine took its lease, and failed there (its file was never pushed:
the server has no copy of it). Engines serving the store now claim only runs of origin ''.
Existing runs get '' (as before: claimable).

Revision ID: 0026_run_origin
Revises: 0025_task_metrics_index
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0026_run_origin"
down_revision: str | None = "0025_task_metrics_index"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add runs.origin."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("origin", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop runs.origin."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("origin")

"""A workflow's trigger history: ``ix_trigger_firings_workflow``.

``kaon firings --workflow W`` and ``GET /triggers/firings?workflow=W`` list a workflow's
firings newest first (what fired, when, which run it started or why it started none); the
table had no index by workflow, so each page scanned every trigger's firings.

Revision ID: 0018_firings_by_workflow
Revises: 0017_run_deletion
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision: str = "0018_firings_by_workflow"
down_revision: str | None = "0017_run_deletion"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the index."""
    op.create_index("ix_trigger_firings_workflow", "trigger_firings", ["workflow", "id"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_trigger_firings_workflow", table_name="trigger_firings")

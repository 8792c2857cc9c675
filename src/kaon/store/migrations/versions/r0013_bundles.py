"""Pushed code bundles in the database, for every replica.

A pushed workflow file and the files beside it were kept only under the home of the server
that took the push (``<home>/sources/<digest>/``), and the stored definition named that
folder: a replica with a home of its own, sharing only the database and the artifact store,
failed every run it claimed of that version (``FileNotFoundError`` at the first step), and a
push of the same file through it made a new version. ``bundles`` keeps each bundle once, by
its folder's name; definitions name the folder by a path that is the same on every replica
(see :mod:`kaon.service.bundle_files`).

Revision ID: 0013_bundles
Revises: 0012_first_attempt
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0013_bundles"
down_revision: str | None = "0012_first_attempt"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_Time: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Create the bundles table."""
    op.create_table(
        "bundles",
        sa.Column("folder", sa.String(), primary_key=True),
        sa.Column("files", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    )


def downgrade() -> None:
    """Drop the bundles table."""
    op.drop_table("bundles")

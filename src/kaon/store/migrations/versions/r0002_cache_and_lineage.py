"""Memoization and lineage: cache entries and artifact records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Create the cache_entries and artifacts tables."""
    op.create_table(
        "cache_entries",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("step_run_id", sa.Integer(), nullable=False),
        sa.Column("outputs", _Json, nullable=False),
        sa.Column("components", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    )
    op.create_index("ix_cache_entries_step", "cache_entries", ["workflow", "step_id", "created_at"])
    op.create_table(
        "artifacts",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("step_run_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("output", sa.String(), nullable=False),
        sa.Column("serializer", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("type_name", sa.String(), nullable=False),
        sa.Column("item_index", sa.Integer()),
        sa.Column("inputs", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    )
    op.create_index("ix_artifacts_hash", "artifacts", ["hash"])
    op.create_index("ix_artifacts_run", "artifacts", ["run_id", "id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("artifacts")
    op.drop_table("cache_entries")

"""Signals: external events that start runs and wake waiting steps.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Create the signals table."""
    op.create_table(
        "signals",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("params", _Json, nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("source_run_id", sa.String()),
        sa.Column("dedupe_key", sa.String()),
    )
    op.create_index("ix_signals_name", "signals", ["name", "id"])
    op.create_index("ix_signals_at", "signals", ["at"])


def downgrade() -> None:
    """Drop it."""
    op.drop_table("signals")

"""Trigger state, trigger firings (de-duplication), backfills, alert deliveries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Create the trigger_state, trigger_firings, backfills and alert_deliveries tables."""
    op.create_table(
        "trigger_state",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", _Json, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
    )
    op.create_table(
        "trigger_firings",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("trigger_id", sa.String(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("params", _Json, nullable=False),
        sa.Column("labels", _Json, nullable=False),
        sa.Column("due_at", _Time, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    )
    op.create_index(
        "ux_trigger_firings_key", "trigger_firings", ["trigger_id", "dedupe_key"], unique=True
    )
    op.create_index("ix_trigger_firings_status", "trigger_firings", ["status", "trigger_id"])
    op.create_table(
        "backfills",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("cron", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("start_at", _Time, nullable=False),
        sa.Column("end_at", _Time, nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("params", _Json, nullable=False),
        sa.Column("slot_params", _Json, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("next_index", sa.Integer(), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.Column("by", sa.String(), nullable=False),
    )
    op.create_index("ix_backfills_status", "backfills", ["status", "created_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("run_id", sa.String()),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("payload", _Json, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _Time, nullable=False),
        sa.Column("response_code", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("delivered_at", _Time),
    )
    op.create_index(
        "ux_alert_deliveries_key", "alert_deliveries", ["dedupe_key", "url"], unique=True
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_alert_deliveries_run", "alert_deliveries", ["run_id", "id"])


def downgrade() -> None:
    """Drop them."""
    for table in ("alert_deliveries", "backfills", "trigger_firings", "trigger_state"):
        op.drop_table(table)

"""Workflow registry (workflows, versions), API tokens, audit trail.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Create the workflows, workflow_versions, tokens and audit tables."""
    op.create_table(
        "workflows",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("active_version", sa.Integer()),
        sa.Column("owner_group", sa.String()),
        sa.Column("properties", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("workflow", sa.String(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("definition_hash", sa.String(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_name", sa.String(), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
    )
    op.create_index(
        "ix_workflow_versions_hash", "workflow_versions", ["workflow", "definition_hash"]
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("hashed", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("groups", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("last_used_at", _Time),
        sa.Column("revoked_at", _Time),
    )
    op.create_index("ux_tokens_hashed", "tokens", ["hashed"], unique=True)
    op.create_table(
        "audit",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("at", _Time, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("data", _Json, nullable=False),
    )
    op.create_index("ix_audit_target", "audit", ["target", "id"])


def downgrade() -> None:
    """Drop them."""
    for table in ("audit", "tokens", "workflow_versions", "workflows"):
        op.drop_table(table)

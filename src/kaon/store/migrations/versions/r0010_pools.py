"""Pools, tag permits, holds of running attempts, run priorities.

* ``runs.priority``: dispatch order when attempts compete for slots;
* ``pools``: named slot and resource quotas;
* ``permits``: at most N attempts carrying a tag at once;
* ``holds``: what each running attempt takes of a pool or a permit.

Revision ID: 0010_pools
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010_pools"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_Time: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Add runs.priority and the pools, permits and holds tables."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "pools",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("cpus", sa.Double()),
        sa.Column("memory", sa.BigInteger()),
        sa.Column("gpus", sa.Double()),
        sa.Column("updated_at", _Time, nullable=False),
    )
    op.create_table(
        "permits",
        sa.Column("tag", sa.String(), primary_key=True),
        sa.Column("max", sa.Integer(), nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
    )
    op.create_table(
        "holds",
        sa.Column("run_id", sa.String(), primary_key=True),
        sa.Column("step_path", sa.String(), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("grp", sa.String(), nullable=False),
        sa.Column("cpus", sa.Double(), nullable=False),
        sa.Column("memory", sa.BigInteger(), nullable=False),
        sa.Column("gpus", sa.Double(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    )
    op.create_index("ix_holds_limit", "holds", ["kind", "name"])


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    op.drop_index("ix_holds_limit", table_name="holds")
    op.drop_table("holds")
    op.drop_table("permits")
    op.drop_table("pools")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("priority")

"""The initial schema: definitions, runs, step runs, attempts, logs, metrics, events, commands.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the column types as they were at this revision (never import the live
# schema into a migration: it moves on, a revision must not).
_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "definitions",
        sa.Column("hash", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("spec", _Json, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    )
    op.create_index("ix_definitions_name", "definitions", ["name"])

    op.create_table(
        "runs",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("definition_hash", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("params", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("started_at", _Time),
        sa.Column("ended_at", _Time),
        sa.Column("error", sa.Text()),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("executor", sa.String(), nullable=False),
        sa.Column("owner", sa.String()),
        sa.Column("lease_until", _Time),
        sa.Column("labels", _Json, nullable=False),
    )
    op.create_index("ix_runs_workflow_created", "runs", ["workflow", "created_at"])
    op.create_index("ix_runs_created", "runs", ["created_at"])
    op.create_index("ix_runs_status_created", "runs", ["status", "created_at"])

    op.create_table(
        "step_runs",
        sa.Column("run_id", sa.String(), primary_key=True),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("parent_id", sa.Integer()),
        sa.Column("index", sa.Integer()),
        sa.Column("item", _Json),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("platform_attempts", sa.Integer(), nullable=False),
        sa.Column("outputs", _Json),
        sa.Column("error", _Json),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("started_at", _Time),
        sa.Column("ended_at", _Time),
        sa.Column("next_attempt_at", _Time),
        sa.Column("cache_key", sa.String()),
        sa.Column("cached_from", sa.String()),
    )
    op.create_index("ix_step_runs_parent_index", "step_runs", ["run_id", "parent_id", "index"])
    op.create_index("ux_step_runs_path", "step_runs", ["run_id", "path"], unique=True)

    op.create_table(
        "attempts",
        sa.Column("run_id", sa.String(), primary_key=True),
        sa.Column("step_run_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("started_at", _Time),
        sa.Column("ended_at", _Time),
        sa.Column("worker", sa.String(), nullable=False),
        sa.Column("error", _Json),
    )

    op.create_table(
        "logs",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("step_run_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("stream", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_index("ix_logs_run_step", "logs", ["run_id", "step_run_id", "id"])

    op.create_table(
        "metrics",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("step_run_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("step", sa.Integer()),
    )
    op.create_index("ix_metrics_run_step", "metrics", ["run_id", "step_run_id", "id"])

    op.create_table(
        "events",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("step_run_id", sa.Integer()),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("data", _Json, nullable=False),
    )
    op.create_index("ix_events_run", "events", ["run_id", "id"])

    op.create_table(
        "commands",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("done_at", _Time),
    )
    op.create_index("ix_commands_run_done", "commands", ["run_id", "done_at"])


def downgrade() -> None:
    """Drop everything this revision created."""
    for table in (
        "commands",
        "events",
        "metrics",
        "logs",
        "attempts",
        "step_runs",
        "runs",
        "definitions",
    ):
        op.drop_table(table)

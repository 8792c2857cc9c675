"""Which step attempts read a blob: ``artifact_uses``, read by hash.

``kaon lineage``'s "used by" listed only the steps that stored a blob of their own from it
(an artifact row names its inputs), found by reading every artifact row of the store and
filtering them in Python: a step that read a model and returned an inline score was not
listed, and each lineage read cost a scan of all artifacts. Each attempt that succeeds now
records a row per blob it read, with the blobs it stored; this revision fills the table from
the inputs the artifact rows already name.

Revision ID: 0014_artifact_uses
Revises: 0013_bundles
Create Date: 2026-12-05
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0014_artifact_uses"
down_revision: str | None = "0013_bundles"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_Time: sa.Double[float] = sa.Double()
_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 5_000


def upgrade() -> None:
    """Create the table and its index, and fill it from the artifacts' recorded inputs."""
    uses = op.create_table(
        "artifact_uses",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("step_run_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outputs", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    )
    op.create_index("ix_artifact_uses_hash", "artifact_uses", ["hash", "id"])
    artifacts = sa.table(
        "artifacts",
        sa.column("id", sa.Integer()),
        sa.column("hash", sa.String()),
        sa.column("run_id", sa.String()),
        sa.column("step_run_id", sa.Integer()),
        sa.column("path", sa.String()),
        sa.column("output", sa.String()),
        sa.column("attempt", sa.Integer()),
        sa.column("inputs", _Json),
        sa.column("created_at", _Time),
    )
    connection = op.get_bind()
    # One use per (attempt, blob read), with every blob that attempt stored from its inputs.
    # An attempt's artifact rows are written in one transaction, so their ids are adjacent:
    # the rows are grouped as they stream by, never all held at once.
    attempt: tuple[str, int, int] | None = None
    uses_of_attempt: dict[str, dict[str, Any]] = {}
    pending: list[dict[str, Any]] = []
    query = sa.select(artifacts).order_by(artifacts.c.id)
    for row in connection.execute(query).mappings():
        key = (row["run_id"], row["step_run_id"], row["attempt"])
        if key != attempt:
            pending.extend(uses_of_attempt.values())
            attempt, uses_of_attempt = key, {}
            if len(pending) >= _BATCH:
                connection.execute(sa.insert(uses), pending)
                pending = []
        for source in row["inputs"] or []:
            use = uses_of_attempt.setdefault(
                source,
                {
                    "hash": source,
                    "run_id": row["run_id"],
                    "step_run_id": row["step_run_id"],
                    "path": row["path"],
                    "attempt": row["attempt"],
                    "outputs": [],
                    "created_at": row["created_at"],
                },
            )
            use["outputs"].append([row["output"], row["hash"]])
    pending.extend(uses_of_attempt.values())
    if pending:
        connection.execute(sa.insert(uses), pending)


def downgrade() -> None:
    """Drop the table."""
    op.drop_index("ix_artifact_uses_hash", table_name="artifact_uses")
    op.drop_table("artifact_uses")

"""A step run's first attempt folded into its row; two indexes fewer per chain step.

Most steps succeed at their first attempt; until now each one cost a row of ``attempts``
(and its two indexes) besides its step run, inserted with the step and updated at its end:
about a fifth of the pages a chain step's commit writes. The first attempt is now five
columns of ``step_runs`` (``first_status``, ``first_started_at``, ``first_ended_at``,
``first_worker``, ``first_error``); rows of ``attempts`` are the retries (numbers 2 and up).

* ``ix_step_runs_metrics`` gains ``first_ended_at``: ``/metrics``' latency histogram reads the
  first attempts that ended in a range from it (one range per status), as it reads the
  retries from ``ix_attempts_ended``;
* ``ix_step_runs_parent_index`` is partial (``parent_id IS NOT NULL``): its reads all name a
  parent, so top-level steps need no entry.

The upgrade moves every attempt numbered 1 into its step run's row; the downgrade moves
them back.

Revision ID: 0012_first_attempt
Revises: 0011_step_events_index
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0012_first_attempt"
down_revision: str | None = "0011_step_events_index"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_FIELDS = ("status", "started_at", "ended_at", "worker", "error")
_CHILD = sa.text("parent_id IS NOT NULL")


def upgrade() -> None:
    """Add the columns and move the first attempts into them; remake the two indexes."""
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("first_status", sa.String()))
        batch.add_column(sa.Column("first_started_at", sa.Double()))
        batch.add_column(sa.Column("first_ended_at", sa.Double()))
        batch.add_column(sa.Column("first_worker", sa.String()))
        batch.add_column(sa.Column("first_error", _Json))
    sets = ", ".join(f"first_{name} = a.{name}" for name in _FIELDS)
    op.execute(
        f"UPDATE step_runs SET {sets} FROM attempts a WHERE a.run_id = step_runs.run_id "
        "AND a.step_run_id = step_runs.id AND a.number = 1"
    )
    op.execute("DELETE FROM attempts WHERE number = 1")
    _indexes(["kind", "status", "first_ended_at"], _CHILD)


def downgrade() -> None:
    """Move the first attempts back to ``attempts``; the indexes as they were; drop the
    columns."""
    op.execute(
        f"INSERT INTO attempts (run_id, step_run_id, number, {', '.join(_FIELDS)}) "
        f"SELECT run_id, id, 1, first_status, first_started_at, first_ended_at, "
        f"COALESCE(first_worker, ''), first_error FROM step_runs WHERE first_status IS NOT NULL"
    )
    _indexes(["kind", "status"], None)
    with op.batch_alter_table("step_runs") as batch:
        for name in _FIELDS:
            batch.drop_column(f"first_{name}")


def _indexes(metrics: list[str], children: sa.TextClause | None) -> None:
    """Make the metrics index on ``metrics`` and the parent index partial on ``children``."""
    op.drop_index("ix_step_runs_metrics", table_name="step_runs")
    op.create_index("ix_step_runs_metrics", "step_runs", metrics)
    op.drop_index("ix_step_runs_parent_index", table_name="step_runs")
    op.create_index(
        "ix_step_runs_parent_index",
        "step_runs",
        ["run_id", "parent_id", "index"],
        sqlite_where=children,
        postgresql_where=children,
    )

"""``/metrics``' index of step runs holds tasks only: ``ix_step_runs_metrics`` becomes
(status, first_ended_at) WHERE kind = 'task'.

Its two reads (tasks by status; the first attempts that ended in a range, one range per
status) both ask for tasks, yet every step run had an entry, and each status change of a
container or a frame (a foreach's item row: running, then its end) moved it. Now those rows
write no entry, and the entries of tasks are smaller (no ``kind``).

Revision ID: 0025_task_metrics_index
Revises: 0024_top_level_index
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa

from kaon.store.migrations import online

revision: str = "0025_task_metrics_index"
down_revision: str | None = "0024_top_level_index"
branch_labels: str | None = None
depends_on: str | None = None

_TASKS = sa.text("kind = 'task'")


def upgrade() -> None:
    """Remake the index over tasks only."""
    online.remake_index("ix_step_runs_metrics", "step_runs", ["status", "first_ended_at"], _TASKS)


def downgrade() -> None:
    """Back to 0024's: every step run, keyed by kind first."""
    online.remake_index("ix_step_runs_metrics", "step_runs", ["kind", "status", "first_ended_at"])

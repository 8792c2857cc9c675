"""A top-level step's status changes move no parent index entry.

Until now ``ix_step_runs_parent_status`` (run, parent, status, index) held every step run and
``ix_step_runs_parent_index`` (run, parent, index) only a container's children. A top-level
step (every step of a chain) changes status twice (running, then its end), and each change
moved its entry of the status index: a delete and an insert, about 2.4 of the 16.4 pages a
chain step's commit writes. Now the status index is partial (``parent_id IS NOT NULL``: the
reads by status name a parent) and the parent index holds every step run: a top-level
step's entry there (parent and index NULL) is written once and never moves. The run's top
level is read from that range (a few rows per step of the graph), filtered by status.

Revision ID: 0024_top_level_index
Revises: 0023_audit_token
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa

from kaon.store.migrations import online

revision: str = "0024_top_level_index"
down_revision: str | None = "0023_audit_token"
branch_labels: str | None = None
depends_on: str | None = None

_CHILD = sa.text("parent_id IS NOT NULL")
_PARENT_INDEX = ["run_id", "parent_id", "index"]
_PARENT_STATUS = ["run_id", "parent_id", "status", "index"]


def upgrade() -> None:
    """The parent index over every step run; the status one over children only."""
    _remake("ix_step_runs_parent_index", _PARENT_INDEX, None)
    _remake("ix_step_runs_parent_status", _PARENT_STATUS, _CHILD)


def downgrade() -> None:
    """Back to 0020's: the parent index over children, the status one over every step run."""
    _remake("ix_step_runs_parent_status", _PARENT_STATUS, None)
    _remake("ix_step_runs_parent_index", _PARENT_INDEX, _CHILD)


def _remake(name: str, columns: list[str], where: sa.TextClause | None) -> None:
    online.remake_index(name, "step_runs", columns, where)

"""Deleting runs: the indexes that find a run's rows in every table it has rows in.

``kaon gc --runs-older-than``, ``kaon runs delete`` and ``DELETE /runs/{id}`` delete a run's
rows table by table in bounded chunks (:mod:`kaon.store.deletion`). ``cache_entries`` and
``artifact_uses`` had no index by run: each chunk would have scanned the whole table. A
deleted run's blobs are handed to the step runs that reused them from the cache (their
``cached_from`` names the run), found by a partial index that only cache hits enter.

Revision ID: 0017_run_deletion
Revises: 0016_firing_errors
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017_run_deletion"
down_revision: str | None = "0016_firing_errors"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the indexes."""
    op.create_index("ix_cache_entries_run", "cache_entries", ["run_id", "key"])
    op.create_index("ix_artifact_uses_run", "artifact_uses", ["run_id", "id"])
    cached = sa.text("cached_from IS NOT NULL")
    op.create_index(
        "ix_step_runs_cached_from",
        "step_runs",
        ["cached_from", "run_id", "id"],
        sqlite_where=cached,
        postgresql_where=cached,
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_step_runs_cached_from", table_name="step_runs")
    op.drop_index("ix_artifact_uses_run", table_name="artifact_uses")
    op.drop_index("ix_cache_entries_run", table_name="cache_entries")

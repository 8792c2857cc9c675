"""Tables of multi-tenancy: pools, tag permits and the holds of running attempts.

Defined on the same :data:`kaon.store.schema.metadata` as the core tables; created by
Alembic revision 0010_pools. A *hold* is one row per (attempt, limit) that an attempt takes:
one for its pool when that pool has a row, one per tag that has a permit. Holds are claimed
under a lock on the limit rows (:meth:`kaon.store.sql.SQLStore.claim_holds`) and deleted in
the write that records the attempt's end.
"""

from __future__ import annotations

import sqlalchemy as sa

from kaon.store.schema import Time, metadata

pools = sa.Table(
    "pools",
    metadata,
    sa.Column("name", sa.String(), primary_key=True),
    sa.Column("slots", sa.Integer(), nullable=False),  # attempts running at once
    sa.Column("cpus", sa.Double()),  # NULL: no quota on that resource
    sa.Column("memory", sa.BigInteger()),
    sa.Column("gpus", sa.Double()),
    sa.Column("updated_at", Time, nullable=False),
)

permits = sa.Table(
    "permits",
    metadata,
    sa.Column("tag", sa.String(), primary_key=True),
    sa.Column("max", sa.Integer(), nullable=False),  # attempts carrying the tag at once
    sa.Column("updated_at", Time, nullable=False),
)

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("run_id", sa.String(), primary_key=True),
    sa.Column("step_path", sa.String(), primary_key=True),
    sa.Column("attempt", sa.Integer(), primary_key=True),
    sa.Column("kind", sa.String(), primary_key=True),  # "pool" or "tag"
    sa.Column("name", sa.String(), primary_key=True),  # the pool's name or the tag
    sa.Column("grp", sa.String(), nullable=False),  # the run's owner group ("" for none)
    sa.Column("cpus", sa.Double(), nullable=False),
    sa.Column("memory", sa.BigInteger(), nullable=False),
    sa.Column("gpus", sa.Double(), nullable=False),
    sa.Column("owner", sa.String(), nullable=False),  # the engine that claimed it
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_holds_limit", "kind", "name"),
)

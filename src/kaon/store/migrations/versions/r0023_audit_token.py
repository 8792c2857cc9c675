"""The audit trail by token: ``audit.token_id`` and ``ix_audit_token`` (``token_id, id``).

Each audit entry a token made named the token's id in its JSON ``data`` only, so the trail
could be filtered by the actor's name (not unique: two live ``ci`` tokens while a secret
rolls over) but not by the token. The id now has a column of its own, filled in from the
entries written before, and an index: ``GET /audit?token_id=`` and ``kaon audit
--token-id`` read a range of it.

Revision ID: 0023_audit_token
Revises: 0022_firings_expiry
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kaon.store.migrations import online

revision: str = "0023_audit_token"
down_revision: str | None = "0022_firings_expiry"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column, fill it in from each entry's ``data`` (in batches of ids, each
    committed on its own on PostgreSQL), index it (concurrently on PostgreSQL)."""
    op.add_column("audit", sa.Column("token_id", sa.String(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        found = "data->>'token_id'"
    else:
        found = "json_extract(data, '$.token_id')"
    online.update_in_batches(
        "audit", f"token_id = {found}", f"token_id IS NULL AND {found} IS NOT NULL"
    )
    online.create_index("ix_audit_token", "audit", ["token_id", "id"])


def downgrade() -> None:
    """Drop them."""
    online.drop_index("ix_audit_token", "audit")
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("token_id")

"""Token expiry, signal scopes, idempotency keys.

* ``tokens.expires_at``: a token stops working after it (NULL: never);
* ``signals.scope``: the owner groups a signal may reach (NULL: every workflow), set from
  the groups of the token that sent it;
* ``idempotency_keys``: the first answer to a request sent with an ``Idempotency-Key``
  header, replayed to a retry of the same request.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_Time: sa.Double[float] = sa.Double()


def upgrade() -> None:
    """Add tokens.expires_at, signals.scope and the idempotency_keys table."""
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("expires_at", _Time))
    with op.batch_alter_table("signals") as batch:
        batch.add_column(sa.Column("scope", _Json))
    op.create_table(
        "idempotency_keys",
        sa.Column("actor", sa.String(), primary_key=True),
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("request_hash", sa.String(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", _Json, nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("scope")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("expires_at")

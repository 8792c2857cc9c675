"""``ix_tokens_created`` (created_at, id): the order the token list pages in.

``GET /tokens`` (and ``kaon token list``) read tokens oldest first, a page after a keyset
``created_at, id``; with no index in that order, every page read and sorted the whole tokens
table (revoked and expired tokens stay in it), so a page cost what the table held. A page is
now a range of the index, read in its order.

Revision ID: 0027_tokens_created_index
Revises: 0026_run_origin
Create Date: 2026-12-05
"""

from __future__ import annotations

from kaon.store.migrations import online

revision: str = "0027_tokens_created_index"
down_revision: str | None = "0026_run_origin"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the index of the token list's order."""
    online.create_index("ix_tokens_created", "tokens", ["created_at", "id"])


def downgrade() -> None:
    """Drop it."""
    online.drop_index("ix_tokens_created", "tokens")

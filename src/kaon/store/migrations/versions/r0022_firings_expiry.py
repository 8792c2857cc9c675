"""The firings retention may delete, oldest first: ``ix_trigger_firings_expiry``
(``created_at`` of the firings that are neither claimed, nor a data trigger's, nor a backfill's
whose run is not known finished).

The server's retention (``kaon server --retention AGE``) deleted runs but never their
trigger firings, so the table grew by one row per cron slot, signal and backfill slot for
good. A retention pass now deletes a batch of those older than AGE, a range of this index;
the firings it must keep (claimed ones, data triggers' paths, a backfill's open runs) are
not in it, so they are
never read again by a pass.

Revision ID: 0022_firings_expiry
Revises: 0021_user_values_as_json
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa

from kaon.store.migrations import online

EXPIRES = (
    "status <> 'claimed' AND trigger_id NOT LIKE '%:data:%' "
    "AND (status <> 'created' OR trigger_id NOT LIKE 'backfill:%')"
)

revision: str = "0022_firings_expiry"
down_revision: str | None = "0021_user_values_as_json"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the index."""
    online.create_index(
        "ix_trigger_firings_expiry", "trigger_firings", ["created_at"], sa.text(EXPIRES)
    )


def downgrade() -> None:
    """Drop it."""
    online.drop_index("ix_trigger_firings_expiry", "trigger_firings")

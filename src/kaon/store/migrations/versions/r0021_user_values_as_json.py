"""A user's values keep their key order on PostgreSQL: ``json``, not ``jsonb``, for run
parameters, step outputs and items, cached outputs, a workflow's spec, signal and command
payloads, and trigger parameters.

``jsonb`` stores an object's keys in its own order (shorter keys first), so a step
iterating a mapping parameter (``{"zeta": 1, "a": 2}``) saw another order on PostgreSQL
than on SQLite, and than the user gave. ``json`` keeps the text as written. No statement
reads inside these documents (a search casts them to text). SQLite is unchanged (its JSON
is the text the store wrote).

Revision ID: 0021_user_values_as_json
Revises: 0020_runs_claim_order
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kaon.errors import StoreError
from kaon.store.migrations import online

revision: str = "0021_user_values_as_json"
down_revision: str | None = "0020_runs_claim_order"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = (
    ("definitions", "spec"),
    ("runs", "params"),
    ("step_runs", "item"),
    ("step_runs", "outputs"),
    ("commands", "payload"),
    ("cache_entries", "outputs"),
    ("signals", "params"),
    ("trigger_firings", "params"),
    ("backfills", "params"),
    ("backfills", "slot_params"),
)

KEYS = {  # each table's primary key, to name a row in a message
    "definitions": ("hash",),
    "runs": ("id",),
    "step_runs": ("run_id", "id"),
    "commands": ("id",),
    "cache_entries": ("key",),
    "signals": ("id",),
    "trigger_firings": ("id",),
    "backfills": ("id",),
}
# The JSON escape \u0000 (not preceded by an escaped backslash): json keeps it, jsonb refuses.
NUL_ESCAPE = r"(^|[^\\])(\\\\)*\\u0000"


def _retype(kind: str) -> None:
    """Each table rewritten once (all its columns in one statement), committed on its own
    (see :func:`kaon.store.migrations.online.retype_columns`)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    tables: dict[str, list[str]] = {}
    for table, column in COLUMNS:
        tables.setdefault(table, []).append(column)
    for table, columns in tables.items():
        online.retype_columns(table, columns, kind)


def upgrade() -> None:
    """The columns become ``json`` on PostgreSQL (a rewrite of each table: the order of
    rows written before is jsonb's, as it was)."""
    _retype("json")


def downgrade() -> None:
    """Back to ``jsonb``; refused (before any change) when a value written since holds a
    character ``jsonb`` cannot store."""
    if op.get_bind().dialect.name == "postgresql":
        _refuse_what_jsonb_cannot_hold()
    _retype("jsonb")


def _refuse_what_jsonb_cannot_hold() -> None:
    """Raise :class:`StoreError` naming the first row whose value holds ``\\u0000`` (a NUL
    character in a string: json keeps it, jsonb refuses it, and the ALTER would fail on
    that table halfway through the downgrade)."""
    bind = op.get_bind()
    for table, column in COLUMNS:
        key = KEYS[table]
        found = bind.execute(
            sa.text(
                f"SELECT {', '.join(key)} FROM {table} "
                f'WHERE CAST("{column}" AS TEXT) ~ :pattern LIMIT 1'
            ),
            {"pattern": NUL_ESCAPE},
        ).first()
        if found is not None:
            row = ", ".join(f"{name}={value!r}" for name, value in zip(key, found, strict=True))
            raise StoreError(
                f"cannot downgrade below revision {revision}: {table}.{column} of the row "
                f"{row} holds the JSON escape \\u0000 (a NUL character), which jsonb "
                "(revision 0020) cannot store; change or delete that row, then downgrade"
            )

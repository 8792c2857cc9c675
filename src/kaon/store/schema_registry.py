"""Tables of the workflow registry, API tokens and the audit trail (the server's).

Defined on the same :data:`kaon.store.schema.metadata` as the core tables; created by
Alembic revision 0004. Conventions as in :mod:`kaon.store.schema` (epoch-second times, JSON
documents, autoincrement ids).
"""

from __future__ import annotations

import sqlalchemy as sa

from kaon.store.schema import AutoId, Json, Time, metadata

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("name", sa.String(), primary_key=True),
    # The version new runs use; NULL while the workflow is deactivated.
    sa.Column("active_version", sa.Integer()),
    sa.Column("owner_group", sa.String()),
    # What is not the graph: run_strategy, concurrency, alerts, ... (no new version).
    sa.Column("properties", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column("workflow", sa.String(), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("definition_hash", sa.String(), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("source_name", sa.String(), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("created_by", sa.String(), nullable=False),
    sa.Index("ix_workflow_versions_hash", "workflow", "definition_hash"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("hashed", sa.String(), nullable=False),
    sa.Column("role", sa.String(), nullable=False),
    sa.Column("groups", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("last_used_at", Time),
    sa.Column("revoked_at", Time),
    sa.Column("expires_at", Time),  # NULL: never expires
    sa.Index("ux_tokens_hashed", "hashed", unique=True),
    sa.Index("ix_tokens_created", "created_at", "id"),  # the token list's pages, in order
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    # Keys are per caller (the token's id): two callers' keys never meet.
    sa.Column("actor", sa.String(), primary_key=True),
    sa.Column("key", sa.String(), primary_key=True),
    sa.Column("request_hash", sa.String(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("response", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_idempotency_keys_created", "created_at"),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("at", Time, nullable=False),
    sa.Column("actor", sa.String(), nullable=False),
    sa.Column("action", sa.String(), nullable=False),
    sa.Column("target", sa.String(), nullable=False),
    sa.Column("data", Json, nullable=False),
    # The id of the token that acted (also in ``data``), NULL for other actors: the trail
    # of one token (``GET /audit?token_id=``).
    sa.Column("token_id", sa.String()),
    sa.Index("ix_audit_target", "target", "id"),
    sa.Index("ix_audit_token", "token_id", "id"),
)

bundles = sa.Table(
    "bundles",
    metadata,
    # A pushed file and the files beside it (kaon.service.bundle), by the name of the folder
    # a server keeps them in (the start of their digest): every replica that runs a version
    # writes them out from here when its own home does not have them.
    sa.Column("folder", sa.String(), primary_key=True),
    sa.Column("files", Json, nullable=False),  # {file name: text}
    sa.Column("created_at", Time, nullable=False),
)

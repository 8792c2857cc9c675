"""The SQL tables of the state store (SQLAlchemy Core), in one place.

This module is the *current* shape of the schema; the Alembic revisions under
``kaon/store/migrations/versions`` are how a database reaches it. A unit test checks that the
migrated database and these tables agree, so change both together (add a revision).

Conventions: times are epoch seconds (double precision); dict-valued fields are JSON (JSONB on
PostgreSQL); statuses are the enum's ``.value``; step runs and attempts are keyed per run with
ids the engine allocates; logs, metrics, events and commands get autoincrement ids.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

# Alembic's version table. Not the default ``alembic_version`` so that Kaon can share a
# PostgreSQL database (or schema) with other applications that use Alembic.
from kaon.store._lite import VERSION_TABLE as VERSION_TABLE

metadata = sa.MetaData()


class JsonType(sa.types.TypeDecorator[Any]):
    """JSON documents, JSONB on PostgreSQL; SQL NULL for Python None.

    A type decorator rather than ``JSON().with_variant(JSONB(), "postgresql")`` so that the
    PostgreSQL dialect (a tenth of the store's import time) is imported only to talk to
    PostgreSQL."""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))


class _JsonValue(JsonType):
    """A user's value (run parameters, step outputs, a workflow's constants): JSON, ``json``
    on PostgreSQL, which keeps the document's text as written, as SQLite does. ``jsonb``
    keeps keys in its own order (shorter keys first), so a step iterating a mapping
    parameter saw ``{"zeta": 1, "a": 2}`` as ``{"a": 2, "zeta": 1}`` on PostgreSQL only.
    Nothing in SQL reads inside these documents (a search casts them to text)."""

    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSON

            return dialect.type_descriptor(JSON(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))


# JSON documents; SQL NULL for Python None.
Json = JsonType()
# A user's value, its key order kept on every backend (see _JsonValue).
JsonValue = _JsonValue()
# Autoincrement ids: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time: sa.Double[float] = sa.Double()

definitions = sa.Table(
    "definitions",
    metadata,
    sa.Column("hash", sa.String(), primary_key=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("spec", JsonValue, nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_definitions_name", "name"),
)

# The predicates of the queue's partial indexes; a query uses one only when its WHERE says
# the same with these literals (kaon.store._queries: _queue_place).
RUN_WAITING = "status = 'pending' AND owner IS NULL"
RUN_CLAIMED = "status = 'pending' AND owner IS NOT NULL"
# The predicate of the claiming order's partial index: the runs not finished (pending,
# running, paused). Said as NOT IN the finished statuses, which no other index of ``status``
# can seek by: SQLite, without statistics, would otherwise read every open run through
# ix_runs_status_created and sort them (kaon.store._queries: _claimable_runs).
RUN_OPEN = "status NOT IN ('cancelled', 'failed', 'succeeded')"
# The predicate of /metrics' partial index of step runs: tasks, the only rows with attempts
# (kaon.store.stats says it with this literal, so that both databases use the index).
TASK_ROWS = "kind = 'task'"

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("workflow", sa.String(), nullable=False),
    sa.Column("definition_hash", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("params", JsonValue, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("started_at", Time),
    sa.Column("ended_at", Time),
    sa.Column("error", sa.Text()),
    sa.Column("restarts", sa.Integer(), nullable=False),
    sa.Column("executor", sa.String(), nullable=False),
    sa.Column("owner", sa.String()),
    sa.Column("lease_until", Time),
    sa.Column("labels", Json, nullable=False),
    # Incremented on every takeover; every write of the holder is fenced by it.
    sa.Column("lease_epoch", sa.Integer(), nullable=False, server_default="0"),
    # Dispatch order when attempts compete for slots (kaon.model.tenancy).
    sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
    # Who may drive it: '' any engine serving the store, 'local' only a local command
    # (kaon.store.base.LOCAL_ORIGIN).
    sa.Column("origin", sa.String(), nullable=False, server_default=""),
    sa.Index("ix_runs_workflow_created", "workflow", "created_at"),
    sa.Index("ix_runs_created", "created_at"),
    sa.Index("ix_runs_status_created", "status", "created_at"),
    # The last run of a workflow to end in a status (a strict-sequential workflow's last
    # failure), whatever the number of its runs (kaon.triggers.strategies).
    sa.Index("ix_runs_workflow_status_ended", "workflow", "status", "ended_at", "id"),
    # A workflow's queue for its run strategy (kaon.triggers.strategies): its waiting runs
    # (pending, unclaimed) in claiming order, and its claimed pending ones, each in a partial
    # index holding only those (a few rows where a workflow has thousands of finished runs).
    sa.Index(
        "ix_runs_waiting",
        "workflow",
        "priority",
        "created_at",
        "id",
        sqlite_where=sa.text(RUN_WAITING),
        postgresql_where=sa.text(RUN_WAITING),
    ),
    sa.Index(
        "ix_runs_claimed",
        "workflow",
        "status",
        "id",
        sqlite_where=sa.text(RUN_CLAIMED),
        postgresql_where=sa.text(RUN_CLAIMED),
    ),
)
# The open runs in claiming order (``kaon.store.base.claim_key``: higher priority first, then
# oldest): an engine's claiming pass reads its pages as ranges of it, however long the backlog
# and the history (kaon.store._queries: _claimable_runs).
sa.Index(
    "ix_runs_claim",
    runs.c.priority.desc(),
    runs.c.created_at,
    runs.c.id,
    sqlite_where=sa.text(RUN_OPEN),
    postgresql_where=sa.text(RUN_OPEN),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("run_id", sa.String(), primary_key=True),
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("path", sa.String(), nullable=False),
    sa.Column("step_id", sa.String(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("parent_id", sa.Integer()),
    sa.Column("index", sa.Integer()),
    sa.Column("item", JsonValue),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("platform_attempts", sa.Integer(), nullable=False),
    sa.Column("outputs", JsonValue),
    sa.Column("error", Json),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("started_at", Time),
    sa.Column("ended_at", Time),
    sa.Column("next_attempt_at", Time),
    sa.Column("cache_key", sa.String()),
    sa.Column("cached_from", sa.String()),
    # The step run's first attempt, folded into its row: a step that succeeds at once (most
    # steps) writes no row of `attempts`, whose rows are its retries (kaon.store._rows,
    # FIRST_ATTEMPT). NULL until it starts.
    sa.Column("first_status", sa.String()),
    sa.Column("first_started_at", Time),
    sa.Column("first_ended_at", Time),
    sa.Column("first_worker", sa.String()),
    sa.Column("first_error", Json),
    # A container's children by index, and a run's top level (parent_id NULL, index NULL).
    # A top-level step's entry never moves: a status change (two per chain step) rewrites
    # no entry of it, as it would of an index keyed by status.
    sa.Index("ix_step_runs_parent_index", "run_id", "parent_id", "index"),
    sa.Index("ux_step_runs_path", "run_id", "path", unique=True),
    # Reads that cost what they show (kaon.store.reads): counts by status, pages of items.
    sa.Index("ix_step_runs_kind_status", "run_id", "kind", "status", "id"),
    # A container's children by status (counts, pages filtered by status). Top-level steps
    # have no entry: their reads (the run's top level, a few rows per step of the graph)
    # filter ix_step_runs_parent_index's range instead.
    sa.Index(
        "ix_step_runs_parent_status",
        "run_id",
        "parent_id",
        "status",
        "index",
        sqlite_where=sa.text("parent_id IS NOT NULL"),  # PostgreSQL: postgresql_options()
    ),
    # /metrics: tasks by status, and the first attempts that ended since it last looked (a
    # range per status: the entry a status change moves anyway, no index of its own). Only
    # tasks have an entry: the rows of containers and frames (a foreach's items) are in no
    # read of it, and each of their status changes would move one.
    sa.Index(
        "ix_step_runs_metrics",
        "status",
        "first_ended_at",
        sqlite_where=sa.text(TASK_ROWS),  # PostgreSQL: postgresql_options()
    ),
    # The step runs that reused another run's outputs from the cache, by that run (few:
    # only cache hits have an entry): deleting a run hands its blobs' lineage to them
    # (kaon.store.deletion).
    sa.Index(
        "ix_step_runs_cached_from",
        "cached_from",
        "run_id",
        "id",
        sqlite_where=sa.text("cached_from IS NOT NULL"),  # PostgreSQL: postgresql_options()
    ),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("run_id", sa.String(), primary_key=True),
    sa.Column("step_run_id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("started_at", Time),
    sa.Column("ended_at", Time),
    sa.Column("worker", sa.String(), nullable=False),
    sa.Column("error", Json),
    sa.Index("ix_attempts_ended", "ended_at"),  # /metrics sums the retries that ended
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("step_run_id", sa.Integer(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("stream", sa.String(), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Index("ix_logs_run_step", "run_id", "step_run_id", "id"),
    sa.Index("ix_logs_run", "run_id", "id"),  # a run's lines after an id (kaon watch)
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("step_run_id", sa.Integer(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("value", sa.Double(), nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("step", sa.Integer()),
    sa.Index("ix_metrics_run_step", "run_id", "step_run_id", "id"),
    sa.Index("ix_metrics_run", "run_id", "id"),  # a run's first metrics
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("step_run_id", sa.Integer()),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index("ix_events_run", "run_id", "id"),
    sa.Index("ix_events_run_step", "run_id", "step_run_id", "id"),  # one step's newest events
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("payload", JsonValue, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("by", sa.String(), nullable=False),
    sa.Column("done_at", Time),
    sa.Index("ix_commands_run_done", "run_id", "done_at"),
    # Commands not yet done (few): what an engine's poll reads, whatever it holds.
    # Its PostgreSQL ``WHERE`` is added by postgresql_options(): naming it here would import
    # the PostgreSQL dialect (asyncpg included) in every SQLite process.
    sa.Index("ix_commands_pending", "run_id", sqlite_where=sa.text("done_at IS NULL")),
)


def postgresql_options() -> None:
    """Complete the schema for PostgreSQL (the partial indexes' ``WHERE``); idempotent.
    Called when a PostgreSQL store is opened, which imports that dialect anyway."""
    partial = {
        "ix_commands_pending": "done_at IS NULL",
        "ix_step_runs_parent_status": "parent_id IS NOT NULL",
        "ix_step_runs_metrics": TASK_ROWS,
        "ix_step_runs_cached_from": "cached_from IS NOT NULL",
    }
    for index in (*commands.indexes, *step_runs.indexes):
        if index.name in partial:
            index.dialect_options["postgresql"]["where"] = sa.text(partial[index.name])


cache_entries = sa.Table(
    "cache_entries",
    metadata,
    sa.Column("key", sa.String(), primary_key=True),
    sa.Column("workflow", sa.String(), nullable=False),
    sa.Column("step_id", sa.String(), nullable=False),
    sa.Column("path", sa.String(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("step_run_id", sa.Integer(), nullable=False),
    sa.Column("outputs", JsonValue, nullable=False),
    sa.Column("components", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_cache_entries_step", "workflow", "step_id", "created_at"),
    sa.Index("ix_cache_entries_run", "run_id", "key"),  # deleting a run (kaon.store.deletion)
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("hash", sa.String(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("step_run_id", sa.Integer(), nullable=False),
    sa.Column("path", sa.String(), nullable=False),
    sa.Column("output", sa.String(), nullable=False),
    sa.Column("serializer", sa.String(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("type_name", sa.String(), nullable=False),
    sa.Column("item_index", sa.Integer()),
    sa.Column("inputs", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_artifacts_hash", "hash"),
    sa.Index("ix_artifacts_run", "run_id", "id"),
)

# Which step attempts read a blob (``kaon lineage``'s "used by"): one row per blob an attempt
# that succeeded read, with the blobs it stored (``outputs``: ``[[output, hash], ...]``, empty
# when it returned only inline values). Read by hash.
artifact_uses = sa.Table(
    "artifact_uses",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("hash", sa.String(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("step_run_id", sa.Integer(), nullable=False),
    sa.Column("path", sa.String(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("outputs", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_artifact_uses_hash", "hash", "id"),
    sa.Index("ix_artifact_uses_run", "run_id", "id"),  # deleting a run (kaon.store.deletion)
)

signals = sa.Table(
    "signals",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("params", JsonValue, nullable=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("by", sa.String(), nullable=False),
    sa.Column("source_run_id", sa.String()),
    sa.Column("dedupe_key", sa.String()),
    # The owner groups the signal may reach (NULL: all); see SignalRecord.reaches.
    sa.Column("scope", Json),
    sa.Index("ix_signals_name", "name", "id"),
    sa.Index("ix_signals_at", "at"),
)

# The server's tables live in their own modules, on the same metadata.
from kaon.store import schema_pools as _pools  # noqa: E402,F401
from kaon.store import schema_registry as _registry  # noqa: E402,F401
from kaon.store import schema_triggers as _triggers  # noqa: E402,F401

"""Tables of triggers: trigger state, firings (de-duplication), backfills, alert deliveries.

Defined on the same :data:`kaon.store.schema.metadata` as the core tables; created by
Alembic revision 0005. Conventions as in :mod:`kaon.store.schema`.

* ``trigger_state``: small JSON documents by key (a cron trigger's last slot, the signal
  cursor, a data trigger's last poll, when a workflow was unblocked).
* ``trigger_firings``: each (trigger, de-duplication key) fires at most once: a cron slot,
  a consumed signal, a data path, a backfill slot. A row is claimed before its run is
  created and names the run, so a crash in between is repaired on the next pass. A firing
  that starts no run is kept as dropped, with why. (This is
  the "signal consumptions" table, generalised to every trigger kind.)
* ``backfills``: one row per backfill over a range of schedule slots, with its cursor.
* ``alert_deliveries``: each webhook delivery, its attempts and outcome.
"""

from __future__ import annotations

import sqlalchemy as sa

from kaon.store.schema import AutoId, Json, JsonValue, Time, metadata

FIRING_EXPIRES = (
    "status <> 'claimed' AND trigger_id NOT LIKE '%:data:%' "
    "AND (status <> 'created' OR trigger_id NOT LIKE 'backfill:%')"
)
"""The firings retention may delete once old enough (``ix_trigger_firings_expiry``): not a
claimed one (its run is not created yet: the repair pass needs it), nor a data trigger's,
whose key is a path that the trigger's next poll finds again for as long as it exists, nor
a backfill's whose run is not known finished (the backfill counts its open runs by them,
for its concurrency)."""

trigger_state = sa.Table(
    "trigger_state",
    metadata,
    sa.Column("key", sa.String(), primary_key=True),
    sa.Column("value", Json, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

trigger_firings = sa.Table(
    "trigger_firings",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("trigger_id", sa.String(), nullable=False),
    sa.Column("dedupe_key", sa.String(), nullable=False),
    sa.Column("workflow", sa.String(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    # claimed (run not yet created) | created | finished (its run is terminal) | dropped
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("params", JsonValue, nullable=False),
    sa.Column("labels", Json, nullable=False),
    sa.Column("due_at", Time, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    # Why a dropped firing started no run (its parameters failed, say); NULL otherwise.
    sa.Column("error", sa.Text()),
    sa.Index("ux_trigger_firings_key", "trigger_id", "dedupe_key", unique=True),
    sa.Index("ix_trigger_firings_status", "status", "trigger_id"),
    sa.Index("ix_trigger_firings_workflow", "workflow", "id"),  # a workflow's trigger history
    # What retention deletes, oldest first (kaon.store._queries: _expired_firings).
    sa.Index(
        "ix_trigger_firings_expiry",
        "created_at",
        sqlite_where=sa.text(FIRING_EXPIRES),
        postgresql_where=sa.text(FIRING_EXPIRES),
    ),
)

backfills = sa.Table(
    "backfills",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("workflow", sa.String(), nullable=False),
    sa.Column("cron", sa.String(), nullable=False),
    sa.Column("timezone", sa.String(), nullable=False),
    sa.Column("start_at", Time, nullable=False),
    sa.Column("end_at", Time, nullable=False),
    sa.Column("concurrency", sa.Integer(), nullable=False),
    sa.Column("params", JsonValue, nullable=False),
    sa.Column("slot_params", JsonValue, nullable=False),
    # running | finished (every slot's run finished) | cancelled
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("total", sa.Integer(), nullable=False),
    sa.Column("next_index", sa.Integer(), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("by", sa.String(), nullable=False),
    sa.Index("ix_backfills_status", "status", "created_at"),
)

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("workflow", sa.String(), nullable=False),
    sa.Column("run_id", sa.String()),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("dedupe_key", sa.String(), nullable=False),
    sa.Column("url", sa.String(), nullable=False),
    sa.Column("payload", Json, nullable=False),
    # pending | delivered | failed (retries exhausted)
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", Time, nullable=False),
    sa.Column("response_code", sa.Integer()),
    sa.Column("last_error", sa.Text()),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("delivered_at", Time),
    sa.Index("ux_alert_deliveries_key", "dedupe_key", "url", unique=True),
    sa.Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_alert_deliveries_run", "run_id", "id"),
)

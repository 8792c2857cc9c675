"""Trigger operations for the API and the CLI: triggers and their next due times, signals,
backfills (start, list, cancel), unblocking a strict-sequential workflow.

The pydantic models here are the HTTP API's request and response bodies and the CLI's
``--json`` output. Times are Unix seconds, with ISO 8601 strings beside them where people
read them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from kaon.errors import (
    ConfigurationError,
    DefinitionError,
    InvalidActionError,
    Location,
    Problem,
)
from kaon.model.params import bind_params
from kaon.model.triggers import (
    CronTriggerSpec,
    DataTriggerSpec,
    SignalTriggerSpec,
    describe,
    trigger_id,
)
from kaon.store.base import SignalRecord
from kaon.store.sql import SQLStore
from kaon.store.triggers import (
    CLAIMED,
    CREATED,
    DROPPED,
    FINISHED,
    BackfillRecord,
    FiringRecord,
    SQLTriggerStore,
    TriggerStore,
)
from kaon.triggers import backfill, strategies
from kaon.triggers.catalog import RegistryCatalog, WorkflowCatalog
from kaon.triggers.cron import jitter, schedule_of, slot_iso, time_zone
from kaon.triggers.signals import trigger_params


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackfillRequest(_Request):
    """Start a backfill: one run per schedule slot between ``start`` and ``end``."""

    workflow: str = Field(min_length=1, max_length=200)
    start: str = Field(
        min_length=1,
        max_length=64,
        description="ISO date or date-time; a date means its midnight in the schedule's zone.",
    )
    end: str = Field(
        min_length=1,
        max_length=64,
        description="ISO date or date-time (inclusive); a date means the whole day.",
    )
    concurrency: int = Field(default=1, ge=1, le=1000, description="Runs open at once.")
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed parameters.")
    cron: str | None = Field(
        default=None, max_length=200, description="Schedule (default: the workflow's cron)."
    )
    timezone: str | None = Field(default=None, max_length=100)


class SkippedSlotView(BaseModel):
    """A backfill slot that started no run, and why."""

    slot: str = Field(description="The slot, ISO 8601 in the backfill's time zone.")
    error: str = Field(description="Why: its parameters failed to compute or to bind.")


class BackfillView(BaseModel):
    """A backfill and how far it got."""

    id: str
    workflow: str
    cron: str
    timezone: str
    start: str
    end: str
    status: str = Field(
        description="running, finished (every slot's run ended or the slot was skipped) "
        "or cancelled"
    )
    total: int = Field(description="Slots in the range.")
    started: int = Field(description="Slots passed so far: started or skipped.")
    skipped: int = Field(
        default=0, description="Slots that started no run: their parameters failed."
    )
    skipped_slots: list[SkippedSlotView] = Field(
        default_factory=list, description="The first 10 skipped slots, with why."
    )
    concurrency: int
    created_at: float
    by: str
    requested_end: str | None = Field(
        default=None,
        description="Only in the answer that started it, when its end was after now: the end "
        "asked for. The backfill ends now; the slots to come are the cron trigger's.",
    )


class FiringView(BaseModel):
    """One firing of a trigger: what fired, when, and the run it started or why none."""

    id: int = Field(description="Ascending in claim order (``before`` pages on it).")
    workflow: str
    trigger_id: str
    kind: str = Field(description="cron, signal, data or backfill.")
    status: str = Field(
        description="claimed (its run being created), created, finished (a backfill slot's "
        "run ended) or dropped (it started no run: see error)"
    )
    run_id: str | None = Field(description="The run it started (null when dropped).")
    due_at: float = Field(description="When it was due: a slot's time, a signal's or path's.")
    due: str = Field(description="due_at, ISO 8601 UTC.")
    created_at: float = Field(description="When it was claimed.")
    what: str = Field(
        default="", description="The slot, signal or path that fired (empty for other groups)."
    )
    error: str | None = Field(default=None, description="Why a dropped firing started no run.")
    params: dict[str, Any] = Field(default_factory=dict, description="The run's parameters.")


def firing_view(record: FiringRecord) -> FiringView:
    """``record`` as the API and ``kaon firings`` show it."""
    labels = record.labels
    kind = str(labels.get("trigger") or record.trigger_id.rsplit(":", 2)[-2])
    if "slot" in labels:
        what = f"slot {labels['slot']}"
    elif "signal" in labels:
        what = f"signal {labels['signal']} #{labels.get('signal_id', '?')}"
    elif "path" in labels:
        what = f"path {labels['path']}"
    else:
        what = record.dedupe_key
    due = dt.datetime.fromtimestamp(record.due_at, dt.UTC).isoformat(timespec="seconds")
    assert record.id is not None
    return FiringView(
        id=record.id,
        workflow=record.workflow,
        trigger_id=record.trigger_id,
        kind=kind,
        status=record.status,
        run_id=None if record.status == DROPPED else record.run_id,
        due_at=record.due_at,
        due=due,
        created_at=record.created_at,
        what=what,
        error=record.error,
        params=dict(record.params),
    )


def firing_for_others(view: FiringView) -> FiringView:
    """``view`` as a reader outside its workflow's group sees it: when and what became of
    it, not what fired (a signal's name, a data path), its parameters or its error."""
    return view.model_copy(update={"what": "", "error": None, "params": {}})


FIRING_STATUSES = (CLAIMED, CREATED, FINISHED, DROPPED)
MAX_FIRINGS = 1000  # the most firings one page of the history holds


class TriggerView(BaseModel):
    """A trigger of an active workflow, and when it fires next (cron)."""

    id: str
    workflow: str
    kind: str
    description: str
    next_due_at: float | None = None
    next_due: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class UnblockView(BaseModel):
    """The outcome of unblocking a workflow."""

    workflow: str
    was_blocked: bool


class TriggerSignalView(BaseModel):
    """A signal stored by :meth:`TriggerOperations.send_signal`."""

    id: int
    name: str
    params: dict[str, Any]
    at: float
    by: str


def backfill_view(record: BackfillRecord, triggers: TriggerStore) -> BackfillView:
    """The view of a backfill record, with its skipped slots (read from ``triggers``)."""
    skipped, first = backfill.skipped_slots(triggers, record)
    return BackfillView(
        **backfill.describe(record),
        skipped=skipped,
        skipped_slots=[SkippedSlotView(slot=slot, error=error) for slot, error in first],
        created_at=record.created_at,
        by=record.by,
    )


def parse_time(text: str, timezone: str, *, end: bool = False) -> float:
    """An ISO date or date-time as epoch seconds. A date-time without offset is read in
    ``timezone``; a date is its midnight there (``end``: its last second).

    Raises ConfigurationError for a malformed value or unknown zone.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ConfigurationError(f"unknown time zone {timezone!r}") from error
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            if end:  # the second before the next local midnight: a DST day is 23 or 25 hours
                after = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
                return after.timestamp() - 1.0
            return dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp()
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ConfigurationError(
            f"malformed time {text!r}: use an ISO date (2024-03-01) or date-time "
            "(2024-03-01T06:00, 2024-03-01T06:00:00+01:00)"
        ) from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.timestamp()


class TriggerOperations:
    """What the API and CLI do with triggers, over a SQL store and a workflow catalog."""

    def __init__(
        self,
        store: SQLStore,
        catalog: WorkflowCatalog | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.catalog: WorkflowCatalog = catalog or RegistryCatalog(store, refresh_s=0.0)
        self.triggers = SQLTriggerStore(store)
        self.clock = clock

    # -- triggers ------------------------------------------------------------------------

    def list_triggers(
        self, workflow: str | None = None, *, after: str | None = None, limit: int | None = None
    ) -> list[TriggerView]:
        """Triggers of the active workflows (or of one), by workflow name and in each one's
        definition order, with cron triggers' next slot: the first ``limit`` (None: all)
        after the trigger whose id is ``after`` (when that trigger is gone, from the next
        workflow on)."""
        now = self.clock()
        views: list[TriggerView] = []
        found = [self.catalog.get(workflow)] if workflow else self.catalog.active_workflows()
        found = sorted(found, key=lambda item: item.name)
        start = after.rsplit(":", 2)[0] if after is not None else None
        for item in found:
            if start is not None and item.name < start:
                continue
            ids = [trigger_id(item.name, trigger) for trigger in item.spec.triggers]
            skip = 0
            if start is not None and item.name == start:
                skip = ids.index(after) + 1 if after in ids else len(ids)
            for trigger, tid in list(zip(item.spec.triggers, ids, strict=True))[skip:]:
                if limit is not None and len(views) == limit:
                    return views
                view = TriggerView(
                    id=tid, workflow=item.name, kind=trigger.kind, description=describe(trigger)
                )
                if isinstance(trigger, CronTriggerSpec):
                    with contextlib.suppress(ConfigurationError):  # a schedule with no slot
                        slot = schedule_of(trigger).next_slot(now)
                        view.next_due_at = slot + jitter(tid, slot, trigger.jitter_s)
                        view.next_due = slot_iso(view.next_due_at, trigger.timezone)
                    view.details = {"catchup": trigger.catchup.value, "jitter_s": trigger.jitter_s}
                elif isinstance(trigger, SignalTriggerSpec):
                    view.details = {"signal": trigger.signal, "match": trigger.match}
                elif isinstance(trigger, DataTriggerSpec):
                    view.details = {"path": trigger.path, "poll_s": trigger.poll_s}
                views.append(view)
        return views

    def firings(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[FiringView]:
        """The trigger history, newest first: each firing with the run it started or why it
        started none (a backfill's slots too), ``limit`` below the id ``before``."""
        statuses = [status] if status else None
        records = self.triggers.recent_firings(
            workflow=workflow, statuses=statuses, before=before, limit=limit
        )
        return [firing_view(r) for r in records]

    # -- signals -------------------------------------------------------------------------

    def send_signal(
        self,
        name: str,
        params: Mapping[str, Any],
        *,
        by: str = "",
        dedupe_key: str | None = None,
    ) -> TriggerSignalView:
        """Store a signal: signal triggers and waiting steps react to it."""
        record = SignalRecord(name, dict(params), self.clock(), by, dedupe_key=dedupe_key)
        self.store.add_signal(record)
        assert record.id is not None
        return TriggerSignalView(
            id=record.id, name=name, params=record.params, at=record.at, by=record.by
        )

    # -- backfills -----------------------------------------------------------------------

    def start_backfill(self, request: BackfillRequest, *, by: str = "") -> BackfillView:
        """Record a backfill; the trigger service starts its runs.

        An ``end`` after now is cut to now (``requested_end`` in the answer says so): a
        backfill is for slots that have come, the others are the cron trigger's.

        Raises NotFoundError (unknown or inactive workflow), InvalidActionError (empty
        range, no schedule, too many slots), DefinitionError naming the field (malformed
        time, cron or zone, a start after now), ParameterError (parameters that do not bind).
        """
        workflow = self.catalog.get(request.workflow)
        trigger = backfill.cron_trigger(workflow.spec, request.cron, request.timezone)
        # The request's own fields: a bad one is an input error (422) naming the field.
        with _input_error("timezone"):
            time_zone(trigger.timezone)
        with _input_error("cron"):
            schedule_of(trigger)
        with _input_error("start"):
            start = parse_time(request.start, trigger.timezone)
        with _input_error("end"):
            end = parse_time(request.end, trigger.timezone, end=True)
        record = backfill.plan(
            workflow,
            start,
            end,
            concurrency=request.concurrency,
            params=request.params,
            cron=request.cron,
            timezone=request.timezone,
            by=by,
            now=self.clock(),
        )
        first = slot_iso(backfill.slots_of(record)[0], record.timezone)
        slot_values = trigger_params(trigger.params, {"slot": first}, trigger.location)
        bind_params(workflow.spec, {**slot_values, **request.params})
        self.triggers.add_backfill(record)
        view = backfill_view(record, self.triggers)
        if record.end_at < end:  # cut to now (see backfill.plan)
            view.requested_end = slot_iso(end, record.timezone)
        return view

    def backfills(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int | None = None,
    ) -> list[BackfillView]:
        """Backfills, newest first: the first ``limit`` (None: all) below the keyset
        ``before`` (a backfill's ``created_at`` and id)."""
        statuses = [status] if status else None
        records = self.triggers.list_backfills(
            workflow=workflow, statuses=statuses, before=before, limit=limit
        )
        return [backfill_view(r, self.triggers) for r in records]

    def backfill(self, backfill_id: str) -> BackfillView:
        """One backfill. Raises NotFoundError."""
        return backfill_view(self.triggers.get_backfill(backfill_id), self.triggers)

    def cancel_backfill(self, backfill_id: str, *, by: str = "") -> BackfillView:
        """Cancel a backfill as a whole (pending runs cancelled, running ones killed).

        Raises NotFoundError, InvalidActionError (already finished or cancelled).
        """
        backfill.cancel(self.store, self.triggers, backfill_id, by=by, now=self.clock())
        return self.backfill(backfill_id)

    def workflow_of_backfill(self, backfill_id: str) -> str:
        """The workflow a backfill runs. Raises NotFoundError."""
        return self.triggers.get_backfill(backfill_id).workflow

    # -- strategies ----------------------------------------------------------------------

    def unblock(self, workflow: str) -> UnblockView:
        """Let a strict-sequential workflow start runs again after a failure.

        Raises InvalidActionError when the store cannot record it.
        """
        if not workflow:
            raise InvalidActionError("name the workflow to unblock")
        # Real time, not the trigger clock: it is compared with the runs' creation times.
        was = strategies.unblock(self.store, workflow, now=time.time())
        return UnblockView(workflow=workflow, was_blocked=was)


@contextlib.contextmanager
def _input_error(field: str) -> Iterator[None]:
    """Report a ConfigurationError raised for a request's ``field`` as a DefinitionError."""
    try:
        yield
    except ConfigurationError as error:
        raise DefinitionError(Problem(str(error), Location(field=field))) from None

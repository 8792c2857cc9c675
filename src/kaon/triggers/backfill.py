"""Backfills: one run per schedule slot over a range, with a sliding concurrency window.

A backfill is a row in the trigger store with a cursor (``next_index``, the first slot not
yet started). Each pass of the trigger service (:func:`advance`) looks at the runs the
backfill started that were still open, and starts new slots while fewer than
``concurrency`` are open: a new run starts as soon as any one finishes, never in batches.
Everything lives in the store, so a restarted server resumes where it stopped; the slots
themselves are claimed through the firing table, so none starts twice.

A slot whose parameters cannot be computed (a ``params`` expression over ``slot`` that
fails for that date) or do not bind starts no run, as a cron trigger's slot would not: its
firing is kept as dropped, with the error, and the backfill goes on with the next slots.
:func:`skipped_slots` reads them back for ``kaon backfills``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from kaon.engine import operations
from kaon.errors import (
    ConfigurationError,
    DefinitionError,
    InvalidActionError,
    KaonError,
    Location,
    NotFoundError,
    Problem,
)
from kaon.model.properties import RunStrategy
from kaon.model.specs import WorkflowSpec
from kaon.model.status import RunStatus
from kaon.model.triggers import CronTriggerSpec, trigger_from_dict, trigger_to_dict
from kaon.store.base import StateStore
from kaon.store.triggers import CLAIMED, CREATED, DROPPED, BackfillRecord, TriggerStore
from kaon.store.triggers import FINISHED as FIRING_FINISHED
from kaon.triggers import strategies
from kaon.triggers.catalog import ActiveWorkflow, launch
from kaon.triggers.cron import CronSchedule, slot_iso
from kaon.triggers.signals import trigger_params

MAX_SLOTS = 10_000
"""The most slots one backfill may cover."""

RUNNING, FINISHED, CANCELLED = "running", "finished", "cancelled"


def backfill_trigger_id(backfill_id: str) -> str:
    """The firing-table trigger id of a backfill's slots."""
    return f"backfill:{backfill_id}"


def cron_trigger(spec: WorkflowSpec, cron: str | None, timezone: str | None) -> CronTriggerSpec:
    """The schedule a backfill follows: the given cron expression, else the workflow's
    first cron trigger (its time zone and slot parameters included).

    Raises InvalidActionError when neither exists.
    """
    found = next((t for t in spec.triggers if isinstance(t, CronTriggerSpec)), None)
    if cron is not None:
        return CronTriggerSpec(
            cron=cron,
            timezone=timezone or (found.timezone if found else "UTC"),
            params=found.params if found else {},
        )
    if found is None:
        raise InvalidActionError(
            f"workflow {spec.name!r} has no cron trigger: give the schedule to backfill (cron)"
        )
    if timezone is not None:
        return CronTriggerSpec(cron=found.cron, timezone=timezone, params=found.params)
    return found


def window(record: BackfillRecord, workflow: ActiveWorkflow) -> int:
    """How many of the backfill's runs may be open at once: its concurrency, or 1 while
    the workflow's run strategy makes overlapping runs drop (``first_only``) or cancel
    (``last_only``) each other, so that no slot's run ends another slot's."""
    return 1 if _drops_overlaps(workflow) is not None else record.concurrency


def _drops_overlaps(workflow: ActiveWorkflow) -> RunStrategy | None:
    known = {**strategies.DEFAULT_PROPERTIES, **workflow.properties}
    strategy, _limit = strategies.strategy_of(known)
    return strategy if strategy in (RunStrategy.FIRST_ONLY, RunStrategy.LAST_ONLY) else None


def plan(
    workflow: ActiveWorkflow,
    start: float,
    end: float,
    *,
    concurrency: int,
    params: Mapping[str, Any] | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    by: str = "",
    now: float,
) -> BackfillRecord:
    """A new backfill of ``workflow`` over the slots in ``[start, end]`` (not stored yet).

    A backfill is for slots that have come: an ``end`` after ``now`` is cut to ``now``
    (the record's ``end_at``; the slots to come are the cron trigger's, which would start
    them again as runs of their own).

    Raises InvalidActionError for an empty or reversed range, no schedule, more than
    :data:`MAX_SLOTS` slots, a concurrency below 1, or above 1 for a workflow whose run
    strategy drops or cancels overlapping runs (see :func:`window`); DefinitionError for a
    bad cron expression or time zone, or a ``start`` after ``now`` (naming ``start``).
    """
    if end < start:
        raise InvalidActionError("backfill end is before its start")
    if concurrency < 1:
        raise InvalidActionError(f"backfill concurrency must be >= 1, got {concurrency}")
    dropping = _drops_overlaps(workflow)
    if dropping is not None and concurrency > 1:
        raise InvalidActionError(
            f"backfill concurrency {concurrency}: workflow {workflow.name!r} has run strategy "
            f"{dropping.value}, under which runs that overlap "
            f"{'are dropped' if dropping is RunStrategy.FIRST_ONLY else 'cancel each other'}; "
            "use concurrency 1 (--concurrency 1), or another run strategy"
        )
    trigger = cron_trigger(workflow.spec, cron, timezone)
    try:
        schedule = CronSchedule(trigger.cron, trigger.timezone)
    except ConfigurationError as error:  # the request's schedule: an input error (422)
        raise DefinitionError(Problem(str(error), Location(field="cron"))) from None
    if start > now:
        raise DefinitionError(
            Problem(
                f"backfill start {slot_iso(start, trigger.timezone)} is after now "
                f"({slot_iso(now, trigger.timezone)}): a backfill starts runs for past slots; "
                "the workflow's cron trigger starts the slots to come",
                Location(field="start"),
            )
        )
    end = min(end, now)
    slots = schedule.slots_between(start, end, MAX_SLOTS + 1)
    if not slots:
        raise InvalidActionError(
            f"no slot of '{trigger.cron}' ({trigger.timezone}) between the start and end"
        )
    if len(slots) > MAX_SLOTS:
        raise InvalidActionError(f"backfill covers more than {MAX_SLOTS} slots; split it")
    encoded = trigger_to_dict(trigger, meta=False)
    return BackfillRecord(
        id=f"bf-{uuid.uuid4().hex[:10]}",
        workflow=workflow.name,
        cron=trigger.cron,
        timezone=trigger.timezone,
        start_at=start,
        end_at=end,
        concurrency=concurrency,
        total=len(slots),
        params=dict(params or {}),
        slot_params=encoded["params"],
        created_at=now,
        updated_at=now,
        by=by,
    )


def slots_of(record: BackfillRecord) -> tuple[float, ...]:
    """The backfill's slots, oldest first (computed once per process and range)."""
    return _slots(record.cron, record.timezone, record.start_at, record.end_at)


@lru_cache(maxsize=64)
def _slots(cron: str, timezone: str, start: float, end: float) -> tuple[float, ...]:
    return tuple(CronSchedule(cron, timezone).slots_between(start, end, MAX_SLOTS))


def open_runs(store: StateStore, triggers: TriggerStore, record: BackfillRecord) -> list[str]:
    """Ids of the backfill's runs not finished yet (finished ones are marked so in the
    firing table, so they are not read again)."""
    still: list[str] = []
    tid = backfill_trigger_id(record.id)
    for firing in triggers.firings(trigger_id=tid, statuses=[CLAIMED, CREATED], limit=100_000):
        assert firing.id is not None
        try:
            finished = store.get_run(firing.run_id).status.is_terminal
        except NotFoundError:
            finished = firing.status == CREATED  # a claimed run is being created
        if finished:
            triggers.set_firing_status(firing.id, FIRING_FINISHED)
        else:
            still.append(firing.run_id)
    return still


def advance(
    store: StateStore,
    triggers: TriggerStore,
    record: BackfillRecord,
    workflow: ActiveWorkflow,
    *,
    now: float,
    executor: str = "",
) -> list[str]:
    """One pass over a running backfill: start slots while fewer than ``concurrency`` of
    its runs are open; mark it finished when every slot's run finished. Returns the ids
    of the runs started."""
    if record.status != RUNNING:
        return []
    active = len(open_runs(store, triggers, record))
    started: list[str] = []
    limit = window(record, workflow)  # the strategy may have changed since the start
    if record.next_index < record.total and active < limit:
        slots = slots_of(record)
        trigger = trigger_from_dict(
            {"kind": "cron", "cron": record.cron, "params": record.slot_params}
        )
        assert isinstance(trigger, CronTriggerSpec)
        while (
            record.status == RUNNING
            and active < limit
            and record.next_index < min(record.total, len(slots))
        ):
            index = record.next_index
            run_id = _start_slot(
                store, triggers, record, workflow, trigger, slots[index], now, executor
            )
            record.next_index = index + 1
            if run_id is not None:
                started.append(run_id)
                active += 1
    if record.status == RUNNING and record.next_index >= record.total and active == 0:
        triggers.update_backfill(record.id, now, status=FINISHED)
        record.status = FINISHED
    return started


def _start_slot(
    store: StateStore,
    triggers: TriggerStore,
    record: BackfillRecord,
    workflow: ActiveWorkflow,
    trigger: CronTriggerSpec,
    slot: float,
    now: float,
    executor: str,
) -> str | None:
    iso = slot_iso(slot, record.timezone)
    problem: str | None = None
    try:
        slot_values = trigger_params(trigger.params, {"slot": iso}, trigger.location)
    except DefinitionError as error:  # this date's parameters fail: the slot is skipped
        slot_values, problem = {}, str(error)
    params = {**slot_values, **record.params}
    labels = {"trigger": "backfill", "backfill_id": record.id, "slot": iso}
    # Claim the slot's firing first (the firing table starts it at most once, even from two
    # servers), then move the cursor past it (compare-and-set). The other way round, a store
    # failing or a server dying between the two left a slot behind the cursor with no run.
    # A failure after the claim is repaired like any trigger's (kaon.triggers.catalog.repair),
    # and the pass that retries the slot finds it claimed and moves the cursor on.
    run = launch(
        store,
        triggers,
        workflow,
        trigger_id=backfill_trigger_id(record.id),
        key=iso,
        params=params,
        labels=labels,
        due_at=now,
        now=now,
        executor=executor,
        problem=problem,
    )
    if not triggers.advance_backfill(record.id, record.next_index, now):
        record.status = triggers.get_backfill(record.id).status
        if record.status != RUNNING and run is not None:
            # Cancelled while this slot started: its run does not outlive the backfill.
            _stop(store, run.id, record.id, by="backfill")
            return None
    return None if run is None else run.id


def cancel(
    store: StateStore, triggers: TriggerStore, backfill_id: str, *, by: str, now: float
) -> int:
    """Cancel a backfill as a whole: start nothing more, cancel its pending runs and kill
    its running ones. Returns how many runs were cancelled or killed.

    Raises NotFoundError for an unknown backfill, InvalidActionError for a finished one.
    """
    record = triggers.get_backfill(backfill_id)
    if record.status != RUNNING:
        raise InvalidActionError(f"backfill {backfill_id} is already {record.status}")
    triggers.update_backfill(backfill_id, now, status=CANCELLED)
    stopped = 0
    for run_id in open_runs(store, triggers, record):
        stopped += _stop(store, run_id, backfill_id, by=by)
    return stopped


def _stop(store: StateStore, run_id: str, backfill_id: str, *, by: str) -> bool:
    """Cancel a pending run of a cancelled backfill, or kill it if an engine has it;
    False when it finished meanwhile."""
    try:
        run = store.get_run(run_id)
        if run.status is RunStatus.PENDING and run.owner is None:
            operations.cancel_run(store, run_id, by=by, reason=f"backfill {backfill_id} cancelled")
        else:
            operations.send_command(store, run_id, "kill", {}, by=by)
    except KaonError:
        return False
    return True


def skipped_slots(
    triggers: TriggerStore, record: BackfillRecord, limit: int = 10
) -> tuple[int, list[tuple[str, str]]]:
    """How many of the backfill's slots started no run (their parameters failed to compute
    or bind), and the first ``limit`` of them as ``(slot, why)``, in slot order."""
    tid = backfill_trigger_id(record.id)
    count = triggers.count_firings(trigger_id=tid, statuses=[DROPPED])
    if not count:
        return 0, []
    found = triggers.firings(trigger_id=tid, statuses=[DROPPED], limit=limit)
    return count, [(f.dedupe_key, f.error or "") for f in found]


def describe(record: BackfillRecord) -> dict[str, Any]:
    """The backfill as plain data (what the API and CLI show)."""
    return {
        "id": record.id,
        "workflow": record.workflow,
        "cron": record.cron,
        "timezone": record.timezone,
        "start": slot_iso(record.start_at, record.timezone),
        "end": slot_iso(record.end_at, record.timezone),
        "status": record.status,
        "total": record.total,
        "started": record.next_index,
        "concurrency": record.concurrency,
    }


__all__ = [
    "MAX_SLOTS",
    "advance",
    "backfill_trigger_id",
    "cancel",
    "cron_trigger",
    "describe",
    "open_runs",
    "plan",
    "skipped_slots",
    "slots_of",
    "window",
]

"""Triggers, backfills and unblocking: the trigger half of the HTTP API.

``GET /triggers`` lists the active workflows' triggers with their next due times;
``/backfills`` starts, lists and cancels backfills; ``POST /workflows/{name}/unblock``
lets a strict-sequential workflow run again after a failure. Signals are posted to
``/signals`` (the registry's router).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Query, Response, status

from kaon.api.deps import Principal, Services, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.api.paging import KEYSET, keyset, keyset_text, next_page
from kaon.service.limits import LIST_PAGE, MAX_LIST_PAGE
from kaon.service.triggers import (
    FIRING_STATUSES,
    MAX_FIRINGS,
    BackfillRequest,
    BackfillView,
    FiringView,
    TriggerOperations,
    TriggerView,
    UnblockView,
    firing_for_others,
)

router = APIRouter(tags=["triggers"], responses=ERROR_RESPONSES)

_KEY = "trigger_operations"


def operations(services: Services = Depends(get_services)) -> TriggerOperations:
    """The app's :class:`TriggerOperations` (made once, kept in ``services.extras``).

    Uses the clock the server's trigger process runs on (``extras["trigger_clock"]``), so a
    fake clock (``KAON_FAKE_CLOCK_FILE``) shows in next due times too.
    """
    found = services.extras.get(_KEY)
    if found is None:
        clock = services.extras.get("trigger_clock")
        found = (
            TriggerOperations(services.store, clock=clock)
            if clock is not None
            else TriggerOperations(services.store)
        )
        services.extras[_KEY] = found
    assert isinstance(found, TriggerOperations)
    return found


@router.get("/triggers", response_model=list[TriggerView], summary="List triggers")
def list_triggers(
    response: Response,
    workflow: str | None = Query(None, min_length=1, max_length=200),
    after: str | None = Query(
        None,
        min_length=1,
        max_length=300,
        description="Only the triggers after this one: the `Kaon-Next` header of the page "
        "before (a trigger's id).",
    ),
    limit: int = Query(MAX_LIST_PAGE, ge=1, le=MAX_LIST_PAGE),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
    ops: TriggerOperations = Depends(operations),
) -> list[TriggerView]:
    """Triggers of the active workflows (or of one), by workflow name, with each cron
    trigger's next due time, ``limit`` a page: while more remain, ``Kaon-Next`` says where
    the next page starts (send it back as ``after``). Another group's keep their workflow,
    kind and due time, not what their definition says (a signal's ``match``, a data path),
    as ``GET /workflows`` keeps its properties."""
    found = ops.list_triggers(workflow, after=after, limit=limit + 1)
    if len(found) > limit:
        found = found[:limit]
        next_page(response, found[-1].id)
    readable = services.workflow_reader(principal)
    if readable is None:
        return found
    return [
        view
        if readable(view.workflow)
        else view.model_copy(update={"description": view.kind, "details": {}})
        for view in found
    ]


@router.get("/triggers/firings", response_model=list[FiringView], summary="Trigger history")
def list_firings(
    response: Response,
    workflow: str | None = Query(None, min_length=1, max_length=200),
    state: str | None = Query(None, alias="status", pattern=f"^({'|'.join(FIRING_STATUSES)})$"),
    before: int | None = Query(None, ge=1, le=2**62, description="Firings below this id."),
    limit: int = Query(100, ge=1, le=MAX_FIRINGS),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
    ops: TriggerOperations = Depends(operations),
) -> list[FiringView]:
    """What the triggers fired, newest first: each cron slot, signal, data path and
    backfill slot with the run it started, or why it started none (``dropped``, with the
    error). While older ones remain, ``Kaon-Next`` says where the next page starts (the
    last id of this page: send it back as ``before``); ``Kaon-Older: true|false`` says the
    same (deprecated: clients read ``Kaon-Next``). Another group's firings keep their
    workflow, kind, status, times and run, not what fired, their parameters or error."""
    found = ops.firings(workflow=workflow, status=state, before=before, limit=limit + 1)
    older = len(found) > limit
    response.headers["Kaon-Older"] = "true" if older else "false"
    found = found[:limit]
    next_page(response, found[-1].id if older else None)
    readable = services.workflow_reader(principal)
    if readable is None:
        return found
    return [view if readable(view.workflow) else firing_for_others(view) for view in found]


@router.post(
    "/backfills",
    response_model=BackfillView,
    status_code=status.HTTP_201_CREATED,
    summary="Start a backfill",
)
def start_backfill(
    body: BackfillRequest,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
    ops: TriggerOperations = Depends(operations),
) -> BackfillView:
    """One run per schedule slot between ``start`` and ``end``, ``concurrency`` at a time
    (a new run starts as soon as one finishes); the server's trigger loop starts them."""
    services.authorize(principal, "operator", workflow=body.workflow)
    view = ops.start_backfill(body, by=principal.name)
    services.audit(
        principal,
        "backfill.start",
        f"backfill:{view.id}",
        {"workflow": body.workflow, "start": body.start, "end": body.end, "total": view.total},
    )
    return view


@router.get("/backfills", response_model=list[BackfillView], summary="List backfills")
def list_backfills(
    response: Response,
    workflow: str | None = Query(None, min_length=1, max_length=200),
    state: str | None = Query(None, alias="status", pattern="^(running|finished|cancelled)$"),
    before: str | None = Query(
        None,
        pattern=KEYSET,
        description="Only the backfills after this one in the list: the `Kaon-Next` header "
        "of the page before (`CREATED_AT,BACKFILL_ID`).",
    ),
    limit: int = Query(LIST_PAGE, ge=1, le=MAX_LIST_PAGE),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
    ops: TriggerOperations = Depends(operations),
) -> list[BackfillView]:
    """Backfills, newest first, optionally of one workflow or status (another group's
    without their skipped slots' errors), ``limit`` a page: while more may remain,
    ``Kaon-Next`` says where the next page starts (send it back as ``before``)."""
    after = keyset(before, "before") if before is not None else None
    found = ops.backfills(workflow=workflow, status=state, before=after, limit=limit)
    if len(found) == limit:
        next_page(response, keyset_text(found[-1].created_at, found[-1].id))
    readable = services.workflow_reader(principal)
    return found if readable is None else [_shown(view, readable) for view in found]


@router.get("/backfills/{backfill_id}", response_model=BackfillView, summary="Get a backfill")
def get_backfill(
    backfill_id: str,
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
    ops: TriggerOperations = Depends(operations),
) -> BackfillView:
    """One backfill and how many of its slots were started (another group's without its
    skipped slots' errors)."""
    view = ops.backfill(backfill_id)
    readable = services.workflow_reader(principal)
    return view if readable is None else _shown(view, readable)


def _shown(view: BackfillView, readable: Callable[[str], bool]) -> BackfillView:
    """``view`` as a reader of its workflow sees it, else without its skipped slots: each
    one's error quotes the parameters the workflow's trigger computed for it."""
    return view if readable(view.workflow) else view.model_copy(update={"skipped_slots": []})


@router.post(
    "/backfills/{backfill_id}/cancel", response_model=BackfillView, summary="Cancel a backfill"
)
def cancel_backfill(
    backfill_id: str,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
    ops: TriggerOperations = Depends(operations),
) -> BackfillView:
    """Cancel the whole backfill: nothing more starts, pending runs are cancelled and
    running ones killed. 409 when it already finished."""
    services.authorize(principal, "operator", workflow=ops.workflow_of_backfill(backfill_id))
    view = ops.cancel_backfill(backfill_id, by=principal.name)
    services.audit(principal, "backfill.cancel", f"backfill:{backfill_id}")
    return view


@router.post("/workflows/{name}/unblock", response_model=UnblockView, summary="Unblock a workflow")
def unblock(
    name: str,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
    ops: TriggerOperations = Depends(operations),
) -> UnblockView:
    """Let a strict-sequential workflow start runs again after a failed run."""
    services.authorize(principal, "operator", workflow=name)
    services.registry.workflow(name)  # 404 for an unknown workflow
    view = ops.unblock(name)
    services.audit(
        principal, "workflow.unblock", f"workflow:{name}", {"was_blocked": view.was_blocked}
    )
    return view

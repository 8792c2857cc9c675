"""Reads of a run that cost what they show: summary, pages of children, one step, log windows.

These are what the web UI (and any client of a large run) uses: none of them loads every step
run of a run (see :mod:`kaon.service.run_reads`). Readers need the ``viewer`` role on the
run's workflow, like the other run reads (:meth:`Services.authorize_run`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from kaon.api.deps import Principal, Services, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.model.status import StepStatus
from kaon.service.limits import MAX_OFFSET
from kaon.service.run_reads import (
    SORT_PATTERN,
    LogWindowView,
    RunReads,
    RunSummary,
    StepDetail,
    StepPageView,
)
from kaon.store.reads import MAX_PAGE

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERROR_RESPONSES)

_MAX_INT = 2**31 - 1


def run_reads(services: Services) -> RunReads:
    """The bounded run reads over the app's store (cheap to build per request)."""
    return RunReads(services.store, services.runs.artifacts)


@router.get("/{run_id}/summary", response_model=RunSummary, summary="A run as it opens")
def run_summary(
    run_id: str,
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> RunSummary:
    """The run, its task counts by status (computed in the database) and its top-level
    graph: nodes (containers rolled up with counts of their children) and edges."""
    summary = run_reads(services).summary(services.authorize_run(principal, "viewer", run_id))
    summary.waiting = services.waiting(summary)
    return summary


@router.get("/{run_id}/children", response_model=StepPageView, summary="A page of step runs")
def run_children(
    run_id: str,
    parent: str | None = Query(None, max_length=2000, description="A parent path; none: top"),
    status: list[StepStatus] = Query([], description="Only these statuses (repeatable)."),
    step: str | None = Query(None, max_length=200, description="Only this step id."),
    index_from: int | None = Query(
        None, ge=0, le=_MAX_INT, alias="from", description="First item."
    ),
    index_to: int | None = Query(None, ge=0, le=_MAX_INT, alias="to", description="Last item."),
    q: str | None = Query(None, max_length=200, description="Text in the path, reason or item."),
    sort: str = Query("index", pattern=SORT_PATTERN),
    desc: bool = Query(False),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> StepPageView:
    """The children of ``parent`` (foreach items, loop iterations, the steps of an item; the
    top level without ``parent``), filtered, sorted and paged, with the total matching."""
    return run_reads(services).children(
        services.authorize_run(principal, "viewer", run_id),
        parent,
        statuses=tuple(s.value for s in status),
        step_id=step,
        index_from=index_from,
        index_to=index_to,
        text=q,
        sort=sort,
        descending=desc,
        limit=limit,
        offset=offset,
    )


@router.get("/{run_id}/step", response_model=StepDetail, summary="One step run in detail")
def run_step(
    run_id: str,
    path: str = Query(..., max_length=2000, description="``train``, ``segments[3].train``"),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> StepDetail:
    """One step run with attempts (errors, tracebacks), outputs, children counts, metrics,
    the cache decision and a task's inputs (each with its source: a parameter, an upstream
    step's output, a bound name, a constant; resolved now, values cut short); indexed lookups
    only."""
    return run_reads(services).step(services.authorize_run(principal, "viewer", run_id), path)


@router.get("/{run_id}/log", response_model=LogWindowView, summary="A window of step logs")
def run_log(
    run_id: str,
    path: str | None = Query(None, max_length=2000, description="None: every step's lines"),
    attempt: int | None = Query(None, ge=1, le=1_000_000),
    after: int | None = Query(None, ge=0, le=2**62, description="Lines after this id (follow)."),
    before: int | None = Query(None, ge=0, le=2**62, description="Lines before this id."),
    q: str | None = Query(None, max_length=200, description="Only lines containing this."),
    limit: int = Query(200, ge=1, le=MAX_PAGE),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> LogWindowView:
    """The tail of a step run's log (or the lines after / before an id), oldest first;
    without ``path``, every step's lines after ``after`` (each with its path)."""
    return run_reads(services).logs(
        services.authorize_run(principal, "viewer", run_id),
        path,
        attempt=attempt,
        after_id=after,
        before_id=before,
        text=q,
        limit=limit,
    )

"""Runs and step runs: start, list, get, delete, kill, restart, skip, resume, continue (and the
steps held at breakpoints); logs, attempts, artifacts, metrics and the recorded events of a run."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response

from kaon.api.deps import IDEMPOTENCY_KEY, Principal, Services, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.api.paging import KEYSET, keyset, keyset_text, next_page
from kaon.engine.operations import new_run_id
from kaon.errors import InvalidActionError, NotFoundError
from kaon.model.cache_policy import CachePolicy
from kaon.model.status import RunStatus, StepStatus
from kaon.service._metric_pages import METRIC_CURSOR, MetricCursor
from kaon.service.experiment_views import RunArtifactsView
from kaon.service.limits import (
    ARTIFACTS_PAGE,
    MAX_OFFSET,
    MAX_RUN_METRICS_PAGE,
    MAX_RUNS_OFFSET,
    MAX_RUNS_PAGE,
    RUN_METRICS,
)
from kaon.service.registry_views import (
    ContinueRequest,
    EventView,
    KillRequest,
    RestartRequest,
    SkipRequest,
    SkipResult,
    StartRunRequest,
    event_view,
)
from kaon.service.run_reads import SORT_PATTERN, RunPage, RunReads
from kaon.service.views import (
    AttemptView,
    LogView,
    MetricView,
    PausedStepView,
    RunView,
    StepRunView,
)
from kaon.store.base import LOCAL_ORIGIN
from kaon.store.reads import MAX_PAGE

# The kinds of step run rows (a step's kind, or a foreach item's or loop iteration's frame).
StepKind = Literal["task", "foreach", "loop", "subworkflow", "wait", "item", "iteration"]

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERROR_RESPONSES)

RUN_ID_HELP = "A run id or a unique prefix of one."


def _authorize(services: Services, principal: Principal, run_id: str) -> str:
    """Resolve the run and check that ``principal`` operates its workflow."""
    return services.authorize_run(principal, "operator", run_id)


def _readable(services: Services, principal: Principal, run_id: str) -> str:
    """Resolve the run and check that ``principal`` may read it."""
    return services.authorize_run(principal, "viewer", run_id)


def _audit(
    services: Services, principal: Principal, run: RunView, action: str, **data: object
) -> None:
    """Record a done action on a run."""
    services.audit(principal, f"run.{action}", f"run:{run.id}", {"workflow": run.workflow, **data})


@router.post("", response_model=RunView, status_code=201, summary="Start a run")
def start_run(
    body: StartRunRequest,
    response: Response,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> RunView:
    """Record a pending run of the workflow's active (or given) version with bound
    parameters; the server's engine claims and drives it. A retry with the same
    ``Idempotency-Key`` returns the same run."""

    def work(reserved: dict[str, Any]) -> dict[str, Any]:
        view = services.registry.start_run(
            body.workflow,
            body.params,
            principal,
            version=body.version,
            from_strings=body.from_strings,
            labels=body.labels,
            run_id=str(reserved["run_id"]),
            cache=CachePolicy(lookup=not body.no_cache, force=tuple(body.force)),
            breakpoints=tuple(body.breakpoints),
            priority=body.priority,
        )
        return view.model_dump(mode="json")

    request = {"route": "start_run", **body.model_dump(mode="json")}
    answer, replayed = services.once(
        principal, idempotency_key, request, {"run_id": new_run_id()}, work
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return RunView.model_validate(answer)


@router.get("", response_model=list[RunView], summary="List runs")
def list_runs(
    response: Response,
    workflow: str | None = Query(None, max_length=200),
    status: RunStatus | None = Query(None),
    limit: int = Query(20, ge=1, le=MAX_RUNS_PAGE),
    offset: int = Query(0, ge=0, le=MAX_RUNS_OFFSET),
    before: str | None = Query(
        None,
        pattern=KEYSET,
        description="Only the runs after this one in the list: the `Kaon-Next` header of "
        "the page before (`CREATED_AT,RUN_ID`).",
    ),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[RunView]:
    """Runs, newest first, optionally of one workflow and one status. Every run is listed,
    but a run the token may not read (another group's) shows no parameters and no error.
    A full page's ``Kaon-Next`` header is where the next one starts (``before``): unlike
    ``offset``, runs created or deleted meanwhile make none repeat or go missing."""
    views = services.runs.list_runs(
        workflow=workflow,
        status=status.value if status else None,
        limit=limit,
        offset=offset,
        after=keyset(before, "before") if before is not None else None,
    )
    if views and len(views) == limit:
        next_page(response, keyset_text(views[-1].created_at, views[-1].id))
    readable = services.workflow_reader(principal)
    if readable is None:
        return views
    return [
        view if readable(view.workflow) else view.model_copy(update={"params": {}, "error": None})
        for view in views
    ]


@router.get("/{run_id}", response_model=RunPage, summary="Get a run with a page of its steps")
def get_run(
    run_id: str,
    all_steps: bool = Query(False, description="Every level (items, iterations) by creation."),
    limit: int = Query(MAX_PAGE, ge=1, le=MAX_PAGE, description="Step runs in the page."),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    metrics_limit: int = Query(RUN_METRICS, ge=0, le=10_000, description="Metrics listed at most."),
    status: list[StepStatus] = Query([], description="Only step runs in these statuses."),
    kind: StepKind | None = Query(None, description="Only step runs of this kind."),
    sort: str = Query(
        "index", pattern=SORT_PATTERN, description="The top level's order (every level: by id)."
    ),
    desc: bool = Query(False, description="Sort descending (steps not started last)."),
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> RunPage:
    """A run, its task counts by status (computed in the database), one page of its step
    runs with their attempts (the top level, each foreach or loop one row with its children
    counted; with ``all_steps``, every level in creation order) and its first metrics.
    ``steps_total`` tells how many there are to page through; a foreach's items page
    through ``GET /runs/{id}/children``. ``status`` and ``kind`` keep only those step runs
    (``all_steps=true&status=failed&kind=task``: the failed tasks of every level, as ``kaon
    show --status failed`` pages them); ``sort`` and ``desc`` order the top level
    (``status=succeeded&sort=duration&desc=true&limit=5``: its five slowest successes, as
    ``kaon run``'s report reads them). ``top_counts`` counts the top level by status. The
    cost follows the page, not the run."""
    full = _readable(services, _, run_id)
    page = RunReads(services.store).page(
        full,
        all_steps=all_steps,
        limit=limit,
        offset=offset,
        metrics_limit=metrics_limit,
        statuses=tuple(s.value for s in status),
        kind=kind,
        sort=sort,
        descending=desc,
    )
    page.waiting = services.waiting(page)
    return page


@router.delete(
    "/{run_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a finished run",
    responses={204: {"description": "Deleted, with every record of the run."}},
)
def delete_run(
    run_id: str,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> Response:
    """Delete a finished run and every record of it: step runs, attempts, logs, metrics,
    events, artifact records and the cache entries made from it (``kaon gc`` then frees the
    blobs only it used). 409 for a run still active or held by an engine: kill it first."""
    full = _authorize(services, principal, run_id)
    # audited as run.delete with the run, by the token's name and id
    services.runs.delete_run(full, by=principal.name, by_token=principal.token_id)
    return Response(status_code=204)


@router.post("/{run_id}/kill", response_model=RunView, summary="Kill a run")
def kill_run(
    run_id: str,
    body: KillRequest | None = Body(None),
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> RunView:
    """Cancel a run: running steps are stopped, pending ones will not start. With ``step``,
    cancel only that step of a run an engine drives."""
    full = _authorize(services, principal, run_id)
    step = body.step if body else None
    view = services.runs.kill(full, step=step, by=principal.name)
    _audit(services, principal, view, "kill", step=step)
    return view


def _check_served(services: Services, run_id: str, verb: str) -> None:
    """Refuse (409) to hand the server's engine a run a local command created: its code is
    files of that machine (see :data:`~kaon.store.base.LOCAL_ORIGIN`), which the server's
    engine never claims, so the run would wait for ever."""
    if services.store.get_run(run_id).origin == LOCAL_ORIGIN:
        raise InvalidActionError(
            f"run {run_id} was started by a local kaon run from files of that machine, "
            f"which this server does not have: {verb} it there (kaon {verb} {run_id}), or "
            "push the workflow and start a run of it here"
        )


@router.post("/{run_id}/restart", response_model=RunView, summary="Restart a finished run")
def restart_run(
    run_id: str,
    body: RestartRequest | None = Body(None),
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> RunView:
    """Run a finished run again from its failed steps (or from ``from_step``), reusing the
    rest; the server's engine picks it up. 409 for a run that is still active."""
    full = _authorize(services, principal, run_id)
    _check_served(services, full, "restart")
    from_step = body.from_step if body else None
    force = body.force if body else False
    only = body.only if body else False
    view = services.runs.restart(
        full, from_step=from_step, by=principal.name, force=force, only=only
    )
    _audit(services, principal, view, "restart", from_step=from_step, force=force, only=only)
    return view


@router.post("/{run_id}/skip", response_model=SkipResult, summary="Skip a step")
def skip_step(
    run_id: str,
    body: SkipRequest,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> SkipResult:
    """Skip a step: the engine holding an active run is told to (``how: command``); an active
    run no engine drives gets the command when an engine takes it over (``how: queued``); in
    a finished run the skip is recorded (``how: recorded``) and a restart goes on from
    there."""
    full = _authorize(services, principal, run_id)
    how = services.runs.skip(
        full, body.path, output=body.output, has_output=body.has_output, by=principal.name
    )
    result = SkipResult(how=how, run=services.runs.get_run(full))
    _audit(services, principal, result.run, "skip", path=body.path, how=how)
    return result


@router.post("/{run_id}/continue", response_model=RunView, summary="Continue a paused run")
def continue_run(
    run_id: str,
    body: ContinueRequest,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> RunView:
    """Release the steps a paused run holds at breakpoints (only ``path`` when given), with
    ``params`` merged over the run's first; the engine holding the run applies it. 409 for
    a run that is not paused."""
    full = _authorize(services, principal, run_id)
    view = services.runs.continue_run(
        full,
        step=body.path,
        params=body.params or None,
        from_strings=body.from_strings,
        by=principal.name,
    )
    changed = sorted(body.params or {})  # the names: values may be secrets
    _audit(services, principal, view, "continue", path=body.path, params=changed)
    return view


@router.get("/{run_id}/paused", response_model=list[PausedStepView], summary="Held steps")
def paused_steps(
    run_id: str,
    path: str | None = Query(None, max_length=2000, description="Only this step run."),
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[PausedStepView]:
    """The steps the run holds at breakpoints (what ``kaon paused`` shows): the inputs each
    would receive (paused before) or the outputs it produced (paused after); values inline,
    blobs by hash. Empty when nothing is held (or ``path`` is not held)."""
    full = _readable(services, _, run_id)
    try:
        return services.runs.paused_views(full, path)
    except NotFoundError:
        return []  # no such step run (yet): it holds nothing


@router.post("/{run_id}/resume", response_model=RunView, summary="Resume a stopped run")
def resume_run(
    run_id: str,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> RunView:
    """Hand an active run whose engine died to the server's engine (idempotent for a run an
    engine holds). 409 for a finished run (restart it instead)."""
    full = _authorize(services, principal, run_id)
    record = services.store.get_run(full)
    if record.status.is_terminal:
        raise InvalidActionError(f"run {full} is {record.status.value}; restart it instead")
    _check_served(services, full, "resume")
    services.runs.engine_holds(full)  # releases the lease of an engine proven dead
    view = services.runs.get_run(full)
    _audit(services, principal, view, "resume")
    return view


@router.get("/{run_id}/events", response_model=list[EventView], summary="A run's events")
def run_events(
    response: Response,
    run_id: str,
    after: int = Query(0, ge=0, le=2**62, description="Only events with larger ids."),
    limit: int = Query(1000, ge=1, le=10_000),
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[EventView]:
    """The recorded events of a run, oldest first (``GET /events`` streams them live); a
    full page's ``Kaon-Next`` says where the next one starts (send it back as ``after``)."""
    full = _readable(services, _, run_id)
    found = services.store.events(full, after_id=after, limit=limit)
    next_page(response, found[-1].id if len(found) == limit else None)
    return [event_view(e) for e in found]


@router.get("/{run_id}/metrics", response_model=list[MetricView], summary="A run's metrics")
def run_metrics(
    response: Response,
    run_id: str,
    name: str | None = Query(None, max_length=200, description="Only this metric."),
    limit: int = Query(MAX_RUN_METRICS_PAGE, ge=1, le=MAX_RUN_METRICS_PAGE),
    after: str | None = Query(
        None,
        pattern=METRIC_CURSOR,
        description="Only the values after this one: the `Kaon-Next` header of the page before.",
    ),
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[MetricView]:
    """The metrics the run's steps reported, ``limit`` a page: its own in the order
    reported, then those its cached steps reused (``reused_from``). While more may remain,
    ``Kaon-Next`` says where the next page starts (send it back as ``after``); a page costs
    what it shows, however deep."""
    full = _readable(services, _, run_id)
    cursor = MetricCursor.parse(after) if after is not None else None
    views, following = RunReads(services.store).metrics_page(
        full, name=name, after=cursor, limit=limit
    )
    next_page(response, following)
    return views


@router.get("/{run_id}/artifacts", response_model=RunArtifactsView, summary="A run's artifacts")
def run_artifacts(
    response: Response,
    run_id: str,
    after: int | None = Query(
        None,
        ge=0,
        le=MAX_OFFSET,
        description="Where the page starts: the `Kaon-Next` header of the page before.",
    ),
    offset: int = Query(
        0, ge=0, le=MAX_OFFSET, description="Deprecated: `after` (Kaon-Next) pages."
    ),
    limit: int = Query(ARTIFACTS_PAGE, ge=1, le=ARTIFACTS_PAGE, description="Step runs."),
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> RunArtifactsView:
    """The artifacts (and inline values) of one page of the run's step runs, every level in
    creation order, with lineage. While more remain, ``Kaon-Next`` says where the next page
    starts (send it back as ``after``; the body's ``next_offset`` says the same, for
    ``offset``, deprecated)."""
    full = _readable(services, _, run_id)
    start = after if after is not None else offset
    view = services.runs.experiments.run_artifacts(full, offset=start, limit=limit)
    next_page(response, view.next_offset)
    return view


@router.get("/{run_id}/steps/{path}", response_model=StepRunView, summary="Get a step run")
def get_step(
    run_id: str,
    path: str,
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> StepRunView:
    """One step run (``train``, ``segments[3].train``) with its attempts."""
    full = _readable(services, _, run_id)
    return RunReads(services.store).step(full, path).step


@router.get("/{run_id}/steps/{path}/attempts", response_model=list[AttemptView], summary="Attempts")
def step_attempts(
    run_id: str,
    path: str,
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[AttemptView]:
    """The attempts of a step run, in order."""
    return get_step(run_id, path, _, services).attempt_list


@router.get("/{run_id}/steps/{path}/logs", response_model=list[LogView], summary="Step logs")
def step_logs(
    run_id: str,
    path: str,
    attempt: int | None = Query(None, ge=1, le=1_000_000),
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[LogView]:
    """A step run's log lines (every attempt, or one), in the order written."""
    return services.runs.logs(_readable(services, _, run_id), path, attempt=attempt)


@router.get(
    "/{run_id}/steps/{path}/metrics", response_model=list[MetricView], summary="Step metrics"
)
def step_metrics(
    run_id: str,
    path: str,
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[MetricView]:
    """The metrics one step run reported."""
    full = _readable(services, _, run_id)
    return RunReads(services.store).step(full, path).metrics

"""What the web UI's workflow page and step panel read besides runs and steps: a version's
typed parameters (the start form), a diff between two versions, who did what (the audit trail
of a workflow or a run), why a step was or was not a cache hit, previews of its outputs and
their lineage both ways.

Each route needs the ``viewer`` role on the workflow concerned (its owner group decides), like
the other reads of a workflow's objects; the audit trail of everything stays admin-only
(``GET /audit``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Response

from kaon.api.deps import Principal, Services, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.api.paging import KEYSET, keyset, keyset_text, next_page
from kaon.errors import NotFoundError
from kaon.model.status import RunStatus
from kaon.model.values import ArtifactRef
from kaon.service.experiment_views import ExplainView, LineageView
from kaon.service.limits import MAX_OFFSET, MAX_VERSION
from kaon.service.previews import PreviewView, preview
from kaon.service.registry_views import AuditView
from kaon.service.workflow_details import (
    ParamsView,
    RunHistoryView,
    VersionDiffView,
    audit_views,
    params_view,
    run_history,
    version_diff,
)
from kaon.store.reads import MAX_PAGE, RunHistoryQuery
from kaon.store.registry import AuditRecord

router = APIRouter(tags=["details"], responses=ERROR_RESPONSES)

_Name = Path(max_length=200)
_StepPath = Query(..., max_length=2000, description="``train``, ``segments[3].train``")
_Output = Query(None, max_length=200, description="The output name (default: the only one).")


@router.get("/workflows/{name}/params", response_model=ParamsView, summary="Start form")
def workflow_params(
    name: str = _Name,
    version: int | None = Query(None, ge=1, le=MAX_VERSION, description="Default: the active one."),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> ParamsView:
    """The typed parameters of a version (the active one by default), in declaration order:
    name, type, default or computed default, description. What a start form is made of."""
    services.authorize(principal, "viewer", workflow=name)
    workflow = services.registry.registry.get_workflow(name)
    number = version or workflow.active_version or workflow_latest(services, name)
    record = services.registry.registry.get_version(name, number)
    return params_view(name, number, services.registry.spec(record.definition_hash))


@router.get("/workflows/{name}/diff", response_model=VersionDiffView, summary="Diff versions")
def workflow_diff(
    name: str = _Name,
    old: int = Query(..., ge=1, le=MAX_VERSION, description="The version to compare from."),
    new: int = Query(..., ge=1, le=MAX_VERSION, description="The version to compare to."),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> VersionDiffView:
    """Unified diffs, made on the server, of two versions' workflow files, stored
    definitions and bundle files (the files pushed beside the workflow file)."""
    services.authorize(principal, "viewer", workflow=name)
    registry = services.registry.registry
    before, after = registry.get_version(name, old), registry.get_version(name, new)
    return version_diff(
        before,
        after,
        services.store.get_definition(before.definition_hash).spec,
        services.store.get_definition(after.definition_hash).spec,
        services.registry.sources_dir,
        services.registry.bundles.ensure,
    )


@router.get("/workflows/{name}/runs", response_model=RunHistoryView, summary="Run history")
def workflow_runs(
    response: Response,
    name: str = _Name,
    status: list[RunStatus] = Query([], description="Only these statuses (repeatable)."),
    since: float | None = Query(None, ge=0, le=1e11, description="Created at or after (Unix s)."),
    until: float | None = Query(None, ge=0, le=1e11, description="Created at or before."),
    q: str | None = Query(None, max_length=200, description="Text in the id, params, labels."),
    limit: int = Query(25, ge=1, le=MAX_PAGE),
    before: str | None = Query(
        None,
        pattern=KEYSET,
        description="Only the runs after this one in the list: the `Kaon-Next` header of "
        "the page before (`CREATED_AT,RUN_ID`).",
    ),
    offset: int = Query(
        0, ge=0, le=MAX_OFFSET, description="Deprecated: `before` (Kaon-Next) pages."
    ),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> RunHistoryView:
    """A page of the workflow's runs, newest first, filtered, with the total matching. A
    full page's ``Kaon-Next`` header is where the next one starts (send it back as
    ``before``): its cost stays that of a page however deep, where ``offset`` (deprecated)
    steps over every run before the page."""
    services.authorize(principal, "viewer", workflow=name)
    query = RunHistoryQuery(
        workflow=name,
        statuses=tuple(status),
        since=since,
        until=until,
        text=q,
        limit=limit,
        offset=offset,
        before=keyset(before, "before") if before is not None else None,
    )
    view = run_history(services.store, query)
    if len(view.runs) == limit:
        next_page(response, keyset_text(view.runs[-1].created_at, view.runs[-1].id))
    return view


@router.get("/workflows/{name}/audit", response_model=list[AuditView], summary="Who did what")
def workflow_audit(
    response: Response,
    name: str = _Name,
    after: int = Query(0, ge=0, le=2**62, description="Only entries with larger ids."),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[AuditView]:
    """The audit trail of a workflow (pushes, activations, changes), oldest first; a full
    page's ``Kaon-Next`` says where the next one starts (send it back as ``after``)."""
    services.authorize(principal, "viewer", workflow=name)
    records = services.auth.registry.audit(target=f"workflow:{name}", after_id=after, limit=limit)
    return audit_page(response, records, limit)


@router.get("/runs/{run_id}/audit", response_model=list[AuditView], summary="Who acted on a run")
def run_audit(
    response: Response,
    run_id: str,
    after: int = Query(0, ge=0, le=2**62, description="Only entries with larger ids."),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[AuditView]:
    """Who killed, restarted, skipped or resumed the run, and when, oldest first; a full
    page's ``Kaon-Next`` says where the next one starts (send it back as ``after``)."""
    full = services.authorize_run(principal, "viewer", run_id)
    records = services.auth.registry.audit(target=f"run:{full}", after_id=after, limit=limit)
    return audit_page(response, records, limit)


@router.get("/runs/{run_id}/explain", response_model=ExplainView, summary="Cache decision")
def explain_step(
    run_id: str,
    path: str = _StepPath,
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> ExplainView:
    """Why the step run was a cache hit or miss (``kaon explain``): the verdict, its key's
    components, and what changed since the nearest earlier execution."""
    full = services.authorize_run(principal, "viewer", run_id)
    return services.runs.experiments.explain(full, path)


@router.get("/runs/{run_id}/preview", response_model=PreviewView, summary="Preview an output")
def preview_output(
    run_id: str,
    path: str = _StepPath,
    output: str | None = _Output,
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> PreviewView:
    """A bounded preview of one output: a table's first rows, an image, a notebook's HTML,
    a text's head, a value. Pickled values are not opened."""
    full = services.authorize_run(principal, "viewer", run_id)
    ref = services.runs.experiments.step_output_ref(full, path, output)
    return preview(services.runs.artifacts, ref)


@router.get("/runs/{run_id}/lineage", response_model=LineageView, summary="Lineage of an output")
def output_lineage(
    run_id: str,
    path: str = _StepPath,
    output: str | None = _Output,
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> LineageView:
    """Where an output came from (the outputs it was made from, one level) and which step
    runs used it; runs the caller may not read are left out."""
    full = services.authorize_run(principal, "viewer", run_id)
    ref = services.runs.experiments.step_output_ref(full, path, output)
    if not isinstance(ref, ArtifactRef):
        raise NotFoundError(f"output {output or ''} of {path} is a value: it has no lineage")
    return services.runs.experiments.lineage(
        ref.hash, depth=1, readable=services.run_reader(principal)
    )


def workflow_latest(services: Services, name: str) -> int:
    """The newest version of a workflow (for a deactivated one)."""
    versions = services.registry.versions(name, limit=1)
    if not versions:
        raise NotFoundError(f"workflow {name!r} has no version")
    return versions[-1].version


def audit_page(response: Response, records: list[AuditRecord], limit: int) -> list[AuditView]:
    """A page of an audit trail, ``Kaon-Next`` set when it is full."""
    next_page(response, records[-1].id if len(records) == limit else None)
    return audit_views(records)

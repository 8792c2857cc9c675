"""Workflows and versions: list, get, push, versions, activate, deactivate, properties."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Response

from kaon.api.deps import IDEMPOTENCY_KEY, Principal, Services, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.api.paging import next_page
from kaon.service.limits import LIST_PAGE, MAX_LIST_PAGE, MAX_RUNS_OFFSET, MAX_VERSION
from kaon.service.registry_views import (
    ActivateRequest,
    MatchRequest,
    PushRequest,
    PushResult,
    VersionMatch,
    VersionView,
    WorkflowPatch,
    WorkflowView,
)

MAX_VERSIONS = 1000  # versions one GET /workflows/{name}/versions answers at most

router = APIRouter(prefix="/workflows", tags=["workflows"], responses=ERROR_RESPONSES)

Name = str


@router.get("", response_model=list[WorkflowView], summary="List workflows")
def list_workflows(
    response: Response,
    limit: int = Query(LIST_PAGE, ge=1, le=MAX_LIST_PAGE),
    after: str | None = Query(
        None,
        min_length=1,
        max_length=200,
        description="Only the workflows named after this: the `Kaon-Next` header of the "
        "page before.",
    ),
    offset: int = Query(
        0, ge=0, le=MAX_RUNS_OFFSET, description="Deprecated: `after` (Kaon-Next) pages."
    ),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[WorkflowView]:
    """Registered workflows by name (another group's without their properties), ``limit``
    a page: a full page's ``Kaon-Next`` says where the next one starts (send it back as
    ``after``: workflows pushed meanwhile make none repeat or go missing, as ``offset``
    would)."""
    found = services.registry.workflows(limit=limit, offset=offset, after=after)
    next_page(response, found[-1].name if len(found) == limit else None)
    return [_shown(principal, v) for v in found]


def _shown(principal: Principal, view: WorkflowView) -> WorkflowView:
    """``view`` as ``principal`` may see it: a workflow it may not read keeps its name, owner
    group and versions, not its properties (alert webhook URLs are secrets)."""
    if principal.reads_everything or principal.can("viewer", view.owner_group):
        return view
    return view.model_copy(update={"properties": {}})


@router.post("", response_model=PushResult, summary="Push a workflow file")
def push(
    body: PushRequest,
    response: Response,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
    principal: Principal = Depends(require("owner")),
    services: Services = Depends(get_services),
) -> PushResult:
    """Validate a workflow file and store it as a new immutable version (identical content
    returns the existing version with ``created: false``; a retry with the same
    ``Idempotency-Key`` returns the first answer). The file is evaluated after the caller's
    right to push it was checked, in a sandboxed process (see the README)."""

    def work(_: dict[str, Any]) -> dict[str, Any]:
        result = services.registry.push(
            body.source,
            body.file_name,
            principal,
            workflow=body.workflow,
            activate=body.activate,
            owner_group=body.owner_group,
            files=body.files,
        )
        return result.model_dump(mode="json")

    request = {"route": "push", **body.model_dump(mode="json")}
    answer, replayed = services.once(principal, idempotency_key, request, {}, work)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return PushResult.model_validate(answer)


@router.post("/{name}/match", response_model=VersionMatch, summary="Find a file's version")
def match_version(
    name: Name,
    body: MatchRequest,
    principal: Principal = Depends(require("operator")),
    services: Services = Depends(get_services),
) -> VersionMatch:
    """The version of the workflow that holds exactly this file's content (what a push would
    return), or none: ``kaon run FILE`` by an operator runs it without pushing."""
    return services.registry.match(
        name,
        body.source,
        body.file_name,
        principal,
        workflow=body.workflow,
        files=body.files,
    )


@router.get("/{name}", response_model=WorkflowView, summary="Get a workflow")
def get_workflow(
    name: Name,
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> WorkflowView:
    """One workflow: active version, owner group, properties (for its readers)."""
    return _shown(principal, services.registry.workflow(name))


@router.patch("/{name}", response_model=WorkflowView, summary="Change workflow properties")
def patch_workflow(
    name: Name,
    body: WorkflowPatch,
    principal: Principal = Depends(require("owner")),
    services: Services = Depends(get_services),
) -> WorkflowView:
    """Merge properties (``null`` removes a key) and/or change the owner group; no new
    version."""
    return services.registry.update(
        name, principal, properties=body.properties, owner_group=body.owner_group
    )


@router.get("/{name}/versions", response_model=list[VersionView], summary="List versions")
def list_versions(
    name: Name,
    response: Response,
    before: int | None = Query(None, ge=1, le=MAX_VERSION, description="Versions below this."),
    limit: int = Query(MAX_VERSIONS, ge=1, le=MAX_VERSIONS),
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> list[VersionView]:
    """A workflow's versions, oldest first: the newest ``limit`` below ``before`` (every
    one, up to ``limit``, when absent). While older ones remain, ``Kaon-Next`` says where
    the next page starts (the first version of this page: send it back as ``before``).
    ``Kaon-Older: true|false`` says the same (deprecated: clients read ``Kaon-Next``)."""
    found = services.registry.versions(name, before=before, limit=limit + 1)
    older = len(found) > limit
    page = found[1:] if older else found
    response.headers["Kaon-Older"] = "true" if older else "false"
    next_page(response, page[0].version if older else None)
    return page


@router.get("/{name}/versions/{version}", response_model=VersionView, summary="Get a version")
def get_version(
    name: Name,
    version: int = Path(ge=1, le=MAX_VERSION),
    _: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> VersionView:
    """One version, with its source text (a reader of the workflow's group only)."""
    services.authorize(_, "viewer", workflow=name)
    return services.registry.version(name, version)


@router.post("/{name}/activate", response_model=WorkflowView, summary="Activate a version")
def activate(
    name: Name,
    body: ActivateRequest,
    principal: Principal = Depends(require("owner")),
    services: Services = Depends(get_services),
) -> WorkflowView:
    """Make a version the one new runs use."""
    return services.registry.activate(name, body.version, principal)


@router.post("/{name}/deactivate", response_model=WorkflowView, summary="Deactivate")
def deactivate(
    name: Name,
    principal: Principal = Depends(require("owner")),
    services: Services = Depends(get_services),
) -> WorkflowView:
    """No version is active: new runs need an explicit version."""
    return services.registry.deactivate(name, principal)

"""Health and readiness, metrics, the caller's identity, API tokens and the audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from kaon.api.deps import METRICS_PUBLIC, Principal, Services, bearer, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.api.metrics import CONTENT_TYPE
from kaon.api.paging import KEYSET, keyset, keyset_text, next_page
from kaon.errors import InvalidActionError, StoreError
from kaon.service.limits import LIST_PAGE, MAX_LIST_PAGE
from kaon.service.registry_views import (
    AuditView,
    RotateRequest,
    TokenRequest,
    TokenView,
    audit_view,
    token_view,
)

router = APIRouter(responses=ERROR_RESPONSES)


class Health(BaseModel):
    """The server is up; ``engine`` says whether its engine loop is alive."""

    status: str
    engine: bool


class WhoAmI(BaseModel):
    """The caller's identity."""

    name: str
    role: str
    groups: list[str]


@router.get("/healthz", response_model=Health, tags=["admin"], summary="Health check")
def healthz(services: Services = Depends(get_services)) -> Health:
    """Always 200 while the server answers (no token needed)."""
    alive = services.extras.get("engine_alive")
    engine = bool(alive()) if callable(alive) else False
    return Health(status="ok", engine=engine)


class Readiness(BaseModel):
    """Whether the server can do its work now: its store answers and its engine lives."""

    status: str
    store: bool
    engine: bool


@router.get(
    "/readyz",
    response_model=Readiness,
    tags=["admin"],
    summary="Readiness check",
    responses={503: {"model": Readiness, "description": "Not ready: the store or engine."}},
)
def readyz(response: Response, services: Services = Depends(get_services)) -> Readiness:
    """200 when the store answers a trivial read and the engine loop lives, else 503 with
    which one failed (no token needed): for a load balancer or Kubernetes readiness probe,
    while ``/healthz`` says only that the process answers (200 with the database down)."""
    alive = services.extras.get("engine_alive")
    engine = bool(alive()) if callable(alive) else False
    try:
        services.store.ping()
        store = True
    except StoreError:
        store = False
    ready = store and engine
    if not ready:
        response.status_code = 503
    return Readiness(status="ready" if ready else "not ready", store=store, engine=engine)


_viewer = require("viewer")


def _metrics_reader(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal | None:
    """Nobody when the operator made ``/metrics`` public, else a viewer (401/403 otherwise).
    While the store is down, a token verified in the last
    :data:`~kaon.service.auth.STORE_DOWN_TRUST_S` seconds still scrapes (the page then says
    ``kaon_store_up 0``): the scrape is how an outage is seen."""
    services = get_services(request)
    if services.extras.get(METRICS_PUBLIC):
        return None
    secret = credentials.credentials if credentials else None
    principal = services.auth.authenticate(secret, store_down=True)
    request.state.principal = principal  # who is refused, when the check refuses
    services.auth.check(principal, "viewer")
    return principal


@router.get(
    "/metrics",
    tags=["admin"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text."}},
)
def metrics(
    _: Principal | None = Depends(_metrics_reader), services: Services = Depends(get_services)
) -> Response:
    """Runs and steps by status, queue depth, step latency histogram, trigger lag, HTTP
    request counts and latency, process metrics and ``kaon_build_info``. Needs a viewer's
    token unless the server runs with ``--metrics-public``."""
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)


@router.get("/whoami", response_model=WhoAmI, tags=["admin"], summary="Who am I")
def whoami(principal: Principal = Depends(require("viewer"))) -> WhoAmI:
    """The name, role and groups of the caller's token."""
    return WhoAmI(name=principal.name, role=principal.role, groups=list(principal.groups))


@router.post(
    "/tokens", response_model=TokenView, status_code=201, tags=["admin"], summary="New token"
)
def create_token(
    body: TokenRequest,
    principal: Principal = Depends(require("admin")),
    services: Services = Depends(get_services),
) -> TokenView:
    """Create an API token; the secret is in this response only."""
    record, secret = services.auth.create_token(
        body.name, body.role, body.groups, by=principal, expires_in=body.expires_in
    )
    return token_view(record, secret)


@router.post(
    "/tokens/{token_id}/rotate", response_model=TokenView, tags=["admin"], summary="Rotate"
)
def rotate_token(
    token_id: str,
    body: RotateRequest | None = Body(None),
    principal: Principal = Depends(require("viewer")),
    services: Services = Depends(get_services),
) -> TokenView:
    """A new secret for a token (in this response only); the old one stops working at once.
    The token keeps its expiry unless ``expires_in`` sets a new one. Any token may rotate
    itself (and shorten its own lifetime); rotating another token, or making a token live
    longer, needs an admin. An expired token is rotated only with a new ``expires_in``
    (409 without: its secret would be dead at once)."""
    if token_id != principal.token_id:
        services.auth.check(principal, "admin")
    expires_in = body.expires_in if body else None
    record, secret = services.auth.rotate(
        token_id, by=principal, expires_in=expires_in, extend=principal.is_admin
    )
    return token_view(record, secret)


@router.get("/tokens", response_model=list[TokenView], tags=["admin"], summary="List tokens")
def list_tokens(
    response: Response,
    after: str | None = Query(
        None,
        pattern=KEYSET,
        description="Only the tokens after this one: the `Kaon-Next` header of the page "
        "before (`CREATED_AT,TOKEN_ID`).",
    ),
    limit: int = Query(LIST_PAGE, ge=1, le=MAX_LIST_PAGE),
    _: Principal = Depends(require("admin")),
    services: Services = Depends(get_services),
) -> list[TokenView]:
    """Tokens, oldest first (never the secrets), ``limit`` a page: while more may remain,
    ``Kaon-Next`` says where the next page starts (send it back as ``after``)."""
    cursor = keyset(after, "after") if after is not None else None
    found = services.auth.registry.list_tokens(after=cursor, limit=limit)
    if len(found) == limit:
        next_page(response, keyset_text(found[-1].created_at, found[-1].id))
    return [token_view(t) for t in found]


@router.delete("/tokens/{token_id}", status_code=204, tags=["admin"], summary="Revoke a token")
def revoke_token(
    token_id: str,
    principal: Principal = Depends(require("admin")),
    services: Services = Depends(get_services),
) -> Response:
    """Revoke a token: it stops working at once. A token cannot revoke itself (409)."""
    if token_id == principal.token_id:
        raise InvalidActionError("a token cannot revoke itself: use another admin token")
    services.auth.revoke(token_id, by=principal)
    return Response(status_code=204)


@router.get("/audit", response_model=list[AuditView], tags=["admin"], summary="Audit trail")
def audit(
    response: Response,
    target: str | None = Query(None, max_length=300),
    actor: str | None = Query(None, max_length=200, description="A token's name (not unique)."),
    token_id: str | None = Query(
        None, max_length=200, description="A token's id: the entries it made."
    ),
    after: int = Query(0, ge=0, le=2**62),
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(require("admin")),
    services: Services = Depends(get_services),
) -> list[AuditView]:
    """Who did what, oldest first (entries with ids above ``after``); a full page's
    ``Kaon-Next`` says where the next one starts (send it back as ``after``)."""
    records = services.auth.registry.audit(
        target=target, actor=actor, token_id=token_id, after_id=after, limit=limit
    )
    next_page(response, records[-1].id if len(records) == limit else None)
    return [audit_view(r) for r in records]

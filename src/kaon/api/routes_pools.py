"""Pools and tag permits: ``GET /pools``, ``PUT|DELETE /pools/{name}``, ``GET /permits``,
``PUT|DELETE /permits/{tag}`` (changes need an admin; see :mod:`kaon.service.pools`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Response

from kaon.api.deps import Principal, Services, get_services, require
from kaon.api.errors import ERROR_RESPONSES
from kaon.service.pools import PermitRequest, PermitView, PoolAdmin, PoolRequest, PoolView

router = APIRouter(responses=ERROR_RESPONSES, tags=["pools"])


def _admin(services: Services) -> PoolAdmin:
    return PoolAdmin(services.store, services.auth)


@router.get("/pools", response_model=list[PoolView], summary="List pools")
def list_pools(
    _: Principal = Depends(require("viewer")), services: Services = Depends(get_services)
) -> list[PoolView]:
    """Every pool: its slots and quotas, and what running attempts use now (all engines)."""
    return _admin(services).pools()


@router.put("/pools/{name}", response_model=PoolView, summary="Create or change a pool")
def put_pool(
    body: PoolRequest,
    name: str = Path(min_length=1, max_length=63),
    principal: Principal = Depends(require("admin")),
    services: Services = Depends(get_services),
) -> PoolView:
    """Set a pool's slots and resource quotas (admin only; audited). Running attempts keep
    their slots; new ones wait until the pool has room."""
    return _admin(services).set_pool(name, body, principal)


@router.delete("/pools/{name}", status_code=204, summary="Delete a pool")
def delete_pool(
    name: str = Path(min_length=1, max_length=63),
    principal: Principal = Depends(require("admin")),
    services: Services = Depends(get_services),
) -> Response:
    """Delete a pool (admin only; audited). New runs naming it are refused."""
    _admin(services).delete_pool(name, principal)
    return Response(status_code=204)


@router.get("/permits", response_model=list[PermitView], summary="List tag permits")
def list_permits(
    _: Principal = Depends(require("viewer")), services: Services = Depends(get_services)
) -> list[PermitView]:
    """Every tag permit and how many attempts carrying its tag run now (all engines)."""
    return _admin(services).permits()


@router.put("/permits/{tag}", response_model=PermitView, summary="Create or change a permit")
def put_permit(
    body: PermitRequest,
    tag: str = Path(min_length=1, max_length=63),
    principal: Principal = Depends(require("admin")),
    services: Services = Depends(get_services),
) -> PermitView:
    """At most ``max`` attempts carrying ``tag`` run at once, across every workflow, run and
    engine (admin only; audited)."""
    return _admin(services).set_permit(tag, body, principal)


@router.delete("/permits/{tag}", status_code=204, summary="Delete a tag permit")
def delete_permit(
    tag: str = Path(min_length=1, max_length=63),
    principal: Principal = Depends(require("admin")),
    services: Services = Depends(get_services),
) -> Response:
    """Delete a tag permit (admin only; audited): its tag no longer limits anything."""
    _admin(services).delete_permit(tag, principal)
    return Response(status_code=204)

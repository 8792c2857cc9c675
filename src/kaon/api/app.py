"""The HTTP API: :func:`create_app` builds the FastAPI application over the service layer.

Routers: workflows and versions, runs and step runs, signals and the live event stream,
admin (health, metrics, tokens, audit), and -- when present -- the trigger engineer's
``kaon.api.routes_triggers`` (cron, backfills, unblock...). The OpenAPI schema is served at
``/openapi.json`` (Swagger UI at ``/docs``, ReDoc at ``/redoc``, the web UI at ``/``: see
:mod:`kaon.ui`).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import kaon
from kaon.api import (
    routes_admin,
    routes_artifacts,
    routes_details,
    routes_events,
    routes_pools,
    routes_reads,
    routes_runs,
    routes_workflows,
)
from kaon.api.deps import Services
from kaon.api.errors import install_error_handlers
from kaon.api.feed_hub import FeedHub
from kaon.api.guard import RequestGuard, route_roles
from kaon.api.metrics import ServerMetrics
from kaon.api.openapi import install_openapi, operation_id
from kaon.errors import ConfigurationError
from kaon.service.auth import AuthService
from kaon.service.local import LocalService
from kaon.service.push_sandbox import SandboxLimits
from kaon.service.registry import RegistryService
from kaon.service.run_tokens import RunTokens
from kaon.service.sandboxing import push_sandbox
from kaon.service.settings import Settings
from kaon.store.registry import SQLRegistryStore
from kaon.store.sql import SQLStore
from kaon.ui import install as install_ui

log = logging.getLogger("kaon.api")


def build_services(settings: Settings) -> Services:
    """Open the store named by ``settings`` and build every service over it.

    Raises ConfigurationError when the store is not a SQL store, and what opening the store
    raises (StoreError, SchemaVersionError)."""
    runs = LocalService(settings)
    store = runs.store
    if not isinstance(store, SQLStore):
        raise ConfigurationError(f"the server needs a SQL store, not {type(store).__name__}")
    registry_store = SQLRegistryStore(store)
    auth = AuthService(registry_store, run_tokens=RunTokens.for_home(Path(settings.home)))
    registry = RegistryService(
        store,
        registry_store,
        auth,
        sources_dir=Path(settings.home).absolute() / "sources",
        executor=settings.executor,
    )
    # A pushed file's top-level code runs at push: in the step sandbox, as its steps will.
    registry.sandbox = SandboxLimits(isolation=push_sandbox(settings))
    runs.localize = registry.bundles.localize  # code pushed through any replica runs here
    runs.owner_group_of = registry.owner_group  # runs driven here are scoped as the engine's
    return Services(settings, store, runs, registry, auth, ServerMetrics(store))


def create_app(services: Services) -> FastAPI:
    """The API application over ``services`` (closing them is the caller's business)."""
    app = FastAPI(
        title="Kaon",
        version=getattr(kaon, "__version__", "0"),
        description="Orchestrate and schedule machine-learning pipelines.",
        docs_url=None,  # served from local assets by kaon.ui (works offline)
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    install_openapi(app)
    app.state.services = services
    # No redirect to the slash-less path: it would name the request's Host header.
    app.router.redirect_slashes = False
    app.state.stopping = threading.Event()
    app.state.feed_hub = FeedHub(services.store, app.state.stopping)
    install_error_handlers(app)
    routers = [
        routes_admin.router,
        routes_workflows.router,
        routes_runs.router,
        routes_reads.router,
        routes_details.router,
        routes_events.router,
        routes_artifacts.router,
        routes_pools.router,
    ]
    for router in routers:
        app.include_router(router)
    triggers = _include_trigger_routes(app)
    # The guard authenticates (and checks the route's role) before any body is read; the UI's
    # session cookie (added by install_ui, so outside the guard) becomes a bearer token
    # before the guard sees it.
    app.add_middleware(
        RequestGuard,
        auth=services.auth,
        max_body=services.settings.max_body_bytes,
        roles=route_roles([*routers, *triggers]),
    )
    install_ui(app)
    app.add_middleware(_CountRequests, services=services)
    return app


def stop_streams(app: FastAPI) -> None:
    """Ask open event streams to end (on shutdown)."""
    app.state.stopping.set()


def _include_trigger_routes(app: FastAPI) -> list[APIRouter]:
    try:
        routes_triggers = importlib.import_module("kaon.api.routes_triggers")
    except ModuleNotFoundError as exc:
        if exc.name != "kaon.api.routes_triggers":
            raise
        log.info("kaon.api.routes_triggers not found: serving without trigger routes")
        return []
    router = getattr(routes_triggers, "router", None)
    if router is None:
        log.info("kaon.api.routes_triggers has no router yet: serving without trigger routes")
        return []
    app.include_router(router)
    return [router]


# The methods ``/metrics`` names; any other (a client may send any token as its method)
# is counted as ``other``, so no client can make a series per request.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """``method`` as ``/metrics`` labels it: one of :data:`METHODS`, else ``other``."""
    return method if method in METHODS else "other"


class _CountRequests:
    """Pure ASGI middleware for ``/metrics``: counts responses by method and status, and
    times each request (to its response's last byte) by method and route template. Both
    labels are bounded: a method outside :data:`METHODS` is ``other``, an unrouted path
    ``unmatched``."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.counter = services.metrics.requests
        self.latency = services.metrics.latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = method_label(scope["method"])

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counter.labels(method, str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            # The route's template (``/runs/{run_id}``), never the raw path: bounded labels.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.latency.labels(method, route).observe(time.perf_counter() - started)

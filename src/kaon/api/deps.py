"""FastAPI dependencies shared by every router: the app's services and authentication.

Routers (ours and the trigger engineer's ``routes_triggers``) use them like this::

    from kaon.api.deps import Principal, Services, get_services, require

    @router.post("/things")
    def make(
        principal: Principal = Depends(require("operator")),
        services: Services = Depends(get_services),
    ) -> ...:
        services.authorize(principal, "operator", workflow="nightly")  # per owner group
        services.audit(principal, "thing.make", "workflow:nightly", {...})

``require(role)`` checks the bearer token and the role's rank; checks that depend on a
workflow's owner group are :meth:`Services.authorize`. Errors raised in handlers are mapped to
HTTP codes in one place (:mod:`kaon.api.errors`): raise Kaon's errors, not HTTPException.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kaon.service.auth import (
    AuthenticationError,
    AuthService,
    PermissionDeniedError,
    Principal,
    role_rank,
)

if TYPE_CHECKING:
    from kaon.api.metrics import ServerMetrics
    from kaon.service.local import LocalService
    from kaon.service.registry import RegistryService
    from kaon.service.settings import Settings
    from kaon.store.sql import SQLStore

__all__ = [
    "AuthenticationError",
    "PermissionDeniedError",
    "Principal",
    "Services",
    "get_services",
    "require",
]

_bearer = HTTPBearer(auto_error=False, description="An API token (`kaon token create`).")


@dataclass
class Services:
    """What the API's handlers work with; one instance per app (``app.state.services``).

    ``store`` is the state store (a :class:`SQLStore`: extensions use ``reading()`` /
    ``writing()``); ``runs`` the run operations (the same :class:`LocalService` the CLI uses
    locally); ``registry`` workflows and versions; ``auth`` tokens and the audit trail;
    ``metrics`` the Prometheus registry of ``/metrics`` (trigger lag is recorded through
    :mod:`kaon.service.telemetry`); ``extras`` what the server adds: ``engine``,
    ``engine_alive``, ``triggers`` (the TriggerService), ``alerts``.
    """

    settings: Settings
    store: SQLStore
    runs: LocalService
    registry: RegistryService
    auth: AuthService
    metrics: ServerMetrics
    extras: dict[str, Any] = field(default_factory=dict)

    def authorize(self, principal: Principal, role: str, *, workflow: str | None = None) -> None:
        """Raise PermissionDeniedError unless ``principal`` may act with ``role`` on
        ``workflow`` (its owner group decides; an unknown workflow has none)."""
        group = self.registry.owner_group(workflow) if workflow else None
        self.auth.check(principal, role, owner_group=group)

    def audit(
        self, principal: Principal, action: str, target: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record that ``principal`` did ``action`` to ``target`` (e.g. ``run:<id>``)."""
        self.auth.audit(principal.name, action, target, data)


def get_services(request: Request) -> Services:
    """The app's :class:`Services` (set by :func:`kaon.api.app.create_app`)."""
    return cast("Services", request.app.state.services)


def require(role: str) -> Callable[..., Principal]:
    """A dependency that authenticates the bearer token and demands at least ``role``.

    It yields the :class:`Principal` and raises AuthenticationError (401) or
    PermissionDeniedError (403). Raises ValueError at once for an unknown role name.
    """
    role_rank(role)

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> Principal:
        services = get_services(request)
        found = getattr(request.state, "principal", None)  # the request guard's, if any
        principal = (
            found
            if isinstance(found, Principal)
            else services.auth.authenticate(credentials.credentials if credentials else None)
        )
        services.auth.check(principal, role)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency

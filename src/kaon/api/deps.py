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

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kaon.errors import AuthenticationError, KaonError, PermissionDeniedError
from kaon.service.auth import (
    AuthService,
    Principal,
    role_rank,
)
from kaon.service.idempotency import Idempotency, Work
from kaon.service.views import RunView

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

IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    max_length=200,
    description="Send the same key again (a retry) to get the first answer, not a second run.",
)
"""The ``Idempotency-Key`` header parameter of the routes that create things."""

_bearer = HTTPBearer(auto_error=False, description="An API token (`kaon token create`).")
bearer = _bearer  # for routes whose access depends on the server's options (/metrics)
# Key of Services.extras: True when the operator serves /metrics without a token.
METRICS_PUBLIC = "metrics_public"


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

    def authorize(
        self,
        principal: Principal,
        role: str,
        *,
        workflow: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Raise PermissionDeniedError unless ``principal`` may act with ``role`` on
        ``workflow`` (its owner group decides; an unknown workflow has none), or on the run
        ``run_id`` of it (what a run token may act on).

        The one per-object check of every route (reads pass ``viewer``): all of them end
        in :meth:`AuthService.check`, i.e. :meth:`Principal.can`."""
        group = self.registry.owner_group(workflow) if workflow else None
        self.auth.check(principal, role, owner_group=group, run_id=run_id)

    def authorize_run(self, principal: Principal, role: str, run_id: str) -> str:
        """Resolve ``run_id`` (a prefix) and :meth:`authorize` ``role`` on its workflow;
        returns the full id. Raises NotFoundError, PermissionDeniedError.

        A run token (a step's) acts on its run only while the run is active: it stays valid
        after the run ended (a day), when no step of the run needs it, and a process a step
        left behind must not delete the run's records nor restart it. It still reads it."""
        full = self.runs.resolve_run_id(run_id)
        record = self.store.get_run(full)
        self.authorize(principal, role, workflow=record.workflow, run_id=full)
        if principal.run_scope is not None and role != "viewer" and record.status.is_terminal:
            raise PermissionDeniedError(
                f"a run token acts on its run only while the run is active; run {full} is "
                f"{record.status.value}"
            )
        return full

    def waiting(self, view: RunView) -> str | None:
        """Why a pending run waits: its workflow's run strategy holds it back (see
        :func:`kaon.triggers.strategies.waiting_reason`); None otherwise."""
        if view.status != "pending":
            return None
        from kaon.triggers import strategies

        try:
            return strategies.waiting_reason(self.store, self.store.get_run(view.id))
        except KaonError:  # it finished meanwhile, or a store without the registry
            return None

    def run_reader(self, principal: Principal) -> Callable[[str], bool] | None:
        """What ``principal`` may read, as a test of a run id that asks once per run (None:
        every run), for reads that filter runs as they go (lineage, blobs)."""
        if principal.reads_everything:
            return None
        known: dict[str, bool] = {}

        def readable(run_id: str) -> bool:
            if run_id not in known:
                known[run_id] = self.may_read_run(principal, run_id)
            return known[run_id]

        return readable

    def workflow_reader(self, principal: Principal) -> Callable[[str], bool] | None:
        """What ``principal`` may read, as a test of a workflow's name that looks its owner
        group up once per workflow (None: every workflow), for lists that show every name
        but another group's objects without what they hold (runs' parameters and errors,
        triggers' definitions, backfills' skipped slots)."""
        if principal.reads_everything:
            return None
        known: dict[str, bool] = {}

        def readable(workflow: str) -> bool:
            if workflow not in known:
                group = self.registry.owner_group(workflow)
                known[workflow] = principal.can("viewer", group)
            return known[workflow]

        return readable

    def may_read_run(self, principal: Principal, run_id: str) -> bool:
        """True when ``principal`` may read the run (a missing run: False)."""
        if principal.reads_everything:
            return True
        try:
            workflow = self.store.get_run(run_id).workflow
        except KaonError:
            return False
        return principal.can("viewer", self.registry.owner_group(workflow), run_id=run_id)

    def once(
        self,
        principal: Principal,
        key: str | None,
        request: Any,
        reservation: dict[str, Any],
        work: Work,
    ) -> tuple[dict[str, Any], bool]:
        """Do ``work`` once per (caller, ``Idempotency-Key``): see
        :mod:`kaon.service.idempotency`. Returns the answer and whether it is a replay."""
        found = self.extras.get("idempotency")
        if not isinstance(found, Idempotency):
            found = self.extras["idempotency"] = Idempotency(self.auth.registry)
        actor = principal.token_id or principal.name
        return found.once(actor, key, request, reservation, work)

    def audit(
        self, principal: Principal, action: str, target: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record that ``principal`` did ``action`` to ``target`` (e.g. ``run:<id>``)."""
        self.auth.audit(principal, action, target, data)


def get_services(request: Request) -> Services:
    """The app's :class:`Services` (set by :func:`kaon.api.app.create_app`)."""
    return cast("Services", request.app.state.services)


REQUIRE_PREFIX = "require_"
"""The name of a :func:`require` dependency is this and the role (``require_operator``)."""


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
        # Who is refused, when the check below refuses: the audit names the token.
        request.state.principal = principal
        # A run token is good on its own run's routes only (``/runs/{run_id}/...``).
        services.auth.check(principal, role, run_id=request.path_params.get("run_id"))
        return principal

    dependency.__name__ = f"{REQUIRE_PREFIX}{role}"  # how the request guard finds it
    return dependency

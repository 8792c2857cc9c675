"""The request guard: authenticate first, then read a bounded body, then check it.

A pure ASGI middleware in front of every route. For a request that may carry a body (any
method but GET, HEAD and OPTIONS) it

1. authenticates the bearer token *before* reading a byte of the body: an anonymous or
   forged request gets 401 whatever it sends, and costs the server nothing;
2. refuses a body longer than the route's limit with 413: at once when ``Content-Length``
   says so, else as soon as the streamed bytes pass it (never more than the limit is held);
3. parses a JSON body once and refuses with 422 what could not be stored safely: bytes that
   are not UTF-8, JSON that does not parse or nests deeper than
   :data:`kaon.service.safety.MAX_DEPTH`, strings with lone surrogates
   (:func:`kaon.service.safety.check_value`).

The principal it authenticated is left in the request's state, where
:func:`kaon.api.deps.require` finds it (reads authenticate in ``require`` alone).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kaon.api.deps import REQUIRE_PREFIX
from kaon.api.errors import audit_refusal, error_body, status_of
from kaon.errors import KaonError
from kaon.service.auth import AuthService
from kaon.service.registry_views import ErrorBody, ProblemView
from kaon.service.safety import UnsafeValueError, check_value

BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_MAX_BODY = 5_000_000
PUSH_MAX_BODY = 12_000_000  # a workflow file (5 MB) and its bundle (5 MB), with JSON overhead
LOGIN_MAX_BODY = 16_384
SMALL_BODY = 65_536  # a viewer's write (its own token's rotation) or a path naming no route
INLINE_CHECK_BYTES = 32_768  # a body checked on the event loop (larger ones in a thread)
OPEN_ROUTES = frozenset({("POST", "/ui/login"), ("POST", "/ui/logout")})
"""Routes whose body is how one authenticates (the UI's login form): bounded, not guarded."""


class _TooLarge(Exception):
    pass


class RequestGuard:
    """Authenticate, bound and check request bodies before any route sees them."""

    def __init__(
        self,
        app: ASGIApp,
        auth: AuthService,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        route_limits: Mapping[tuple[str, str], int] | None = None,
        roles: Sequence[RouteRole] = (),
    ) -> None:
        self.app = app
        self.auth = auth
        self.roles = tuple(roles)
        self.max_body = max_body
        push = max(max_body, PUSH_MAX_BODY)
        self.route_limits = dict(route_limits or {("POST", "/workflows"): push})

    def limit_for(self, method: str, path: str) -> int:
        """The body limit of a route (bytes); a version match carries what a push does."""
        path = path.rstrip("/") or "/"
        if method == "POST" and path.startswith("/workflows/") and path.endswith("/match"):
            path = "/workflows"
        return self.route_limits.get((method, path), self.max_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODYLESS:
            await self.app(scope, receive, send)
            return
        route = (scope["method"], scope["path"])
        refusal = None if route in OPEN_ROUTES else await self._authenticate(scope)
        role: str | None = None
        if refusal is None and route not in OPEN_ROUTES:
            refusal, role = await self._authorize(scope)
        if refusal is None:
            limit = LOGIN_MAX_BODY if route in OPEN_ROUTES else self.limit_for(*route)
            if role in (None, "viewer") and route not in OPEN_ROUTES:
                # No API route a viewer may write to takes more than a few fields, and a path
                # that names no route takes nothing: such bodies stay small.
                limit = min(limit, SMALL_BODY)
            body, refusal = await self._read(scope, receive, limit)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _authenticate(self, scope: Scope) -> JSONResponse | None:
        secret = bearer_secret(scope)
        try:
            principal = await anyio.to_thread.run_sync(self.auth.authenticate, secret)
        except KaonError as exc:
            status = status_of(exc)
            if status == 401:
                app = scope.get("app")
                if app is not None:
                    await audit_refusal(app, "anonymous", 401, scope["method"], scope["path"], exc)
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return _answer(status, error_body(exc), headers)
        scope.setdefault("state", {})["principal"] = principal
        return None

    async def _authorize(self, scope: Scope) -> tuple[JSONResponse | None, str | None]:
        """Refuse, before its body is read, a request whose route needs a role the principal
        lacks (a viewer's ``POST /runs``): the route's own check would refuse it too, after
        the server had parsed megabytes for nothing. Whose group owns what is still the
        route's to decide. Also returns the role the route needs (None: no API route)."""
        principal = scope.get("state", {}).get("principal")
        method, path = scope["method"], scope["path"]
        needed = next(
            (
                (r.role, match)
                for r in self.roles
                if method in r.methods and (match := r.pattern.match(path)) is not None
            ),
            None,
        )
        if needed is None or principal is None:
            return None, None
        role, match = needed
        try:
            self.auth.check(principal, role, run_id=match.groupdict().get("run_id"))
        except KaonError as exc:
            app = scope.get("app")
            if app is not None:
                await audit_refusal(app, principal, status_of(exc), method, path, exc)
            return _answer(status_of(exc), error_body(exc)), role
        return None, role

    async def _read(
        self, scope: Scope, receive: Receive, limit: int
    ) -> tuple[bytes, JSONResponse | None]:
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return b"", _too_large(limit)
        try:
            body = await _bounded(receive, limit)
        except _TooLarge:
            return b"", _too_large(limit)
        if body and _is_json(scope):
            # Parsing and walking megabytes of JSON takes the CPU for a while: off the event
            # loop, so that no request body (even one refused later) stalls every other
            # request, ``/healthz`` included.
            if len(body) > INLINE_CHECK_BYTES:
                problem = await anyio.to_thread.run_sync(_json_problem, body)
            else:
                problem = _json_problem(body)
            if problem is not None:
                return body, _answer(422, problem)
        return body, None


async def _bounded(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class RouteRole:
    """A route's methods and path pattern, and the role its ``require(role)`` demands."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    role: str


def route_roles(routers: Iterable[APIRouter]) -> list[RouteRole]:
    """The roles the routes of ``routers`` require (read from their ``require`` dependency),
    for the guard to check before reading a body."""
    found: list[RouteRole] = []
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            for dependency in route.dependant.dependencies:
                name = getattr(dependency.call, "__name__", "")
                if name.startswith(REQUIRE_PREFIX):
                    pattern, _, _ = compile_path(route.path)
                    role = name[len(REQUIRE_PREFIX) :]
                    found.append(RouteRole(frozenset(route.methods or ()), pattern, role))
                    break
    return found


def _json_problem(body: bytes) -> ErrorBody | None:
    try:
        text = body.decode("utf-8")
        value = json.loads(text)
    except UnicodeDecodeError:
        return _invalid("the body is not UTF-8 text")
    except RecursionError:
        return _invalid("the JSON body nests too deep")
    except ValueError as exc:
        return _invalid(f"the body is not valid JSON: {exc}")
    try:
        check_value(value, "body")
    except UnsafeValueError as exc:
        return error_body(exc)
    return None


def _invalid(message: str) -> ErrorBody:
    problem = ProblemView(message=message, field="body")
    return ErrorBody(error="ValidationError", message=f"body: {message}", problems=[problem])


def _too_large(limit: int) -> JSONResponse:
    body = ErrorBody(error="PayloadTooLarge", message=f"the body exceeds {limit:,} bytes")
    return _answer(413, body, {"Connection": "close"})


def _answer(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1")).strip()
    return None


def bearer_secret(scope: Scope) -> str | None:
    """The token a request presents (``Authorization: Bearer ...``; the UI's session cookie
    is turned into that header before), or None."""
    value = _header(scope, b"authorization")
    if not value:
        return None
    scheme, _, secret = value.partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None


def _is_json(scope: Scope) -> bool:
    kind = (_header(scope, b"content-type") or "").lower()
    return not kind or "json" in kind

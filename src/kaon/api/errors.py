"""The one place where Kaon's error tree becomes HTTP status codes.

=======================================================  =====
error                                                    code
=======================================================  =====
request body/query/path invalid (FastAPI validation)     422
DefinitionError (ParameterError, ExpressionError, ...)   422
AuthenticationError                                      401
PermissionDeniedError                                    403
NotFoundError                                            404
InvalidActionError (IllegalTransitionError), LeaseError  409
ConfigurationError                                       400
body over the route's limit (the request guard)          413
StoreUnavailableError (the database briefly unreachable)  503 (``Retry-After: 1``)
any other error                                          500
=======================================================  =====

Every answer's body is an :class:`~kaon.service.registry_views.ErrorBody`; definition and
validation errors list their problems with file, line and field.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from kaon.errors import (
    AuthenticationError,
    ConfigurationError,
    DefinitionError,
    InvalidActionError,
    KaonError,
    LeaseError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    StoreUnavailableError,
    WriteOutcomeUnknownError,
)
from kaon.service.auth import Actor, Principal
from kaon.service.registry_views import ErrorBody, ProblemView

log = logging.getLogger("kaon.api")

_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (DefinitionError, 422),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (InvalidActionError, 409),
    (LeaseError, 409),
    (ConfigurationError, 400),
    (StoreUnavailableError, 503),
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Bad request"),
        (401, "Missing or unknown API token"),
        (403, "The token's role or groups do not allow this"),
        (404, "Not found"),
        (409, "Not allowed in the current state"),
        (413, "The body exceeds the route's size limit"),
        (422, "Invalid input: every problem with its location"),
        (
            503,
            "The state database is briefly unreachable: retry (nothing was written; or, "
            "when the message says the write may have been made, with the same "
            "Idempotency-Key)",
        ),
    )
}
"""The error answers every route documents (pass as ``responses=`` to a router)."""


def status_of(error: BaseException) -> int:
    """The HTTP status for an error (500 for anything not in the table)."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


async def audit_refusal(
    app: Any, actor: Actor, status: int, method: str, path: str, error: BaseException
) -> None:
    """Write a refused attempt to the audit trail (rate-limited by the auth service)."""
    services = getattr(app.state, "services", None)
    auth = getattr(services, "auth", None)
    if auth is None:
        return
    try:
        await anyio.to_thread.run_sync(auth.refused, actor, status, f"{method} {path}", str(error))
    except KaonError:
        log.warning("cannot audit a refused %s %s", method, path)


def error_body(error: BaseException, sources: Path | None = None) -> ErrorBody:
    """The JSON body describing ``error``. A problem's file is named as it was pushed
    (``flow.py``, ``pkg/helper.py``), never by where the server keeps it: under ``sources``
    (the server's bundles), the part after the bundle's folder; elsewhere, the file's name."""
    problems: list[ProblemView] = []
    message = str(error)
    if isinstance(error, DefinitionError):
        shown = [
            Problem(p.message, replace(p.location, file=public_file(p.location.file, sources)))
            for p in error.problems[:MAX_PROBLEMS]
        ]
        problems = [
            ProblemView(
                message=p.message,
                file=p.location.file,
                line=p.location.line,
                field=p.location.field,
            )
            for p in shown
        ]
        message = "; ".join(str(p) for p in shown) or message
        message += _more(len(error.problems))
    return ErrorBody(error=type(error).__name__, message=message, problems=problems)


def public_file(file: str | None, sources: Path | None) -> str | None:
    """``file`` as a client may see it (see :func:`error_body`)."""
    if file is None or not os.path.isabs(file):
        return file
    path = Path(file)
    if sources is not None and path.is_relative_to(sources):
        inside = path.relative_to(sources).parts[1:]  # after the bundle's folder
        if inside:
            return "/".join(inside)
    return path.name


MAX_PROBLEMS = 50
"""The problems an error answer lists: the first ones, and how many more there were (a body
with 400,000 unknown keys gets a short answer, not one of 55 MB)."""


def _more(count: int) -> str:
    hidden = count - MAX_PROBLEMS
    return f"; and {hidden:,} more problems" if hidden > 0 else ""


def _json(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def _kaon_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc)
    if status == 500:
        log.exception("error handling %s %s", request.method, request.url.path, exc_info=exc)
    elif status == 503:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    if status in (401, 403):
        principal = getattr(request.state, "principal", None)
        actor = principal if isinstance(principal, Principal) else "anonymous"
        await audit_refusal(request.app, actor, status, request.method, request.url.path, exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    services = getattr(request.app.state, "services", None)
    registry = getattr(services, "registry", None)
    sources = getattr(registry, "sources_dir", None)
    if status >= 500:
        # What failed inside (the database's URL, account, SQL text and parameters) is for
        # the server's log, written above; the caller learns only what happened.
        return _json(status, _server_error_body(exc, status), headers)
    return _json(status, error_body(exc, sources), headers)


def _server_error_body(exc: BaseException, status: int) -> ErrorBody:
    if isinstance(exc, WriteOutcomeUnknownError):
        message = (
            "the state database was lost while committing: the write may have been made; "
            "retry with the same Idempotency-Key, or read before writing again"
        )
    elif status == 503:
        message = "the state database is briefly unreachable: retry (nothing was written)"
    else:
        message = "internal error: the server's log says what failed"
    return ErrorBody(error=type(exc).__name__, message=message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    errors = exc.errors()
    for item in errors[:MAX_PROBLEMS]:
        where = [str(part) for part in item.get("loc", ())]
        text = str(item.get("msg", "invalid"))
        if item.get("type") == "value_error":  # a validator's own sentence, not pydantic's
            text = text.removeprefix("Value error, ")
        detail = (item.get("ctx") or {}).get("error")
        if detail and str(detail) not in text:
            text = f"{text}: {detail}"
        if item.get("type") == "json_invalid":
            where = where[:1]
        problems.append(ProblemView(message=text, field=".".join(where)))
    message = "; ".join(f"{p.field}: {p.message}" for p in problems) or "invalid request"
    message += _more(len(errors))
    return _json(422, ErrorBody(error="ValidationError", message=message, problems=problems))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = ErrorBody(error="HTTPError", message=str(exc.detail))
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        # Starlette names only the first route matching the path; list every method.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return _json(exc.status_code, body, headers or None)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and isinstance(route, BaseRoute):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error handling %s %s", request.method, request.url.path)
    return _json(500, _server_error_body(exc, 500))


def install_error_handlers(app: FastAPI) -> None:
    """Map Kaon's errors, validation errors and HTTP errors to JSON ErrorBody answers."""
    app.add_exception_handler(KaonError, _kaon_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

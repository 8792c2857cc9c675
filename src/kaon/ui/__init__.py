"""The web UI served by ``kaon server`` at ``/`` (and ``/ui``), and the API docs, offline.

:func:`install` adds to an API application the UI's pages (:mod:`kaon.ui.pages`), its static
files (package data under ``kaon/ui/static``: Kaon's scripts and the vendored libraries listed
in ``static/VENDORED.md``), Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from those local
assets, and the session cookie the browser authenticates with (:mod:`kaon.api.session`).
No answer of the server may be framed (:data:`NOT_FRAMED`).
"""

from __future__ import annotations

import inspect
import os
from os import PathLike

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kaon.api.session import SessionCookieAuth
from kaon.ui.pages import HERE, STATIC_URL, asset_version, not_found_page, router

__all__ = ["install"]

IMMUTABLE = "public, max-age=31536000, immutable"


class _Assets(StaticFiles):
    """The UI's static files. Pages ask for them with the assets' version (``?v=``, a hash
    of their content), so those answers are cached for a year without a check; any other
    request revalidates with the ETag (a 304 when unchanged)."""

    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = f"v={asset_version()}".encode() in scope.get("query_string", b"")
        response.headers["Cache-Control"] = IMMUTABLE if versioned else "no-cache"
        return response


def _a_page(path: str) -> bool:
    """Whether ``path`` is the UI's, for a page (a browser's address), not an asset."""
    return (path == "/ui" or path.startswith("/ui/")) and not path.startswith(STATIC_URL + "/")


class _Compress:
    """gzip for the pages, their assets and JSON answers of more than 1 KiB, when the client
    accepts it; never for blobs (streamed, with ranges) or the event stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1024, compresslevel=6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path or path.endswith("/blob") or path == "/events":
            await self.app(scope, receive, send)
        else:
            await self.gzip(scope, receive, send)


NOT_FRAMED = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
"""Headers of every answer: no page (of this site or another) may frame the server's. A
page of another port of the server's host is the same *site*, so SameSite=Strict still
sends it the session cookie: framed, the UI would act as its user under clicks that page
steers. (The UI's own sandboxed ``srcdoc`` frames are not framed pages and still show.)"""


class _NotFramed:
    """Add :data:`NOT_FRAMED` to every HTTP answer that does not set those headers itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in NOT_FRAMED if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, framed)


def install(app: FastAPI) -> None:
    """Serve the UI, its assets and the docs from ``app`` and accept the session cookie.

    The app must be built with ``docs_url=None, redoc_url=None`` (these pages replace them),
    and with its HTTP error handler installed (:func:`kaon.api.errors.install_error_handlers`):
    a path of the UI's that nothing serves gets an HTML page, any other error that handler's
    JSON answer.
    """
    answer_json = app.exception_handlers[HTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404 and _a_page(request.url.path):
            return not_found_page(request)
        answer = answer_json(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(HTTPException, http_error)
    app.include_router(router)
    app.mount(STATIC_URL, _Assets(directory=str(HERE / "static")), name="ui-static")
    app.add_middleware(SessionCookieAuth)
    app.add_middleware(_Compress)
    app.add_middleware(_NotFramed)

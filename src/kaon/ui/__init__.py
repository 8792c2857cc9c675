"""The web UI served by ``kaon server`` at ``/`` (and ``/ui``), and the API docs, offline.

:func:`install` adds to an API application the UI's pages (:mod:`kaon.ui.pages`), its static
files (package data under ``kaon/ui/static``: Kaon's scripts and the vendored libraries listed
in ``static/VENDORED.md``), Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from those local
assets, and the session cookie the browser authenticates with (:mod:`kaon.api.session`).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kaon.api.session import SessionCookieAuth
from kaon.ui.pages import HERE, STATIC_URL, router

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Serve the UI, its assets and the docs from ``app`` and accept the session cookie.

    The app must be built with ``docs_url=None, redoc_url=None`` (these pages replace them).
    """
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=str(HERE / "static")), name="ui-static")
    app.add_middleware(SessionCookieAuth)

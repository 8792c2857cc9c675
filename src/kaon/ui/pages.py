"""The web UI's pages: login, workflows, a workflow, a run, a comparison; the API docs.

Pages are Jinja2 templates rendered with little more than who is logged in and which object
the page shows; the page's script fetches everything else from the HTTP API with the session
cookie (see :mod:`kaon.api.session`), so the UI sees exactly what the API lets its user see.
Every asset is package data under ``kaon/ui/static`` (no CDN). A page asked for without a
valid session redirects to the login page.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import anyio
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

import kaon
from kaon.api.deps import get_services
from kaon.api.errors import audit_refusal
from kaon.api.session import COOKIE, cookie_token
from kaon.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from kaon.service.auth import Principal

HERE = Path(__file__).parent
STATIC_URL = "/ui/static"
SESSION_DAYS = 7
_FORM_BYTES = 4096

templates = Jinja2Templates(directory=str(HERE / "templates"))


@functools.cache
def asset_version() -> str:
    """A short hash of every static file's path and content: pages name their assets with
    it (``?v=``), so a browser keeps them until an upgrade changes them."""
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


router = APIRouter(include_in_schema=False)


def _principal(request: Request) -> Principal | None:
    token = cookie_token(request.headers.get("cookie", ""))
    if token is None:
        return None
    try:
        return get_services(request).auth.authenticate(token)
    except AuthenticationError:
        return None


def _page(
    request: Request, template: str, principal: Principal | None = None, **context: Any
) -> Response:
    principal = principal or _principal(request)
    if principal is None:
        target = quote(
            str(request.url.path) + ("?" + request.url.query if request.url.query else "")
        )
        return RedirectResponse(f"/ui/login?next={target}", status_code=303)
    values = {
        "user": principal,
        "static": STATIC_URL,
        "v": asset_version(),
        "version": getattr(kaon, "__version__", ""),
        **context,
    }
    return templates.TemplateResponse(request, template, values)


@router.get("/")
def root() -> RedirectResponse:
    """The UI's home."""
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/ui") -> Response:
    """The login form: paste an API token (``kaon token create``)."""
    context = {"static": STATIC_URL, "v": asset_version(), "next": _local(next), "error": None}
    return templates.TemplateResponse(request, "login.html", context)


@router.post("/ui/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the token of the login form and keep it in an HttpOnly, SameSite=Strict session
    cookie."""
    body = await request.body()
    fields = parse_qs(body[:_FORM_BYTES].decode("utf-8", "replace"), max_num_fields=4)
    token = (fields.get("token") or [""])[0].strip()
    next = (fields.get("next") or ["/ui"])[0]
    try:
        await anyio.to_thread.run_sync(get_services(request).auth.authenticate, token)
    except AuthenticationError as error:  # audited as a refused API call is
        await audit_refusal(request.app, "anonymous", 401, "POST", "/ui/login", error)
        context = {
            "static": STATIC_URL,
            "v": asset_version(),
            "next": _local(next),
            "error": str(error),
        }
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    answer = RedirectResponse(_local(next), status_code=303)
    answer.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return answer


@router.post("/ui/logout")
def logout() -> Response:
    """Forget the session cookie."""
    answer = RedirectResponse("/ui/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/")
    return answer


@router.get("/ui", response_class=HTMLResponse)
def workflows_page(request: Request) -> Response:
    """Workflows: owner, active version, triggers and next fire time, last runs."""
    return _page(request, "workflows.html", title="Workflows")


@router.get("/ui/workflows/{name}", response_class=HTMLResponse)
def workflow_page(request: Request, name: str) -> Response:
    """One workflow: versions, triggers, properties, run history."""
    return _page(request, "workflow.html", title=name, workflow=name)


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> Response:
    """One run: its live graph, items, steps, logs and actions.

    A run named by a unique prefix of its id (as people type them) redirects to its full
    id, once: the page's script names its run by the page's id in every read, action and
    event stream, and a prefix would stop naming one run when a later run starts with it.
    A name that is no run the user may see renders the page, whose script says why."""
    principal = _principal(request)
    full = _full_run_id(request, principal, run_id) if principal else None
    if full is not None and full != run_id:
        query = "?" + request.url.query if request.url.query else ""
        return RedirectResponse(f"/ui/runs/{quote(full, safe='')}{query}", status_code=307)
    return _page(request, "run.html", principal, title=f"run {run_id}", run_id=run_id)


def _full_run_id(request: Request, principal: Principal, run_id: str) -> str | None:
    """The full id of the run ``run_id`` names, if ``principal`` may read it (None: no
    single run, or not one the user may read)."""
    try:
        return get_services(request).authorize_run(principal, "viewer", run_id)
    except (NotFoundError, PermissionDeniedError):
        return None


@router.get("/ui/compare", response_class=HTMLResponse)
def compare_page(request: Request, runs: str = "") -> Response:
    """Runs side by side (``?runs=ID,ID``)."""
    ids = [r for r in runs.replace(" ", ",").split(",") if r][:6]
    return _page(request, "compare.html", title="Compare runs", run_ids=ids)


@router.get("/docs")
def swagger_docs() -> HTMLResponse:
    """Swagger UI from local assets."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Kaon API",
        swagger_js_url=f"{STATIC_URL}/vendor/swagger-ui-bundle.js?v={asset_version()}",
        swagger_css_url=f"{STATIC_URL}/vendor/swagger-ui.css?v={asset_version()}",
        swagger_favicon_url=f"{STATIC_URL}/favicon.svg",
    )


@router.get("/redoc")
def redoc_docs() -> HTMLResponse:
    """ReDoc from local assets."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="Kaon API",
        redoc_js_url=f"{STATIC_URL}/vendor/redoc.standalone.js?v={asset_version()}",
        redoc_favicon_url=f"{STATIC_URL}/favicon.svg",
        with_google_fonts=False,
    )


def not_found_page(request: Request) -> Response:
    """The HTML answer to an address under /ui that no page serves (404), with a way back.
    It needs no session: it tells nothing but that the address is wrong."""
    context = {"static": STATIC_URL, "v": asset_version(), "path": request.url.path}
    return templates.TemplateResponse(request, "not_found.html", context, status_code=404)


def _local(target: str) -> str:
    """Only same-site paths may follow a login (no open redirect)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"

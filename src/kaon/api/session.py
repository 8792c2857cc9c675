"""The browser's session: an API token kept in an HttpOnly cookie, accepted like a bearer token.

The web UI logs in with a token (``POST /ui/login``); the server checks it and stores it in
the ``kaon_session`` cookie (HttpOnly, SameSite=Strict, Path=/). :class:`SessionCookieAuth`
is a pure ASGI middleware placed in front of the API: a request *without* an
``Authorization`` header that carries the cookie gets ``Authorization: Bearer <cookie>``, so
every route authenticates and authorizes a browser exactly as it does a CLI (same roles, same
groups, same audit name). Nothing else of the API's authentication changes.

Against cross-site request forgery, a state-changing request (not GET, HEAD or OPTIONS)
authenticated by the cookie must also carry the ``X-Kaon-UI`` header, which a page of another
site cannot add without a CORS preflight this server never grants; without it the answer is
403 (the UI's own login and logout forms excepted). The cookie's SameSite=Strict is a second
line.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "kaon_session"
CSRF_HEADER = "x-kaon-ui"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
# The UI's own forms (they do not act on the API; logging out by forgery is harmless).
_FORMS = frozenset({"/ui/login", "/ui/logout"})


def cookie_token(header: str) -> str | None:
    """The session token in a ``Cookie`` header value, if any."""
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value.strip('"')
    return None


class SessionCookieAuth:
    """Turn the session cookie into a bearer token for requests that have none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        names = {name for name, _ in headers}
        if b"authorization" not in names and b"cookie" in names:
            cookies = "; ".join(v.decode("latin-1") for n, v in headers if n == b"cookie")
            token = cookie_token(cookies)
            if token is not None:
                unsafe = scope["method"] not in _SAFE and scope["path"] not in _FORMS
                if unsafe and CSRF_HEADER.encode() not in names:
                    await _forbidden(send)
                    return
                headers.append((b"authorization", f"Bearer {token}".encode("latin-1")))
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


async def _forbidden(send: Send) -> None:
    body = json.dumps(
        {
            "error": "PermissionDeniedError",
            "message": f"a request authenticated by the session cookie must send {CSRF_HEADER}",
            "problems": [],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

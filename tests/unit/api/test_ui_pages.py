"""The web UI's pages, assets, login session and the offline API docs, in process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kaon.ui
from kaon.api.session import COOKIE, cookie_token


def login(client: Any, token: str) -> Any:
    return client.post(
        "/ui/login", data={"token": token, "next": "/ui/runs/x"}, follow_redirects=False
    )


def test_pages_redirect_to_login_without_a_session(client: Any) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui"
    answer = client.get("/ui/workflows/a%20b", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=/ui/workflows/a%20b"
    assert "Log in with an API token" in client.get("/ui/login").text


def test_login_sets_an_httponly_strict_cookie_and_pages_render(
    client: Any, tokens: dict[str, str]
) -> None:
    bad = login(client, "kaon_nope")
    assert bad.status_code == 401 and "unknown API token" in bad.text
    good = login(client, tokens["viewer"])
    assert good.status_code == 303 and good.headers["location"] == "/ui/runs/x"
    cookie = good.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Path=/" in cookie
    for path in ("/ui", "/ui/workflows/hello", "/ui/runs/abc", "/ui/compare?runs=a,b"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'data-role="viewer"' in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing remote
    assert client.get("/ui/compare?runs=a,b").text.count("a,b") >= 1
    # the cookie authenticates API reads like a bearer token...
    assert client.get("/whoami").json()["name"] == "viewer"
    # ...but a state-changing request must also carry the UI's header (no CSRF)
    refused = client.post("/runs/x/kill")
    assert refused.status_code == 403 and "x-kaon-ui" in refused.json()["message"]
    by_role = client.post("/runs/x/kill", headers={"X-Kaon-UI": "1"})
    assert by_role.status_code == 403 and "x-kaon-ui" not in by_role.json()["message"]
    out = client.post("/ui/logout", follow_redirects=False)
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]


def test_login_never_redirects_off_site(client: Any, tokens: dict[str, str]) -> None:
    for target in ("//evil.example", "https://evil.example", "\\\\evil"):
        answer = client.post(
            "/ui/login", data={"token": tokens["viewer"], "next": target}, follow_redirects=False
        )
        assert answer.headers["location"] == "/ui"


def test_assets_and_docs_are_local(client: Any) -> None:
    swagger = client.get("/docs").text
    redoc = client.get("/redoc").text
    for page in (swagger, redoc):
        urls = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert urls and all(u.startswith("/") for u in urls), urls
        for url in urls:
            assert client.get(url).status_code == 200, url
    assert "fonts.googleapis" not in redoc
    static = Path(kaon.ui.__file__).parent / "static"
    for name in ("kaon.js", "run.js", "vendor/cytoscape.min.js", "vendor/cytoscape-dagre.min.js"):
        assert (static / name).exists()
        assert client.get(f"/ui/static/{name}").status_code == 200


def test_cookie_parsing() -> None:
    assert cookie_token(f"a=1; {COOKIE}=kaon_x; b=2") == "kaon_x"
    assert cookie_token("a=1") is None
    assert cookie_token(f"{COOKIE}=") is None


def test_assets_are_versioned_cached_and_compressed(client: Any, tokens: dict[str, str]) -> None:
    login(client, tokens["viewer"])
    page = client.get("/ui/runs/abc")
    assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text)
    assert assets and all(re.search(r"\?v=[0-9a-f]{12}$", url) for url in assets), assets
    # the run's summary is asked for before the page's scripts load
    assert page.text.index("/summary") < page.text.index("cytoscape.min.js")
    versioned = next(url for url in assets if "cytoscape.min.js" in url)
    answer = client.get(versioned, headers={"Accept-Encoding": "gzip"})
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.num_bytes_downloaded < 200_000 < len(answer.content)  # 443 KB unpacked
    plain = client.get("/ui/static/vendor/cytoscape.min.js", headers={"Accept-Encoding": "gzip"})
    assert plain.headers["cache-control"] == "no-cache" and plain.headers["etag"]
    again = client.get(
        "/ui/static/vendor/cytoscape.min.js", headers={"If-None-Match": plain.headers["etag"]}
    )
    assert again.status_code == 304
    openapi = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert openapi.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in client.get("/healthz").headers  # small: sent as is

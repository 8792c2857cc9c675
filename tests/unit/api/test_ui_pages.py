"""The web UI's pages, assets, login session and the offline API docs, in process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kaon.ui
from kaon.api.deps import Services
from kaon.api.session import COOKIE, cookie_token
from kaon.model.status import RunStatus
from kaon.store.base import RunRecord, WriteBatch


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


def test_a_run_page_named_by_a_prefix_redirects_to_the_full_id(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """The run page opened by a unique prefix of a run's id moves to the run's full id, so
    that its reads, actions and event stream (which name the page's id) keep naming that run
    when a later run starts with the same prefix; a name that is no run's (unknown, several,
    not the user's to see) renders the page, whose script says why it shows nothing."""
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    flow = "name: mine\nsteps:\n  - id: a\n    shell: 'true'\n"
    assert client.post("/workflows", json={"source": flow, "file_name": "m.yaml"}, headers=owner)
    first, later = "20261205-033200-aaaaaaaaaaaa", "20261205-033259-bbbbbbbbbbbb"
    services.store.write(WriteBatch(runs=[RunRecord(first, "mine", "h", RunStatus.SUCCEEDED)]))
    login(client, tokens["viewer"])
    moved = client.get("/ui/runs/20261205-0332?step=a", follow_redirects=False)
    assert moved.status_code == 307
    assert moved.headers["location"] == f"/ui/runs/{first}?step=a"
    page = client.get(moved.headers["location"])
    assert page.status_code == 200 and f'data-run="{first}"' in page.text
    services.store.write(WriteBatch(runs=[RunRecord(later, "mine", "h", RunStatus.RUNNING)]))
    assert f'data-run="{first}"' in client.get(f"/ui/runs/{first}").text  # still that run
    for name in ("20261205-0332", "nope"):  # several runs, no run
        shown = client.get(f"/ui/runs/{name}", follow_redirects=False)
        assert shown.status_code == 200 and f'data-run="{name}"' in shown.text
    login(client, tokens["stranger"])  # not in the workflow's group: no full id revealed
    hidden = client.get("/ui/runs/20261205-033200", follow_redirects=False)
    assert hidden.status_code == 200 and first not in hidden.text


def test_the_ui_answers_an_unknown_page_with_an_html_page(
    client: Any, tokens: dict[str, str]
) -> None:
    """A path under /ui that no page serves (a mistyped address, a run id with a slash) is
    an HTML page saying so, with a way back; the API's unknown paths stay JSON."""
    for signed_in in (False, True):
        if signed_in:
            login(client, tokens["viewer"])
        for path in ("/ui/nope", "/ui/runs/a%2Fb", "/ui/workflows/a/b", "/ui/"):
            page = client.get(path, follow_redirects=False)
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert "Not found" in page.text and 'href="/ui"' in page.text, path
    for path in ("/nope", "/runs/a%2Fb/nope", "/ui/static/nope.js"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["error"] == "HTTPError", path
    shown = client.get("/ui/<b>x</b>")
    assert shown.status_code == 404 and "<b>x</b>" not in shown.text


def test_no_page_of_the_ui_can_be_framed(client: Any, tokens: dict[str, str]) -> None:
    """A page of another site framed the UI with the user's session: SameSite=Strict keeps
    the cookie from other sites, but a page served from another port of the server's host
    (a step may serve one) is the same site, so the framed page acted as the user under
    clicks the page above steers (each action confirmed, by a click too)."""
    anonymous = ["/ui/login", "/docs", "/redoc", "/ui/nowhere"]
    for path in anonymous:
        answer = client.get(path)
        assert answer.headers.get("x-frame-options") == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", ""), path
    assert login(client, tokens["viewer"]).status_code == 303
    for path in ("/ui", "/ui/workflows/hello", "/ui/runs/abc", "/ui/compare?runs=a"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers.get("x-frame-options") == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", ""), path

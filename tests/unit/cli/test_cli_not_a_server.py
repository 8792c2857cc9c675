"""KAON_URL pointing at something that is not a Kaon server (a wrong port, a proxy's error
page, a path the server does not serve) is named as such, on one line, exit 2."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kaon.errors import ConfigurationError, NotFoundError
from kaon.service.remote import raise_for_answer

FLOW = str(Path(__file__).with_name("cli_flows.py"))


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[str]:
    """A plain HTTP file server on loopback: HTML error pages, no Kaon API."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize(
    "command",
    [("show", "abc"), ("runs",), ("run", f"{FLOW}:squares"), ("watch", "abc")],
)
def test_a_url_that_is_no_kaon_server_is_named_on_one_line(
    kaon: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    web_server: str,
    command: tuple[str, ...],
) -> None:
    """`kaon show RUN` printed the web server's 404 page as its error, over 13 lines, with
    exit 2 as for an unknown run; `kaon run` its 501 page as `Kaon failed` (exit 3)."""
    monkeypatch.setenv("KAON_URL", web_server)
    monkeypatch.setenv("KAON_TOKEN", "kaon_x")
    code, out, err = kaon(*command, "--json")
    assert code == 2, (out, err)
    error = json.loads(out)["error"]
    assert error["type"] == "ConfigurationError", error
    assert web_server in error["message"] and "not a Kaon server" in error["message"], error
    assert "<" not in err and len(err.strip().splitlines()) == 1, err


def _answer(status: int, body: object) -> httpx.Response:
    request = httpx.Request("GET", "http://k/api/runs/abc")
    return httpx.Response(status, json=body, request=request)


def test_a_route_the_server_does_not_have_is_not_a_missing_run() -> None:
    """A Kaon server at another path (KAON_URL=http://host/api) answers every request with
    its routing's 404, which read `error: Not Found`."""
    expected = r"GET http://k/api/runs/abc answered 404 Not Found, not a Kaon server"
    with pytest.raises(ConfigurationError, match=expected):
        raise_for_answer(_answer(404, {"error": "HTTPError", "message": "Not Found"}))
    with pytest.raises(NotFoundError, match="no run matches"):
        raise_for_answer(_answer(404, {"error": "NotFoundError", "message": "no run matches"}))

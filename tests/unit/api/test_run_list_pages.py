"""The runs list over HTTP pages with a keyset cursor: ``Client(url=...).runs(limit=N)`` and
``kaon runs -n N`` against a server list N runs as they do locally (the server answers at
most 1,000 a request), and runs created or deleted while the pages are read never make one
repeat or go missing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kaon.api.deps import Services
from kaon.service.remote import RemoteService

FLOW = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"
TOTAL = 1100  # more than one answer of GET /runs holds


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _runs(services: Services, secret: str, count: int) -> list[str]:
    principal = services.auth.authenticate(secret)
    return [services.registry.start_run("hello", {}, principal).id for _ in range(count)]


class _Meanwhile(httpx.BaseTransport):
    """The app's transport, running ``between`` once after the first page of runs."""

    def __init__(self, inner: httpx.BaseTransport, between: Any) -> None:
        self.inner, self.between, self.pages = inner, between, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/runs" and request.method == "GET":
            self.pages += 1
            if self.pages == 1:
                self.between()
        return response


def test_a_remote_list_of_more_runs_than_a_page_is_the_local_list(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    body = {"source": FLOW, "file_name": "hello.yaml", "owner_group": "ml"}
    assert client.post("/workflows", json=body, headers=_bearer(tokens["owner"])).is_success
    _runs(services, tokens["owner"], TOTAL)
    local = [v.id for v in services.runs.list_runs(limit=TOTAL)]
    added: list[str] = []
    transport = _Meanwhile(
        client._transport, lambda: added.extend(_runs(services, tokens["owner"], 3))
    )
    with RemoteService("http://testserver", token=tokens["viewer"], transport=transport) as remote:
        found = [v.id for v in remote.list_runs(limit=TOTAL)]
        assert transport.pages == 2
        assert found == local  # none twice though 3 runs were created between the pages
        # 3 runs came first since: an offset counts from the newest, as locally
        assert [v.id for v in remote.list_runs(limit=5, offset=TOTAL + 1)] == local[-2:]


def test_the_runs_list_answers_where_the_next_page_starts(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    body = {"source": FLOW, "file_name": "hello.yaml", "owner_group": "ml"}
    assert client.post("/workflows", json=body, headers=_bearer(tokens["owner"])).is_success
    made = _runs(services, tokens["owner"], 5)[::-1]  # newest first
    viewer = _bearer(tokens["viewer"])
    first = client.get("/runs", params={"limit": 2}, headers=viewer)
    assert [v["id"] for v in first.json()] == made[:2]
    cursor = first.headers["Kaon-Next"]
    _runs(services, tokens["owner"], 2)  # newer runs do not shift the next page
    second = client.get("/runs", params={"limit": 2, "before": cursor}, headers=viewer)
    assert [v["id"] for v in second.json()] == made[2:4]
    last = client.get(
        "/runs", params={"limit": 2, "before": second.headers["Kaon-Next"]}, headers=viewer
    )
    assert [v["id"] for v in last.json()] == made[4:]
    assert "Kaon-Next" not in last.headers  # a short page: nothing older remains


def test_a_bad_status_or_limit_is_the_same_parameter_error_locally_and_remotely(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """Locally, status="bogus" was a bare ValueError and limit=-1 listed every run (SQLite's
    LIMIT -1; a StoreError on PostgreSQL); remotely both are refused: now both refuse, alike."""
    from kaon.errors import ParameterError

    body = {"source": FLOW, "file_name": "hello.yaml", "owner_group": "ml"}
    assert client.post("/workflows", json=body, headers=_bearer(tokens["owner"])).is_success
    _runs(services, tokens["owner"], 3)
    with RemoteService(
        "http://testserver", token=tokens["viewer"], transport=client._transport
    ) as remote:
        for bad, field in (
            ({"status": "bogus"}, "status"),
            ({"limit": 0}, "limit"),
            ({"limit": -1}, "limit"),
            ({"offset": -1}, "offset"),
        ):
            messages = []
            for service in (services.runs, remote):
                with pytest.raises(ParameterError) as refused:
                    service.list_runs(**bad)  # type: ignore[arg-type]
                assert [p.location.field for p in refused.value.problems] == [field]
                messages.append(str(refused.value))
            assert messages[0] == messages[1], bad

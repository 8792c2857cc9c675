"""RemoteService.versions is every version of a workflow, as the local service's is, although
GET /workflows/{name}/versions answers at most a page (``Kaon-Older: true`` when older ones
remain): the client follows the pages (``before``), oldest first, none twice."""

from __future__ import annotations

import httpx

from kaon.service.remote import RemoteService

TOTAL = 2500
PAGE = 1000  # the server's most per answer


def _version(n: int) -> dict[str, object]:
    return {
        "workflow": "wf",
        "version": n,
        "definition_hash": f"h{n}",
        "source_name": "wf.yaml",
        "created_at": 1.0,
        "created_by": "me",
        "active": n == TOTAL,
    }


def handler(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/workflows/wf/versions"
    before = int(request.url.params.get("before", TOTAL + 1))
    limit = min(int(request.url.params.get("limit", PAGE)), PAGE)
    below = list(range(1, before))
    page = below[-limit:]
    older = len(below) > len(page)
    headers = {"Kaon-Older": "true" if older else "false"}
    return httpx.Response(200, json=[_version(n) for n in page], headers=headers)


def test_versions_follows_every_page() -> None:
    with RemoteService("http://k", token="t", transport=httpx.MockTransport(handler)) as remote:
        found = remote.versions("wf")
    assert [v.version for v in found] == list(range(1, TOTAL + 1))
    assert [v.version for v in found if v.active] == [TOTAL]


def _workflows(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/workflows"
    offset = int(request.url.params.get("offset", 0))
    limit = min(int(request.url.params.get("limit", 100)), PAGE)  # 100 unless asked
    names = [f"wf{n:04d}" for n in range(TOTAL)][offset : offset + limit]
    return httpx.Response(
        200, json=[{"name": n, "created_at": 1.0, "updated_at": 1.0} for n in names]
    )


def test_workflows_follows_every_page() -> None:
    """The workflows list answers 100 by default: the client saw only those."""
    transport = httpx.MockTransport(_workflows)
    with RemoteService("http://k", token="t", transport=transport) as remote:
        found = remote.workflows()
    assert len(found) == TOTAL and found[-1].name == f"wf{TOTAL - 1:04d}"

"""``GET /workflows/{name}/runs`` pages with a keyset cursor (``Kaon-Next``, sent back as
``before``): it paged by ``offset`` only, and a deep offset stepped over every run before
the page (200,000 runs, offset 199,000: 315 ms on SQLite, 59 ms on PostgreSQL against
0.3 ms and 1 ms for the first page). ``offset`` still works (deprecated)."""

from __future__ import annotations

from typing import Any

from kaon.api.deps import Services
from kaon.model.status import RunStatus
from kaon.store.base import RunRecord, WriteBatch


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _runs(services: Services, count: int) -> None:
    """``count`` runs of ``wf``, three at each creation time (ties are ordered by id)."""
    runs = [
        RunRecord(f"r{i:03d}", "wf", "h", RunStatus.SUCCEEDED, created_at=1.0 + i // 3)
        for i in range(count)
    ]
    services.store.write(WriteBatch(runs=runs))


def test_a_workflows_runs_come_a_page_at_a_time_after_a_keyset(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    body = {"source": "name: wf\nsteps:\n  - id: a\n    shell: echo hi\n", "file_name": "wf.yaml"}
    assert client.post("/workflows", json=body, headers=_bearer(tokens["owner"])).is_success
    _runs(services, 56)
    viewer = _bearer(tokens["viewer"])
    newest_first = [f"r{i:03d}" for i in reversed(range(56))]
    found: list[str] = []
    params: dict[str, Any] = {"limit": 10}
    while True:
        answer = client.get("/workflows/wf/runs", params=params, headers=viewer)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["total"] == 56
        found += [run["id"] for run in page["runs"]]
        following = answer.headers.get("Kaon-Next")
        if following is None:
            break
        params["before"] = following
    assert found == newest_first
    old = client.get("/workflows/wf/runs", params={"limit": 10, "offset": 50}, headers=viewer)
    assert [run["id"] for run in old.json()["runs"]] == newest_first[50:]  # offset: as before
    bad = client.get("/workflows/wf/runs", params={"before": "r001"}, headers=viewer)
    assert bad.status_code == 422 and "before" in bad.text

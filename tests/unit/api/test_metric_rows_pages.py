"""``GET /runs/{id}/metric-rows`` answers a page at a time (``limit``, and a keyset cursor in
``Kaon-Next`` to send back as ``after``): a run with many metric values (a long training
loop, a large foreach, a cached step reusing another run's values) was sent whole in one
answer. The remote client follows the pages, and gets what the local client gets."""

from __future__ import annotations

from typing import Any

import httpx

from kaon.api.deps import Services
from kaon.model.status import RunStatus, StepStatus
from kaon.service.remote import RemoteService
from kaon.store.base import MetricRecord, RunRecord, StepRunRecord, WriteBatch


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _run(services: Services, run_id: str, metrics: int, cached_from: str | None = None) -> None:
    """A run with a foreach ``f`` of 3 items, each training step reporting ``metrics``
    values, and (with ``cached_from``) a task ``c`` that reused that step's values."""
    steps = [StepRunRecord(run_id, 1, "f", "f", "foreach", StepStatus.SUCCEEDED)]
    for item in range(3):
        frame = 2 + 2 * item
        steps.append(
            StepRunRecord(
                run_id, frame, f"f[{item}]", "f", "item", StepStatus.SUCCEEDED, 1, item, f"r{item}"
            )
        )
        steps.append(
            StepRunRecord(
                run_id, frame + 1, f"f[{item}].t", "t", "task", StepStatus.SUCCEEDED, frame
            )
        )
    if cached_from is not None:
        cached = StepRunRecord(run_id, 20, "c", "c", "task", StepStatus.CACHED)
        cached.cached_from = cached_from
        steps.append(cached)
    values = [
        MetricRecord(run_id, 3 + 2 * (n % 3), 1, "loss", float(n), 1000.0 + n, step=n)
        for n in range(metrics)
    ]
    services.store.write(
        WriteBatch(
            runs=[RunRecord(run_id, "w", "h", RunStatus.SUCCEEDED, created_at=1.0)],
            step_runs={(run_id, s.id): s for s in steps},
            metrics=values,
        )
    )


def test_metric_rows_come_a_page_at_a_time(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    _run(services, "src", 7)
    _run(services, "r1", 10, cached_from="src:f[1].t")
    viewer = _bearer(tokens["viewer"])
    local = services.runs.experiments.metrics("r1")
    assert len(local) == 10 + 2  # its own, then the two values src's f[1].t reported
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 4}
    pages = 0
    while True:
        answer = client.get("/runs/r1/metric-rows", params=params, headers=viewer)
        assert answer.status_code == 200, answer.text
        rows = answer.json()["rows"]
        assert len(rows) <= 4
        found += rows
        pages += 1
        following = answer.headers.get("Kaon-Next")
        if following is None:
            break
        params["after"] = following
    assert pages == 4 and found == local  # a full page says where the next starts
    assert found[1]["group"] == "f[*].t" and found[1]["item"] == "r1"
    assert found[-1]["reused_from"] == "src:f[1].t" and found[-1]["path"] == "c"
    whole = client.get("/runs/r1/metric-rows", headers=viewer)
    assert whole.json()["rows"] == local and "Kaon-Next" not in whole.headers
    bad = client.get("/runs/r1/metric-rows", params={"after": "x"}, headers=viewer)
    assert bad.status_code == 422


def test_the_remote_client_follows_the_pages(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    _run(services, "big", 2500)  # more than one answer holds
    seen: list[str] = []

    class _Counting(httpx.BaseTransport):
        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/metric-rows"):
                seen.append(str(request.url))
            return self.inner.handle_request(request)

    transport = _Counting(client._transport)
    with RemoteService("http://testserver", token=tokens["viewer"], transport=transport) as remote:
        rows = remote.experiments.metrics("big")
    assert rows == services.runs.experiments.metrics("big")
    assert len(rows) == 2500 and len(seen) == 3


def test_a_page_looks_at_a_bounded_number_of_cached_steps(services: Services) -> None:
    """Most cached steps reused no metric: a page looks at 100 of them at most (then says
    where the next page starts), and the pages together are every row, in order."""
    from kaon.service import _compare
    from kaon.service._metric_pages import metric_row

    _run(services, "src", 7)
    _run(services, "many", 0)
    cached = []
    for n in range(250):
        row = StepRunRecord("many", 100 + n, f"c{n}", f"c{n}", "task", StepStatus.CACHED)
        row.cached_from = "src:f[1].t" if n % 50 == 49 else "src:f"  # f reported nothing
        cached.append(row)
    services.store.write(WriteBatch(step_runs={("many", r.id): r for r in cached}))
    experiments = services.runs.experiments
    first, following = experiments.metric_rows("many", limit=1000)
    assert [r["path"] for r in first] == ["c49", "c49", "c99", "c99"] and str(
        following
    ) == "reused:199:0"
    expected = [metric_row(p) for p in _compare.metric_points(services.store, "many")]
    assert experiments.metrics("many") == expected and len(expected) == 10

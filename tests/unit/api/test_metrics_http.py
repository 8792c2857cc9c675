"""``/metrics`` beyond the store: HTTP latency by route template, process metrics, build info,
and the operator's choice to serve it without a token."""

from __future__ import annotations

import platform
import re
from typing import Any

import kaon
from kaon.api.deps import METRICS_PUBLIC, Services


def h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_latency_by_route_template_process_metrics_and_build_info(
    client: Any, tokens: dict[str, str]
) -> None:
    for run_id in ("r-1", "r-2", "r-3"):
        assert client.get(f"/runs/{run_id}", headers=h(tokens["viewer"])).status_code == 404
    client.get("/healthz")
    text = client.get("/metrics", headers=h(tokens["viewer"])).text
    # three requests, one series: labelled with the route's template, not its raw path
    assert (
        'kaon_api_request_duration_seconds_count{method="GET",route="/runs/{run_id}"} 3.0' in text
    )
    assert 'kaon_api_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}' in (
        text
    )
    assert "r-1" not in text
    build = f'kaon_build_info{{python="{platform.python_version()}",version="{kaon.__version__}"}}'
    assert f"{build} 1.0" in text
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert re.search(rf"^{name}\b", text, re.M), name


def test_metrics_need_a_token_unless_the_operator_makes_them_public(
    client: Any, services: Services
) -> None:
    assert client.get("/metrics").status_code == 401
    services.extras[METRICS_PUBLIC] = True
    public = client.get("/metrics")
    assert public.status_code == 200 and "kaon_build_info" in public.text
    assert client.get("/runs").status_code == 401  # only /metrics is opened


def test_a_client_choosing_its_own_methods_makes_no_new_series(
    client: Any, tokens: dict[str, str]
) -> None:
    # Any token is a valid HTTP method; a client (even without a token) sending a new one per
    # request used to add a series per request to both request metrics, without bound.
    for n in range(50):
        client.request(f"PROBE{n}", "/healthz")
    text = client.get("/metrics", headers=h(tokens["viewer"])).text
    assert "PROBE" not in text
    assert 'kaon_api_requests_total{method="other",status="401"} 50.0' in text
    assert 'kaon_api_request_duration_seconds_count{method="other",route="unmatched"} 50.0' in text


def test_the_store_down_leaves_out_its_series_not_the_whole_page(
    client: Any, services: Services, monkeypatch: Any
) -> None:
    # With the database down a scrape answered 503: the request counts (the 503s of the
    # outage), latencies and process metrics went dark exactly when they were wanted.
    from kaon.errors import StoreUnavailableError

    services.extras[METRICS_PUBLIC] = True
    client.get("/healthz")

    def down() -> Any:
        raise StoreUnavailableError("store x: reading failed: connection refused")

    monkeypatch.setattr(services.store, "reading", down)
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    text = scraped.text
    assert "kaon_store_up 0.0" in text
    assert not re.search(r"^kaon_(runs|step_runs|queue_depth|pool_slots_limit)\b", text, re.M)
    for name in (
        "kaon_api_requests_total",
        "kaon_trigger_lag_seconds_count",
        "process_cpu_seconds_total",
    ):
        assert re.search(rf"^{name}\b", text, re.M), name
    monkeypatch.undo()
    up = client.get("/metrics").text
    assert "kaon_store_up 1.0" in up and "kaon_runs" in up

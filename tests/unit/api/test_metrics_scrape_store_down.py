"""An authenticated ``/metrics`` scrape while the store is down: the token check read the
store, so the scrape failed (503) exactly when ``kaon_store_up 0`` was worth reading. A token
this process verified in the last 5 minutes now keeps reading ``/metrics`` (only it) through
an outage; a token never verified, or last verified longer ago, is still refused, so a
token revoked on another replica stops working within 5 minutes even while the store is
down (and within the 2 s token cache while it answers)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.errors import StoreUnavailableError
from kaon.service import auth as auth_module


def h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: Any) -> _Clock:
    made = _Clock()
    monkeypatch.setattr(auth_module.time, "time", made.time)
    return made


def _down(monkeypatch: Any, services: Services) -> None:
    def down() -> Any:
        raise StoreUnavailableError("store x: reading failed: connection refused")

    monkeypatch.setattr(services.store, "reading", down)


def test_a_recently_verified_scraper_reads_metrics_while_the_store_is_down(
    client: Any, services: Services, tokens: dict[str, str], monkeypatch: Any, clock: _Clock
) -> None:
    assert client.get("/metrics", headers=h(tokens["viewer"])).status_code == 200
    clock.now += 60.0  # past the 2 s token cache
    _down(monkeypatch, services)
    scraped = client.get("/metrics", headers=h(tokens["viewer"]))
    assert scraped.status_code == 200, scraped.text
    assert "kaon_store_up 0.0" in scraped.text
    # Only /metrics: other routes need the store anyway, and get no stale identity.
    assert client.get("/whoami", headers=h(tokens["viewer"])).status_code == 503
    # A token not verified before the outage is not taken on trust.
    assert client.get("/metrics", headers=h(tokens["operator"])).status_code == 503
    clock.now += 300.0  # 5 minutes after its last verification: refused
    assert client.get("/metrics", headers=h(tokens["viewer"])).status_code == 503


def test_a_token_revoked_elsewhere_stops_within_the_bound(
    client: Any, services: Services, tokens: dict[str, str], monkeypatch: Any, clock: _Clock
) -> None:
    assert client.get("/metrics", headers=h(tokens["viewer"])).status_code == 200
    viewer = services.auth.authenticate(tokens["viewer"])
    assert viewer.token_id is not None
    services.auth.registry.revoke_token(viewer.token_id, clock.now)  # another replica did
    clock.now += 10.0
    assert client.get("/metrics", headers=h(tokens["viewer"])).status_code == 401
    _down(monkeypatch, services)  # refused once seen revoked: not trusted again
    assert client.get("/metrics", headers=h(tokens["viewer"])).status_code == 503

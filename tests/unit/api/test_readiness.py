"""``GET /readyz``: ready when the store answers and the engine lives, 503 naming which one
is not (``/healthz`` answers 200 with the database down: a liveness check, not readiness)."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.errors import StoreUnavailableError


def test_ready_when_the_store_answers_and_the_engine_lives(client: Any, services: Services) -> None:
    services.extras["engine_alive"] = lambda: True
    answer = client.get("/readyz")  # no token needed, as for /healthz
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "store": True, "engine": True}


def test_not_ready_names_the_store_or_the_engine(
    client: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.extras["engine_alive"] = lambda: False
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "not ready", "store": True, "engine": False}
    services.extras["engine_alive"] = lambda: True

    def down() -> None:
        raise StoreUnavailableError("store x: reading failed: connection refused")

    monkeypatch.setattr(services.store, "ping", down)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "not ready", "store": False, "engine": True}
    assert client.get("/healthz").status_code == 200  # alive all the same

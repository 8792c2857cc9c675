"""``GET /runs/{id}/metrics`` answers a page at a time (``limit``, at most 10,000, and the
keyset cursor of ``Kaon-Next`` to send back as ``after``): it answered up to 100,000 values
in one response and said nothing of the rest, while the run page and ``kaon show`` send
users there for "all of them"."""

from __future__ import annotations

from typing import Any

from kaon.api.deps import Services
from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import MetricRecord, RunRecord, StepRunRecord, WriteBatch

PAGE = 10_000  # kaon.service.limits.PAGE: the most, and the default


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _run(services: Services, run_id: str, metrics: int, cached_from: str | None = None) -> None:
    """A run whose task ``t`` reported ``metrics`` values (``loss`` and every third
    ``acc``) and, with ``cached_from``, a task ``c`` that reused that step's values."""
    steps = [StepRunRecord(run_id, 1, "t", "t", "task", StepStatus.SUCCEEDED)]
    if cached_from is not None:
        cached = StepRunRecord(run_id, 2, "c", "c", "task", StepStatus.CACHED)
        cached.cached_from = cached_from
        steps.append(cached)
    values = [
        MetricRecord(run_id, 1, 1, "acc" if n % 3 == 0 else "loss", float(n), 1e3 + n, step=n)
        for n in range(metrics)
    ]
    services.store.write(
        WriteBatch(
            runs=[RunRecord(run_id, "w", "h", RunStatus.SUCCEEDED, created_at=1.0)],
            step_runs={(run_id, s.id): s for s in steps},
            metrics=values,
        )
    )


def _pages(client: Any, route: str, headers: dict[str, str], **params: Any) -> list[list[Any]]:
    pages = []
    while True:
        answer = client.get(route, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        following = answer.headers.get("Kaon-Next")
        if following is None:
            return pages
        params["after"] = following


def test_a_runs_metrics_come_a_page_at_a_time(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    viewer = _bearer(tokens["viewer"])
    _run(services, "big", PAGE + 5)
    pages = _pages(client, "/runs/big/metrics", viewer)
    assert [len(p) for p in pages] == [PAGE, 5]
    assert [m["step"] for p in pages for m in p] == list(range(PAGE + 5))
    too_many = client.get("/runs/big/metrics", params={"limit": 100_000}, headers=viewer)
    assert too_many.status_code == 422 and "limit" in too_many.text
    bad = client.get("/runs/big/metrics", params={"after": "12"}, headers=viewer)
    assert bad.status_code == 422 and "after" in bad.text


def test_small_pages_cross_from_a_runs_own_values_to_those_it_reused(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    viewer = _bearer(tokens["viewer"])
    _run(services, "src", 4)
    _run(services, "r1", 7, cached_from="src:t")
    whole = client.get("/runs/r1/metrics", headers=viewer)
    assert "Kaon-Next" not in whole.headers  # a small run: one answer, as before
    every = whole.json()
    assert [(m["path"], m["reused_from"]) for m in every] == [("t", None)] * 7 + [
        ("c", "src:t")
    ] * 4
    pages = _pages(client, "/runs/r1/metrics", viewer, limit=3)
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [m for p in pages for m in p] == every
    acc = _pages(client, "/runs/r1/metrics", viewer, limit=2, name="acc")
    assert [(m["path"], m["value"]) for p in acc for m in p] == [
        ("t", 0.0),
        ("t", 3.0),
        ("t", 6.0),
        ("c", 0.0),
        ("c", 3.0),
    ]

"""A run's detail (``kaon run --json``, ``RunHandle.detail()``, the result line of
``--events``) lists the run's first 1,000 metric values and says when there are more, as
``GET /runs/{id}`` and so the remote service do: locally it listed every value (1.5 MB of
JSON for a sweep of 10,000 items, growing with the items)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

import kaon
from kaon.service import LocalService, Settings


@kaon.step
def chatty(n: int) -> int:
    ctx = kaon.context()
    for epoch in range(n):
        ctx.metric("loss", 1.0 / (epoch + 1), step=epoch)
    return n


@kaon.workflow(name="chatty")
def flow(n: int = 1200) -> None:
    chatty(n)


@pytest.fixture
def service(tmp_path: pathlib.Path) -> Iterator[LocalService]:
    service = LocalService(Settings(home=tmp_path / "home", executor="inline"))
    yield service
    service.close()


def test_the_detail_lists_the_first_metrics_and_says_there_are_more(
    service: LocalService,
) -> None:
    run_id = service.create_run(flow.spec, {}).id
    assert service.execute(run_id).value == "succeeded"
    for all_steps in (False, True):
        detail = service.run_detail(run_id, all_steps=all_steps)
        assert len(detail.metrics) == 1000
        assert detail.metrics_truncated
        assert [m.step for m in detail.metrics[:3]] == [0, 1, 2]
        assert {m.path for m in detail.metrics} == {"chatty"}
    small = service.create_run(flow.spec, {"n": 3}).id
    service.execute(small)
    detail = service.run_detail(small)
    assert len(detail.metrics) == 3 and not detail.metrics_truncated

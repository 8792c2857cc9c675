"""Comparing two sweeps answers what a person reads, whatever the number of items: each
metric pooled over the items, then pages of the rows per step path (two runs of 10,000 items
answered 20,000 rows, 4 MB over HTTP, and ``kaon compare`` printed 10,020 lines in 15 s)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

import kaon
from kaon.errors import ParameterError
from kaon.service import LocalService, Settings


@kaon.step
def score(i: int, bad: int) -> int:
    if i == bad:
        raise ValueError(f"item {i} is bad")
    kaon.context().metric("rmse", float(i))
    return i


@kaon.workflow(name="sweep")
def sweep(n: int = 300, bad: int = -1) -> None:
    with kaon.foreach(list(range(300)), id="fe", min_success=0.5) as fe:
        score(fe.item, bad)


@kaon.workflow(name="nested")
def nested() -> None:
    with kaon.foreach([0, 10, 20], id="outer") as outer, kaon.foreach([1, 2], id="inner") as inner:
        score(outer.item + inner.item, -1)


@pytest.fixture
def service(tmp_path: pathlib.Path) -> Iterator[LocalService]:
    service = LocalService(Settings(home=tmp_path / "home", executor="inline"))
    yield service
    service.close()


def _run(service: LocalService, **params: int) -> str:
    run_id = service.create_run(sweep.spec, params).id
    service.execute(run_id)
    return run_id


def test_two_sweeps_compare_pooled_and_paged(service: LocalService) -> None:
    first, second = _run(service), _run(service, bad=7)
    view = service.experiments.compare([first, second], limit=20)
    assert len(view.metrics) == 20 and view.metrics_total == 300
    assert [m.path for m in view.metrics[:2]] == ["fe[0].score", "fe[1].score"]
    (group,) = view.groups
    assert (group.group, group.name) == ("fe[*].score", "rmse")
    assert group.count == {first: 300, second: 299}
    assert group.mean[first] == pytest.approx(149.5)
    assert group.mean[second] == pytest.approx((299 * 300 / 2 - 7) / 299)
    assert group.min == {first: 0.0, second: 0.0} and group.max == {first: 299.0, second: 299.0}
    assert group.differs
    # The step that differs comes first, then the others in path order: 20 listed of 301.
    assert len(view.steps) == 20 and view.steps_total == 301
    assert view.steps_differing == 1
    assert view.steps[0].path == "fe[7].score" and view.steps[0].differs
    assert view.steps[0].statuses == {first: "succeeded", second: "failed"}
    assert not any(s.differs for s in view.steps[1:])
    everything = service.experiments.compare([first, second], limit=1000)
    assert len(everything.metrics) == 300 and len(everything.steps) == 301
    with pytest.raises(ParameterError, match="limit must be from 1 to 100,000, got 0"):
        service.experiments.compare([first, second], limit=0)


def test_nested_items_pool_into_one_row(service: LocalService) -> None:
    runs = []
    for _ in range(2):
        run_id = service.create_run(nested.spec, {}).id
        service.execute(run_id)
        runs.append(run_id)
    (group,) = service.experiments.compare(runs).groups
    assert (group.group, group.count[runs[0]]) == ("outer[*].inner[*].score", 6)
    assert group.mean[runs[1]] == pytest.approx((1 + 2 + 11 + 12 + 21 + 22) / 6)
    assert not group.differs

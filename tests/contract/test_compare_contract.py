"""``compare`` computed in the database answers what reading every row of the runs answered
(tests/contract/_compare_reference.py), on every SQL backend: nested foreach items, a
loop's iterations, a failed item, items only one run has, cached steps' reused values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _compare_reference import compare_in_memory  # what compare did before

import kaon
from kaon.service import LocalService, Settings
from kaon.service._compare import compare
from kaon.service.experiment_views import CompareView


@kaon.step
def score(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    context = kaon.context()
    for epoch in range(3):
        context.metric("loss", x / 2**epoch / 4, step=epoch)  # exact binary fractions
    context.metric("acc", float(x % 3))
    return x


@kaon.step
def rounds(x: int) -> int:
    kaon.context().metric("round", float(x))
    return x


@kaon.step(cache=True)
def reused(x: int) -> int:
    kaon.context().metric("kept", float(x))
    return x


@kaon.workflow(name="nest")
def nest(outer_items: list = [0, 10, 20], bad: int = -1) -> None:  # noqa: B006
    reused(5)
    with (
        kaon.foreach(outer_items, id="outer", min_success=0.1) as outer,
        kaon.foreach([1, 2], id="inner") as inner,
    ):
        score(outer.item + inner.item, bad)
    with kaon.loop(max_iterations=2, id="again") as lp:
        done = rounds(7)
        lp.until(done > 1000)


@pytest.fixture
def service(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalService]:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    settings = Settings.from_env(home=str(tmp_path / "home"), db_url=url, executor="inline")
    with LocalService(settings) as opened:
        yield opened


def _run(service: LocalService, **params: object) -> str:
    run_id = service.create_run(nest.spec, params).id
    service.execute(run_id)
    return run_id


def _in_memory(service: LocalService, ids: list[str], limit: int) -> CompareView:
    view = compare(service.store, ids, limit=limit)
    old = CompareView(runs=view.runs, params=view.params)
    compare_in_memory(service.store, ids, limit, old)
    return old


@pytest.mark.parametrize("limit", [1, 5, 1000])
def test_the_database_answers_what_every_row_answered(service: LocalService, limit: int) -> None:
    first = _run(service)
    second = _run(service, outer_items=[0, 10, 30, 40], bad=11)
    third = _run(service, outer_items=[10])
    ids = [second, first, third]
    view = compare(service.store, ids, limit=limit)
    expected = _in_memory(service, ids, limit)
    assert view.model_dump() == expected.model_dump()
    everything = compare(service.store, ids, limit=1000)
    assert everything.metrics_total == len(everything.metrics) > 15
    groups = {(g.group, g.name) for g in everything.groups}
    assert ("outer[*].inner[*].score", "loss") in groups
    assert ("again[*].rounds", "round") in groups
    assert any(row.path == "reused" and row.values[first] == 5.0 for row in everything.metrics)
    assert any(row.differs for row in everything.steps)


def test_compare_reads_no_run_whole(service: LocalService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither every step run nor every metric value of a run is read into the process."""
    ids = [_run(service), _run(service, bad=11)]

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("a whole run was read")

    monkeypatch.setattr(service.store, "step_runs", whole)
    monkeypatch.setattr(service.store, "metrics", whole)
    view = compare(service.store, ids, limit=2)
    assert len(view.metrics) == 2 and view.metrics_total > 2
    # Those that differ first: the failed item's foreach, the step the second run reused
    # from the cache (then the failed task...).
    assert [s.path for s in view.steps] == ["outer[1].inner", "reused"]
    assert view.steps_total == 14 and view.steps_differing >= 3

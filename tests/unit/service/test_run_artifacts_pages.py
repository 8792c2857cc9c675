"""A run's artifacts come a page of step runs at a time: ``GET /runs/{id}/artifacts`` read
every step run and artifact record of the run and answered them in one document (2.4 MB for
a sweep of 20,000 items); a page reads its own rows, and the clients follow the pages."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import kaon
from kaon.errors import ParameterError
from kaon.service import LocalService, Settings
from kaon.store.base import StepRunRecord


@kaon.step(cache=True)
def fit(i: int) -> Any:
    if i % 50 == 0:
        return np.arange(3) + i  # a blob
    return {"score": i}  # an inline value


@kaon.workflow(name="sweep")
def sweep() -> None:
    with kaon.foreach(list(range(120)), id="fe", concurrency=8) as fe:
        fit(fe.item)


@pytest.fixture
def service(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalService]:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    service = LocalService(Settings(home=tmp_path / "home", executor="inline"))
    yield service
    service.close()


def _run(service: LocalService) -> str:
    run_id = service.create_run(sweep.spec, {}).id
    assert service.execute(run_id).value == "succeeded"
    return run_id


def test_a_page_reads_its_step_runs_and_the_pages_add_up(
    service: LocalService, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _run(service)
    x = service.experiments
    whole = x.run_artifacts(run_id)
    assert whole.steps_total == 241 and whole.next_offset is None
    assert len(whole.values) == 117 and len(whole.artifacts) == 3
    read: list[int] = []
    original = service.store.step_runs

    def counting(run: str, **kwargs: Any) -> list[StepRunRecord]:
        rows = original(run, **kwargs)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(service.store, "step_runs", counting)
    first = x.run_artifacts(run_id, limit=100)
    assert read == [] and first.next_offset == 100 and first.steps_total == 241
    second = x.run_artifacts(run_id, offset=100, limit=100)
    third = x.run_artifacts(run_id, offset=200, limit=100)
    assert third.next_offset is None
    pages = (first, second, third)
    assert [v for p in pages for v in p.values] == whole.values
    assert [a for p in pages for a in p.artifacts] == whole.artifacts
    with pytest.raises(ParameterError, match="limit must be from 1 to 1,000, got 0"):
        x.run_artifacts(run_id, limit=0)


def test_a_cached_steps_blobs_name_the_execution_they_reused(service: LocalService) -> None:
    first, again = _run(service), _run(service)
    page = service.experiments.run_artifacts(again, limit=50)
    reused = [a for a in page.artifacts if a.path == "fe[0].fit"]
    assert [(a.cached_from, a.attempt) for a in reused] == [(f"{first}:fe[0].fit", 1)]
    assert reused[0].created_at is not None

"""The engine's memory: expressions load only the fields they read; finished frames and
their timers are released."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from conftest import E, Harness, flow, task

from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.engine.engine import Engine
from kaon.engine.nodes import Frame
from kaon.executors import create_executor
from kaon.model.specs import ForeachSpec, GraphSpec, LoopSpec, RetrySpec, StepDefaults
from kaon.model.status import RunStatus, StepStatus
from kaon.model.values import ArtifactRef, decode_outputs

BLOB = 6000  # items in the flag's neighbour: well over the inline limit


class CountingStore(FsspecArtifactStore):
    """A real artifact store that records every blob the engine loads."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loaded: list[str] = []

    def _load(self, ref: ArtifactRef) -> Any:
        self.loaded.append(ref.hash)
        return super()._load(ref)


@pytest.fixture
def counting(inline: Harness) -> Harness:
    inline.artifacts = CountingStore(str(inline.tmp / "artifacts"))
    return inline


def _blob_hash(h: Harness, run_id: str, path: str) -> str:
    outputs = decode_outputs(h.store.get_step_run(run_id, path).outputs)
    blob = outputs["blob"]
    assert isinstance(blob, ArtifactRef)
    return blob.hash


def _loaded(h: Harness) -> list[str]:
    assert isinstance(h.artifacts, CountingStore)
    return h.artifacts.loaded


def _check() -> Any:
    return task("check", "flagged", inputs={"n": BLOB})


def test_when_reads_the_flag_without_loading_its_neighbour(counting: Harness) -> None:
    spec = flow(
        _check(),
        task("go", "const", needs=("check",), inputs={"value": 1}, when="steps.check.ok"),
        task("no", "const", needs=("check",), inputs={"value": 2}, when="!steps.check.ok"),
    )
    status, run_id = counting.run(spec)
    assert status is RunStatus.SUCCEEDED
    rows = counting.rows(run_id)
    assert rows["go"].status is StepStatus.SUCCEEDED
    assert rows["no"].status is StepStatus.SKIPPED
    assert _blob_hash(counting, run_id, "check") not in _loaded(counting)


def test_foreach_items_expression_reads_only_what_it_names(counting: Harness) -> None:
    body = GraphSpec(steps=(task("echo", "const", inputs={"value": E("item")}),))
    spec = flow(
        _check(),
        ForeachSpec(
            id="each",
            needs=("check",),
            items=E("steps.check.ok ? steps.check.regions : []"),
            body=body,
        ),
    )
    status, run_id = counting.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert counting.value(run_id, "each") == ["eu", "us"]
    assert _blob_hash(counting, run_id, "check") not in _loaded(counting)


def test_until_reads_the_flag_without_loading_its_neighbour(counting: Harness) -> None:
    body = GraphSpec(steps=(task("check", "flagged", inputs={"n": BLOB}),))
    spec = flow(
        LoopSpec(id="again", body=body, until="steps.check.ok && size(steps.check.regions) == 2")
    )
    status, run_id = counting.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert _blob_hash(counting, run_id, "again[0].check") not in _loaded(counting)


def test_whole_output_still_loads_when_the_expression_needs_it(counting: Harness) -> None:
    spec = flow(
        _check(),
        task(
            "go", "const", needs=("check",), inputs={"value": 1}, when="size(steps.check.blob) > 0"
        ),
    )
    status, run_id = counting.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert counting.rows(run_id)["go"].status is StepStatus.SUCCEEDED
    assert _blob_hash(counting, run_id, "check") in _loaded(counting)


def _live_frames() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Frame))


def test_step_timeouts_release_finished_frames(inline: Harness) -> None:
    items = 300
    body = GraphSpec(steps=(task("echo", "const", inputs={"value": E("item")}),))
    spec = flow(
        task("make", "const", inputs={"value": list(range(items))}),
        ForeachSpec(id="each", needs=("make",), items=E("steps.make"), body=body),
        defaults=StepDefaults(timeout_s=3600.0),
    )
    engine = _untuned_engine(inline)
    before = _live_frames()
    run_id = inline.create(spec)
    assert inline.drive(run_id, engine=engine) is RunStatus.SUCCEEDED
    assert len(engine.ctx.timers) == 0  # no timer outlives the attempt it guards
    assert _live_frames() - before == 0  # finished frames are released


def _untuned_engine(h: Harness) -> Engine:
    """An engine that leaves the collector alone, so that gc sees every frame."""
    return Engine(h.store, create_executor("inline", workers=4), h.artifacts, tune_collector=False)


def test_retry_and_run_timers_are_dropped_with_their_step(inline: Harness) -> None:
    state = str(inline.state)
    spec = flow(
        task(
            "flaky",
            "flaky",
            inputs={"state": state, "name": "f", "failures": 1},
            retry=RetrySpec(max_attempts=3, delay_s=0.05),
            timeout_s=3600.0,
        ),
        timeout_s=3600.0,
    )
    engine = _untuned_engine(inline)
    run_id = inline.create(spec)
    assert inline.drive(run_id, engine=engine) is RunStatus.SUCCEEDED
    assert len(engine.ctx.timers) == 0  # attempt timeouts and the run's deadline are gone

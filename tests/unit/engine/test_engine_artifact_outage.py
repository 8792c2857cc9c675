"""An artifact store that fails transiently while the engine decides a run: a blip is tried
again in place (nothing runs again), a longer outage lets the run go and loads it again after
a pause (nothing half decided committed), and a store that stays down quarantines it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from conftest import E, Harness, flow, task

from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.engine import outages, spool
from kaon.engine.engine import Engine
from kaon.errors import ArtifactUnavailableError
from kaon.executors import create_executor
from kaon.model.specs import ForeachSpec, GraphSpec
from kaon.model.status import RunStatus
from kaon.model.values import ValueRef


class _Down(FsspecArtifactStore):
    """Fails to store a foreach's results ``failures`` times, as S3 does in an outage."""

    failures = 0

    def put_json_items(self, texts: Iterable[bytes], *, name: str = "") -> ValueRef:
        if self.failures:
            self.failures -= 1
            list(texts)  # read as a real upload would, then the connection drops
            raise ArtifactUnavailableError("cannot write blob to s3://bucket: connection reset")
        return super().put_json_items(texts, name=name)


@pytest.fixture(autouse=True)
def _short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages, "FIRST_PAUSE_S", 0.05)
    monkeypatch.setattr(outages, "LONGEST_PAUSE_S", 0.2)
    monkeypatch.setattr(outages, "RETRIES", 3)
    monkeypatch.setattr(outages, "IN_PLACE_PAUSES_S", (0.01, 0.01))
    monkeypatch.setattr(outages, "DOWN_S", 0.1)
    monkeypatch.setattr(spool, "INLINE_LIMIT", 200)


ITEMS = 300  # results past the (lowered) inline limit: the engine stores them as a blob


def _fan(h: Harness) -> Any:
    state = str(h.state)
    body = GraphSpec(steps=(task("inc", "add", inputs={"a": E("item"), "b": 1, "state": state}),))
    return flow(
        task("src", "const", inputs={"value": list(range(ITEMS))}),
        ForeachSpec(id="each", items=E("steps.src"), body=body),
    )


def _drive(h: Harness, failures: int) -> tuple[RunStatus, str]:
    store = _Down(str(h.tmp / "artifacts"))
    store.failures = failures
    run_id = h.create(_fan(h))
    engine = Engine(h.store, create_executor("inline", workers=4), store)
    return h.drive(run_id, engine=engine), run_id


def test_a_blip_of_the_artifact_store_is_tried_again_in_place(inline: Harness) -> None:
    status, run_id = _drive(inline, failures=2)
    assert status is RunStatus.SUCCEEDED, inline.store.get_run(run_id).error
    assert inline.count("add") == ITEMS  # no item ran twice
    assert inline.value(run_id, "each")[-1] == ITEMS


def test_a_run_is_loaded_again_after_a_longer_outage(inline: Harness) -> None:
    status, run_id = _drive(inline, failures=5)  # past the tries in place: let go, twice
    assert status is RunStatus.SUCCEEDED, inline.store.get_run(run_id).error
    assert inline.count("add") >= ITEMS  # those whose end was not committed ran again
    assert inline.value(run_id, "each")[-1] == ITEMS


def test_a_store_that_stays_down_quarantines_the_run(inline: Harness) -> None:
    status, run_id = _drive(inline, failures=100)
    assert status is RunStatus.FAILED
    error = inline.store.get_run(run_id).error or ""
    assert error.startswith("quarantined: ArtifactUnavailableError"), error
    assert inline.count("add") >= ITEMS

"""Where an engine gets a run's workflow spec: the process's cache (kaon.model.spec_cache),
else the stored definition, decoded once per process."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import E, Harness, flow, task

from kaon.model.spec_cache import SPECS
from kaon.model.status import RunStatus
from kaon.store.base import DefinitionRecord


def _count_reads(monkeypatch: pytest.MonkeyPatch, harness: Harness) -> list[str]:
    reads: list[str] = []
    store: Any = harness.store
    original = store.get_definition

    def get_definition(definition_hash: str) -> DefinitionRecord:
        reads.append(definition_hash)
        return original(definition_hash)  # type: ignore[no-any-return]

    monkeypatch.setattr(store, "get_definition", get_definition)
    return reads


def test_a_run_made_in_this_process_runs_without_reading_its_definition_back(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _count_reads(monkeypatch, inline)
    spec = flow(
        task("a", "const", inputs={"value": 1}),
        task("b", "add", needs=("a",), inputs={"a": E("steps.a"), "b": 1}),
        name="made-here",
    )
    status, _ = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert reads == []


def test_runs_of_a_definition_another_process_stored_decode_it_once(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = flow(task("a", "const", inputs={"value": 1}), name="stored-elsewhere")
    first, second = inline.create(spec), inline.create(spec)
    SPECS.clear()  # as in a process that did not make these runs
    reads = _count_reads(monkeypatch, inline)
    assert inline.drive(first) is RunStatus.SUCCEEDED
    assert inline.drive(second) is RunStatus.SUCCEEDED  # a second engine, the same process
    assert len(reads) == 1

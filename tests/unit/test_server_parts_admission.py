"""The server's admission callback reads the workflows' properties together, not one
workflow's row per run it is asked about (a claiming pass looks at the queue heads of
thousands of workflows, again every second)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kaon import server_parts
from kaon.model.status import RunStatus
from kaon.store import open_store
from kaon.store.base import DefinitionRecord, RunRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore, VersionRecord
from kaon.store.sql import SQLStore

WORKFLOWS = 40


def _store(tmp_path: Path) -> tuple[SQLStore, list[RunRecord]]:
    store = open_store(f"sqlite:///{tmp_path / 'k.db'}")
    assert isinstance(store, SQLStore)
    registry = SQLRegistryStore(store)
    now = time.time()
    batch = WriteBatch()
    for n in range(WORKFLOWS):
        name = f"wf{n}"
        batch.definitions.append(DefinitionRecord(f"h{n}", name, {}, "", now))
        batch.runs.append(RunRecord(f"r{n}a", name, f"h{n}", RunStatus.RUNNING, created_at=1))
        batch.runs.append(RunRecord(f"r{n}b", name, f"h{n}", RunStatus.PENDING, created_at=2))
    store.write(batch)
    for n in range(WORKFLOWS):
        registry.add_version(VersionRecord(f"wf{n}", 0, f"h{n}", "", "t", now, "t"), activate=True)
        registry.update_workflow(f"wf{n}", now, properties={"run_strategy": "sequential"})
    return store, [r for r in batch.runs if r.status is RunStatus.PENDING]


def test_admitting_the_heads_of_many_workflows_reads_the_registry_a_few_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, heads = _store(tmp_path)
    monkeypatch.setattr(server_parts, "PROPERTIES_TTL_S", 0.2)
    admit = server_parts.admission(store)
    try:
        for _ in range(3):  # three claiming passes, each past the TTL
            time.sleep(0.25)
            with store.reads_seen() as reads:
                assert not any(admit(run) for run in heads)  # each waits behind a running one
            registry_reads = [sql for sql in reads if "workflows" in sql]
            assert len(registry_reads) <= 2, registry_reads
    finally:
        store.close()


def test_a_changed_strategy_is_admitted_by_at_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, heads = _store(tmp_path)
    monkeypatch.setattr(server_parts, "PROPERTIES_TTL_S", 0.0)
    admit = server_parts.admission(store)
    try:
        assert not admit(heads[0])
        SQLRegistryStore(store).update_workflow("wf0", time.time() + 1, properties={})
        assert admit(heads[0])  # parallel now
        assert not admit(heads[1])
        assert admit(RunRecord("x", "not-registered", "h", RunStatus.PENDING))
    finally:
        store.close()


def test_the_admission_says_when_a_strategy_or_an_unblock_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine remembers the queue heads a strategy refused (kaon.engine.refusals); the
    server's admission callback tells it when to ask again: a property changed, or a
    workflow was unblocked (it waited out the memory, up to 15 s, after `kaon unblock`)."""
    from kaon.engine.refusals import AdmissionChanges
    from kaon.triggers import strategies

    store, _heads = _store(tmp_path)
    monkeypatch.setattr(server_parts, "PROPERTIES_TTL_S", 0.0)
    admit = server_parts.admission(store)
    try:
        assert isinstance(admit, AdmissionChanges)
        first = admit.changes()
        assert admit.changes() == first
        SQLRegistryStore(store).update_workflow("wf3", time.time() + 1, properties={})
        second = admit.changes()
        assert second != first
        strategies.unblock(store, "wf5", now=time.time() + 2)
        assert admit.changes() != second
    finally:
        store.close()

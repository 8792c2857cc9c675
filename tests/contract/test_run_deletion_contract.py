"""Deleting runs and choosing them for retention: the same contract on SQLite and PostgreSQL.

Every table with a ``run_id`` column is filled for two runs from the schema itself (so a
table added later is covered without touching this file), one run is deleted, and every
such table must hold none of its rows and all of the other's."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from test_store_contract import step_record, write_run

from kaon.engine.operations import restart_run
from kaon.errors import InvalidActionError, LeaseError, StoreError
from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import ArtifactRecord, CacheEntryRecord, StateStore, WriteBatch
from kaon.store.deletion import KEPT, run_tables
from kaon.store.schema import Json, metadata
from kaon.store.sql import SQLStore


@pytest.fixture
def db(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


_numbers = itertools.count(1)


def _fake_row(table: sa.Table, run_id: str) -> dict[str, Any]:
    """A row of ``table`` for ``run_id``, every column made up from its type."""
    n = next(_numbers)
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.name == "run_id":
            row["run_id"] = run_id
        elif column.primary_key and column.autoincrement is True:
            continue
        elif isinstance(column.type, Json.__class__):
            row[column.name] = {"n": n}
        elif isinstance(column.type, sa.Integer | sa.BigInteger):
            row[column.name] = 10_000 + n
        elif isinstance(column.type, sa.Double | sa.Float):
            row[column.name] = float(n)
        else:
            row[column.name] = f"{column.name}-{n}"
    return row


def _fill(db: sa.Engine, run_id: str, per_table: int = 3) -> None:
    with db.begin() as conn:
        for name in sorted(metadata.tables):
            table = metadata.tables[name]
            if "run_id" in table.c:
                for _ in range(per_table):
                    conn.execute(sa.insert(table).values(**_fake_row(table, run_id)))


def _counts(db: sa.Engine, run_id: str) -> dict[str, int]:
    found = {}
    with db.connect() as conn:
        for name, table in sorted(metadata.tables.items()):
            if "run_id" in table.c:
                query = sa.select(sa.func.count()).where(table.c.run_id == run_id)
                found[name] = int(conn.execute(query).scalar_one())
    return found


def _finished(store: StateStore, run_id: str, **fields: Any) -> None:
    values: dict[str, Any] = {"status": RunStatus.SUCCEEDED, "ended_at": 200.0}
    values.update(fields)
    write_run(store, run_id, **values)


def test_every_table_with_a_run_id_is_emptied_or_kept_on_purpose() -> None:
    with_run = {name for name, table in metadata.tables.items() if "run_id" in table.c}
    assert set(run_tables()) | KEPT == with_run
    assert run_tables()[0] == "cache_entries" and run_tables()[-1] == "step_runs"


def test_deleting_a_run_removes_every_row_of_it_and_nothing_else(
    store: StateStore, db: sa.Engine
) -> None:
    _finished(store, "gone")
    _finished(store, "kept")
    store.write(WriteBatch(step_runs={("gone", 1): step_record("gone", 1)}))
    _fill(db, "gone")
    _fill(db, "kept")
    assert all(_counts(db, "gone").values())  # every table holds rows of both

    assert store.delete_runs(["gone"], chunk_rows=2) == 1

    left = _counts(db, "gone")
    assert {name: n for name, n in left.items() if n and name not in KEPT} == {}
    assert left["trigger_firings"] == 3  # de-duplication keys outlive the run
    assert all(n == 3 for n in _counts(db, "kept").values())
    assert [r.id for r in store.list_runs()] == ["kept"]
    assert store.delete_runs(["gone", "unknown"]) == 0  # done already: nothing to do


def test_idempotency_keys_naming_the_run_go_with_it(store: StateStore, db: sa.Engine) -> None:
    _finished(store, "r-1")
    _finished(store, "r-2")
    keys = metadata.tables["idempotency_keys"]
    with db.begin() as conn:
        for key, answer in (("a", {"id": "r-1"}), ("b", {"run_id": "r-1"}), ("c", {"id": "r-2"})):
            conn.execute(
                sa.insert(keys).values(
                    actor="t", key=key, request_hash="h", status=201, response=answer,
                    created_at=150.0,
                )
            )  # fmt: skip
    store.delete_runs(["r-1"])
    with db.connect() as conn:
        assert [row.key for row in conn.execute(sa.select(keys.c.key))] == ["c"]


@pytest.mark.parametrize("status", [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED])
def test_an_unfinished_run_is_refused_and_nothing_is_deleted(
    store: StateStore, status: RunStatus
) -> None:
    _finished(store, "done")
    write_run(store, "active", status=status)
    with pytest.raises(InvalidActionError, match="only a finished run can be deleted"):
        store.delete_runs(["done", "active"])
    assert {r.id for r in store.list_runs()} == {"done", "active"}


def test_a_run_an_engine_holds_is_refused_until_let_go(store: StateStore) -> None:
    _finished(store, "held")
    epoch = store.acquire_lease("held", "engine-1", 60.0)
    assert epoch is not None
    with pytest.raises(LeaseError, match="engine-1"):
        store.delete_runs(["held"])
    store.release_lease("held", "engine-1")
    assert store.delete_runs(["held"]) == 1


def test_an_interrupted_deletion_is_finished_by_a_second_call(
    store: StateStore, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(store, SQLStore)
    _finished(store, "big")
    _fill(db, "big", per_table=5)
    real = store._transaction
    calls = itertools.count()

    @contextmanager
    def crashing(doing: str) -> Iterator[Any]:
        if next(calls) == 6:  # a few chunks in: the claim and some rows are done
            raise StoreError("the process died")
        with real(doing) as tx:
            yield tx

    monkeypatch.setattr(store, "_transaction", crashing)
    with pytest.raises(StoreError, match="died"):
        store.delete_runs(["big"], chunk_rows=2)
    monkeypatch.setattr(store, "_transaction", real)

    half = _counts(db, "big")
    assert half["cache_entries"] == 0 and half["step_runs"] == 5  # partly gone, oldest first
    assert store.get_run("big").status is RunStatus.SUCCEEDED
    with pytest.raises(InvalidActionError, match="being deleted"):
        restart_run(store, "big")
    assert store.claimable_runs(limit=10) == []

    assert store.delete_runs(["big"], chunk_rows=2) == 1
    assert not any(n for name, n in _counts(db, "big").items() if name not in KEPT)
    assert store.list_runs() == []


def test_step_runs_that_reused_a_deleted_runs_outputs_keep_its_blobs(store: StateStore) -> None:
    _finished(store, "source")
    _finished(store, "reuser")
    produced = ArtifactRecord(
        hash="h-model", run_id="source", step_run_id=1, path="train", output="model",
        serializer="pickle", size=10,
    )  # fmt: skip
    entry = CacheEntryRecord(
        key="k1", workflow="wf", step_id="train", path="train", run_id="source",
        step_run_id=1, outputs={}, components={}, created_at=150.0,
    )  # fmt: skip
    store.write(
        WriteBatch(
            step_runs={
                ("source", 1): step_record("source", 1, path="train"),
                ("reuser", 1): step_record(
                    "reuser", 1, path="train", status=StepStatus.CACHED,
                    cached_from="source:train",
                ),
            },
            artifacts=[produced],
            cache_entries=[entry],
        )
    )  # fmt: skip

    assert store.cache_users("source") == [("reuser", 1, "train")]
    store.delete_runs(["source"])
    store.delete_runs(["source"])  # a second call copies nothing twice

    handed = store.artifacts(run_id="reuser")
    assert [(a.hash, a.step_run_id, a.output) for a in handed] == [("h-model", 1, "model")]
    assert store.referenced_hashes() == {"h-model"}
    assert store.get_cache_entry("k1") is None  # a later run misses and executes
    store.delete_runs(["reuser"])
    assert store.referenced_hashes() == set()


def test_expired_runs_keep_the_newest_per_workflow_and_young_runs(store: StateStore) -> None:
    for i in range(5):  # a: five old runs; b: two old runs, one young; an active old run
        _finished(store, f"a{i}", workflow="a", created_at=100.0 + i, ended_at=110.0 + i)
    for i in range(2):
        _finished(store, f"b{i}", workflow="b", created_at=100.0 + i, ended_at=110.0 + i)
    _finished(store, "b-young", workflow="b", created_at=102.0, ended_at=900.0)
    write_run(store, "a-active", workflow="a", status=RunStatus.RUNNING, created_at=50.0)
    _finished(store, "never-started", workflow="c", created_at=10.0, ended_at=None)

    def ids(**kwargs: Any) -> list[str]:
        return [r.id for r in store.expired_runs(before=500.0, **kwargs)]

    assert ids() == ["never-started", "a0", "b0", "a1", "b1", "a2", "a3", "a4"]
    assert ids(keep_last=2) == ["a0", "b0", "a1", "a2"]  # b keeps b-young and b1
    assert ids(keep_last=2, workflow="a") == ["a0", "a1", "a2"]
    assert ids(keep_last=2, limit=2) == ["a0", "b0"]
    assert store.expired_runs(before=0.0) == []

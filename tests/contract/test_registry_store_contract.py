"""The contract every RegistryStore backend passes: SQLite file, SQLite memory, PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import NotFoundError
from kaon.store.registry import (
    AuditRecord,
    IdempotencyRecord,
    RegistryStore,
    SQLRegistryStore,
    TokenRecord,
    VersionRecord,
)
from kaon.store.sql import SQLStore


def version(workflow: str = "wf", definition_hash: str = "h1", at: float = 10.0) -> VersionRecord:
    return VersionRecord(
        workflow, 0, definition_hash, f"source of {definition_hash}", "wf.yaml", at, "ann"
    )


class RegistryStoreContract:
    """Subclasses provide ``store_url``."""

    @pytest.fixture
    def registry(self, store_url: str) -> Iterator[RegistryStore]:
        store = SQLStore(store_url)
        try:
            yield SQLRegistryStore(store)
        finally:
            store.close()

    def test_first_push_creates_the_workflow_and_activates_version_1(
        self, registry: RegistryStore
    ) -> None:
        created, new = registry.add_version(version(), activate=False, owner_group="ml")
        assert new and created.version == 1
        workflow = registry.get_workflow("wf")
        assert workflow.active_version == 1
        assert workflow.owner_group == "ml"
        assert workflow.properties == {}

    def test_versions_count_up_and_identical_content_is_a_no_op(
        self, registry: RegistryStore
    ) -> None:
        registry.add_version(version(definition_hash="h1"), activate=True)
        second, new = registry.add_version(version(definition_hash="h2", at=11.0), activate=False)
        assert new and second.version == 2
        again, new_again = registry.add_version(version(definition_hash="h1"), activate=True)
        assert not new_again and again.version == 1
        assert [v.version for v in registry.versions("wf")] == [1, 2]
        assert registry.get_workflow("wf").active_version == 1
        stored = registry.get_version("wf", 2)
        assert stored.source == "source of h2" and stored.created_by == "ann"

    def test_activate_deactivate_and_unknowns(self, registry: RegistryStore) -> None:
        registry.add_version(version(definition_hash="h1"), activate=True)
        registry.add_version(version(definition_hash="h2"), activate=True)
        assert registry.get_workflow("wf").active_version == 2
        assert registry.set_active("wf", 1, 20.0).active_version == 1
        assert registry.set_active("wf", None, 21.0).active_version is None
        with pytest.raises(NotFoundError, match="no version 9"):
            registry.set_active("wf", 9, 22.0)
        with pytest.raises(NotFoundError, match="no workflow 'ghost'"):
            registry.get_workflow("ghost")
        with pytest.raises(NotFoundError):
            registry.versions("ghost")
        with pytest.raises(NotFoundError):
            registry.update_workflow("ghost", 1.0, properties={})

    def test_properties_and_owner_group_change_without_a_version(
        self, registry: RegistryStore
    ) -> None:
        registry.add_version(version(), activate=True, owner_group="ml")
        updated = registry.update_workflow("wf", 30.0, properties={"concurrency": 2})
        assert updated.properties == {"concurrency": 2} and updated.owner_group == "ml"
        moved = registry.update_workflow("wf", 31.0, owner_group="data")
        assert moved.owner_group == "data" and moved.properties == {"concurrency": 2}
        cleared = registry.update_workflow("wf", 32.0, clear_owner_group=True)
        assert cleared.owner_group is None and cleared.updated_at == 32.0
        assert len(registry.versions("wf")) == 1

    def test_property_changes_made_at_once_are_merged_not_lost(
        self, registry: RegistryStore
    ) -> None:
        registry.add_version(version(), activate=True)
        registry.update_workflow("wf", 30.0, properties={"gone": 1, "kept": 2})
        changes: list[dict[str, Any]] = [{f"k{n}": n} for n in range(16)] + [{"gone": None}]
        barrier = threading.Barrier(len(changes))

        def change(properties: dict[str, Any]) -> None:
            barrier.wait()
            registry.update_workflow("wf", 31.0, property_changes=properties)

        threads = [threading.Thread(target=change, args=(c,)) for c in changes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expected = {"kept": 2, **{f"k{n}": n for n in range(16)}}
        assert registry.get_workflow("wf").properties == expected
        with pytest.raises(NotFoundError, match="no workflow 'ghost'"):
            registry.update_workflow("ghost", 32.0, property_changes={"a": 1})

    def test_list_workflows_by_name_with_pagination(self, registry: RegistryStore) -> None:
        for name in ("c", "a", "b"):
            registry.add_version(version(workflow=name), activate=True)
        assert [w.name for w in registry.list_workflows()] == ["a", "b", "c"]
        assert [w.name for w in registry.list_workflows(limit=1, offset=1)] == ["b"]

    def test_tokens(self, registry: RegistryStore) -> None:
        assert registry.count_tokens() == 0
        token = TokenRecord("t1", "ci", "hash-1", "operator", ["ml"], 1.0)
        registry.add_token(token)
        assert registry.token_by_hash("hash-1") == token
        assert registry.token_by_hash("nope") is None
        assert registry.token("t1") == token
        assert registry.token("ghost") is None
        registry.touch_token("t1", 5.0)
        found = registry.token_by_hash("hash-1")
        assert found is not None and found.last_used_at == 5.0
        assert registry.revoke_token("t1", 6.0) == 6.0
        assert registry.revoke_token("ghost", 6.0) is None
        found = registry.token_by_hash("hash-1")
        assert found is not None and found.revoked_at == 6.0
        assert registry.token("t1") == found
        # Revoking it again keeps when it stopped working: the second time overwrote it.
        assert registry.revoke_token("t1", 8.0) == 6.0
        found = registry.token_by_hash("hash-1")
        assert found is not None and found.revoked_at == 6.0
        assert [t.id for t in registry.list_tokens()] == ["t1"]
        assert registry.count_tokens() == 1
        registry.add_token(TokenRecord("t0", "ci", "hash-0", "viewer", [], 1.0))  # t1's time
        registry.add_token(TokenRecord("t2", "ci", "hash-2", "viewer", [], 2.0))
        assert [t.id for t in registry.list_tokens(limit=2)] == ["t0", "t1"]
        assert [t.id for t in registry.list_tokens(after=(1.0, "t0"))] == ["t1", "t2"]
        assert [t.id for t in registry.list_tokens(after=(1.0, "t1"), limit=5)] == ["t2"]

    def test_token_expiry_and_rotation(self, registry: RegistryStore) -> None:
        registry.add_token(TokenRecord("t1", "ci", "hash-1", "viewer", [], 1.0, expires_at=9.0))
        found = registry.token_by_hash("hash-1")
        assert found is not None and found.expires_at == 9.0
        assert registry.rotate_token("t1", "hash-2", None)
        assert registry.token_by_hash("hash-1") is None
        rotated = registry.token_by_hash("hash-2")
        assert rotated is not None and rotated.id == "t1" and rotated.expires_at is None
        assert not registry.rotate_token("ghost", "hash-3", None)
        registry.revoke_token("t1", 10.0)
        assert not registry.rotate_token("t1", "hash-3", None)  # a revoked token stays dead

    def test_idempotency_keys(self, registry: RegistryStore) -> None:
        first = IdempotencyRecord("t1", "k", "digest", 0, {"run_id": "r1"}, 5.0)
        assert registry.reserve_idempotency(first)
        assert not registry.reserve_idempotency(IdempotencyRecord("t1", "k", "other", 0))
        assert registry.reserve_idempotency(IdempotencyRecord("t2", "k", "digest", 0, {}, 6.0))
        assert registry.idempotency("t1", "k") == first
        registry.finish_idempotency("t1", "k", 200, {"id": "r1"})
        done = registry.idempotency("t1", "k")
        assert done is not None and done.status == 200 and done.response == {"id": "r1"}
        assert registry.drop_idempotency("", "", before=5.5) == 1
        assert registry.idempotency("t1", "k") is None
        assert registry.drop_idempotency("t2", "k") == 1
        assert registry.idempotency("t2", "k") is None

    def test_a_released_key_is_taken_over_by_one_caller(self, registry: RegistryStore) -> None:
        from kaon.store.registry import IDEMPOTENCY_RELEASED

        assert registry.reserve_idempotency(IdempotencyRecord("t1", "k", "d", 0, {"n": 1}, 5.0))
        registry.release_idempotency("t1", "k")
        found = registry.idempotency("t1", "k")
        assert found is not None and found.status == IDEMPOTENCY_RELEASED
        assert registry.retake_idempotency("t1", "k", 5.0, 9.0)
        assert not registry.retake_idempotency("t1", "k", 5.0, 9.5)  # taken already
        again = registry.idempotency("t1", "k")
        assert again is not None and (again.status, again.created_at) == (0, 9.0)
        registry.finish_idempotency("t1", "k", 200, {"id": "x"})
        registry.release_idempotency("t1", "k")  # an answered key stays answered
        assert not registry.retake_idempotency("t1", "k", 9.0, 10.0)
        answered = registry.idempotency("t1", "k")
        assert answered is not None and answered.status == 200

    def test_audit_trail_by_token_id(self, registry: RegistryStore) -> None:
        registry.add_audit(AuditRecord(1.0, "ci", "run.start", "run:a", {"token_id": "t1"}))
        registry.add_audit(AuditRecord(2.0, "ci", "run.start", "run:b", {"token_id": "t2"}))
        registry.add_audit(AuditRecord(3.0, "retention", "run.delete", "run:a"))
        registry.add_audit(AuditRecord(4.0, "ci", "run.kill", "run:a", {"token_id": "t1"}))
        mine = registry.audit(token_id="t1")
        assert [(a.action, a.target) for a in mine] == [
            ("run.start", "run:a"),
            ("run.kill", "run:a"),
        ]
        assert mine[0].data == {"token_id": "t1"}
        assert [a.target for a in registry.audit(token_id="t1", actor="ci", target="run:a")] == [
            "run:a",
            "run:a",
        ]
        assert registry.audit(token_id="t3") == []

    def test_audit_trail_is_ordered_and_filterable(self, registry: RegistryStore) -> None:
        registry.add_audit(AuditRecord(1.0, "ann", "workflow.push", "workflow:wf", {"v": 1}))
        registry.add_audit(AuditRecord(2.0, "bob", "run.kill", "run:r1"))
        registry.add_audit(AuditRecord(3.0, "ann", "run.start", "run:r2"))
        every = registry.audit()
        assert [a.action for a in every] == ["workflow.push", "run.kill", "run.start"]
        assert every[0].data == {"v": 1} and every[1].data == {}
        assert [a.target for a in registry.audit(actor="ann")] == ["workflow:wf", "run:r2"]
        assert [a.actor for a in registry.audit(target="run:r1")] == ["bob"]
        first = every[0].id
        assert first is not None
        assert len(registry.audit(after_id=first)) == 2

    def test_bundles_are_kept_once_by_folder(self, registry: RegistryStore) -> None:
        files = {"flow.py": "import helper\n", "helper.py": "X = 'é'\n"}
        assert registry.get_bundle("ab12cd34ef56ab78") is None
        registry.put_bundle("ab12cd34ef56ab78", files, 1.0)
        registry.put_bundle("ab12cd34ef56ab78", {"other.py": ""}, 2.0)  # kept: a no-op
        assert registry.get_bundle("ab12cd34ef56ab78") == files

    def test_versions_page_from_the_newest_without_their_source(
        self, registry: RegistryStore
    ) -> None:
        for i in range(1, 8):
            registry.add_version(version(definition_hash=f"h{i}", at=float(i)), activate=True)
        registry.add_version(version(definition_hash="h3", at=9.0), activate=True)  # no-op
        assert [v.version for v in registry.versions("wf", limit=3)] == [5, 6, 7]
        assert [v.version for v in registry.versions("wf", before=5, limit=3)] == [2, 3, 4]
        assert [v.version for v in registry.versions("wf", before=3)] == [1, 2]
        assert {v.source for v in registry.versions("wf")} == {""}  # not read
        assert registry.get_version("wf", 4).source == "source of h4"
        assert registry.version_of_hash("wf", "h3") == 3
        assert registry.version_of_hash("wf", "nope") is None
        with pytest.raises(NotFoundError):
            registry.versions("ghost", limit=3)

    def test_concurrent_pushes_get_distinct_versions(self, registry: RegistryStore) -> None:
        errors: list[BaseException] = []
        numbers: list[int] = []

        def push(i: int) -> None:
            try:
                created, _ = registry.add_version(version(definition_hash=f"h{i}"), activate=True)
                numbers.append(created.version)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert sorted(numbers) == list(range(1, 9))

    def test_replicas_starting_at_once_make_one_first_token(
        self, registry: RegistryStore, store_url: str
    ) -> None:
        shared = store_url == "sqlite://"  # one database per connection: share the one store
        stores = [] if shared else [SQLStore(store_url) for _ in range(6)]
        replicas = [registry] * 6 if shared else [SQLRegistryStore(s) for s in stores]
        barrier = threading.Barrier(len(replicas))
        made: list[bool] = []

        def start(i: int, replica: RegistryStore) -> None:
            barrier.wait()
            record = TokenRecord(f"t{i}", "admin", f"hash{i}", "admin", ["*"], 1.0)
            made.append(replica.add_first_token(record))

        threads = [threading.Thread(target=start, args=p) for p in enumerate(replicas)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for store in stores:
            store.close()
        assert sorted(made) == [False] * 5 + [True]
        assert registry.count_tokens() == 1
        assert not registry.add_first_token(TokenRecord("t9", "x", "hash9", "admin", [], 2.0))


class TestSQLiteFileRegistry(RegistryStoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'kaon.db'}"


class TestSQLiteMemoryRegistry(RegistryStoreContract):
    @pytest.fixture
    def store_url(self) -> str:
        return "sqlite://"


@pytest.mark.integration
class TestPostgresRegistry(RegistryStoreContract):
    @pytest.fixture
    def store_url(self, pg_url: str) -> str:
        return pg_url

"""The token list's pages and the lookup of one token read an index in the order they read
(SQLite's query plan: no scan of the tokens table, no sort of it)."""

from __future__ import annotations

from pathlib import Path

from query_plans import query_plans

from kaon.store import open_store
from kaon.store.registry import SQLRegistryStore, TokenRecord
from kaon.store.sql import SQLStore


def test_a_page_of_tokens_is_a_range_of_an_index_in_its_order(tmp_path: Path) -> None:
    """``GET /tokens?after=`` read the whole tokens table and sorted it (a temporary B-tree)
    for every page: no index had its order, ``created_at, id``."""
    path = tmp_path / "plans.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    try:
        registry = SQLRegistryStore(store)
        for i in range(5):
            registry.add_token(TokenRecord(f"t{i}", "ci", f"hash-{i}", "viewer", [], 1.0 + i // 2))
        page = registry.list_tokens(after=(2.0, "t2"), limit=2)
        assert [t.id for t in page] == ["t3", "t4"]
        assert [t.id for t in registry.list_tokens(limit=3)] == ["t0", "t1", "t2"]
        plans = query_plans(store, path, lambda: registry.list_tokens(after=(2.0, "t2"), limit=2))
        plans += query_plans(store, path, lambda: registry.list_tokens(limit=2))
        assert plans == [
            "SEARCH tokens USING INDEX ix_tokens_created ((created_at,id)>(?,?))",
            "SCAN tokens USING INDEX ix_tokens_created",  # the first page: LIMIT stops it
        ], plans
        lookup = query_plans(store, path, lambda: registry.token("t3"))
        assert lookup and all("sqlite_autoindex_tokens_1 (id=?)" in line for line in lookup), lookup
    finally:
        store.close()

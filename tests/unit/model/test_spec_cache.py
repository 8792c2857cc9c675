"""The process's cache of parsed workflow specs (kaon.model.spec_cache)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kaon.errors import DefinitionError
from kaon.model.codec import spec_hash, workflow_to_dict
from kaon.model.spec_cache import SpecCache
from kaon.model.specs import GraphSpec, TaskSpec, WorkflowSpec


def _spec(name: str) -> WorkflowSpec:
    step = TaskSpec(id="a", config={"file": "steps.py", "function": "f"})
    return WorkflowSpec(name=name, graph=GraphSpec(steps=(step,)))


def test_decoded_loads_and_decodes_once_per_hash() -> None:
    cache = SpecCache()
    spec = _spec("one")
    loads: list[str] = []

    def load() -> dict[str, Any]:
        loads.append("load")
        return workflow_to_dict(spec)

    first = cache.decoded(spec_hash(spec), load)
    again = cache.decoded(spec_hash(spec), load)
    assert first == spec
    assert again is first
    assert loads == ["load"]


def test_a_spec_put_is_served_without_loading() -> None:
    cache = SpecCache()
    spec = _spec("one")
    cache.put(spec_hash(spec), spec)

    def load() -> dict[str, Any]:
        raise AssertionError("a kept spec must not be loaded")

    assert cache.decoded(spec_hash(spec), load) is spec


def test_the_least_recently_used_spec_goes_first() -> None:
    cache = SpecCache(size=2)
    specs = {name: _spec(name) for name in ("a", "b", "c")}
    cache.put("a", specs["a"])
    cache.put("b", specs["b"])
    assert cache.get("a") is specs["a"]  # now "b" is the least recently used
    cache.put("c", specs["c"])
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is specs["a"] and cache.get("c") is specs["c"]


def test_a_definition_that_does_not_decode_raises_and_is_not_kept() -> None:
    cache = SpecCache()
    with pytest.raises(DefinitionError):
        cache.decoded("broken", lambda: {"graph": 42})
    assert cache.get("broken") is None
    assert len(cache) == 0


def test_threads_share_one_bounded_cache() -> None:
    cache = SpecCache(size=8)
    specs = [_spec(f"w{i}") for i in range(32)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(400):
                spec = specs[(i + offset) % len(specs)]
                digest = spec.name
                assert cache.decoded(digest, lambda s=spec: workflow_to_dict(s)) == spec
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 8

"""Memoization: deciding whether a step can reuse an earlier execution's outputs.

A cacheable step's **cache key** is the sha256 of its components:

* ``step_type`` -- how it runs;
* ``code`` -- the step type's fingerprint of the code it runs (for Python steps: the functions,
  classes and plain-data values it reads from the project; see
  :mod:`kaon.steptypes.fingerprint`). What it is made of (a short digest of each covered
  part, and what could not be covered) is recorded once per run and code digest, as a
  ``fingerprint`` event, so ``kaon explain`` can name the constant or function that changed
  without every cache entry carrying it;
* ``config`` -- the step type's configuration (for Python steps: the function's qualified
  name, not where its file lives);
* ``inputs.<name>`` -- each resolved input: a small value's canonical JSON (with where its
  tuples are, if any; in its own key order when a dict's keys are not sorted: a step
  iterating it computes from that order), an artifact's content hash (so the same data
  produced by another run or step hits the cache);
* ``version`` -- the step's ``cache_version``, bumped by hand to force a miss;
* ``group`` -- on a server, the owner group of the run's workflow (absent for none): groups
  never reuse, nor replace, each other's entries. The fingerprint does not cover everything
  a step reads (a client object, outside data), so another group's execution under the
  same key could carry other data, and a forced one would be what the group's next run
  reuses.

Run parameters count through the inputs that use them, so changing one parameter re-executes
exactly the steps it reaches. A run fact the step's code reads from ``kaon.context()``
(``params``, the foreach ``item`` and ``index``, the loop ``iteration``) is a component too
(``context.params``): the fingerprint finds which ones the code reads. A hit is only taken
when every blob of the earlier outputs is still in the artifact store; otherwise the step
executes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kaon.artifacts.base import ArtifactStore
from kaon.errors import ArtifactError
from kaon.model.values import (
    ArtifactRef,
    Literal,
    RefDict,
    RefList,
    ValueRef,
    artifact_refs,
    decode_outputs,
    tuple_paths,
)
from kaon.steptypes.base import CodeFingerprint
from kaon.store.base import CacheEntryRecord, StateStore

log = logging.getLogger(__name__)

Fingerprint = Callable[[str, Mapping[str, Any]], "str | CodeFingerprint"]


def default_fingerprint(step_type: str, config: Mapping[str, Any]) -> str | CodeFingerprint:
    """The registered step type's fingerprint of ``config``."""
    from kaon.steptypes.registry import get_step_type

    return get_step_type(step_type).fingerprint(config)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _keys_sorted(value: Any) -> bool:
    """Whether every dict in the JSON value ``value`` has its keys in sorted order (its
    canonical JSON then says all there is to say about it)."""
    kind = type(value)
    if kind is dict:
        keys = list(value)
        return keys == sorted(keys) and all(_keys_sorted(v) for v in value.values())
    if kind is list or kind is tuple:
        return all(_keys_sorted(v) for v in value)
    return True


def digest(ref: ValueRef) -> str:
    """A content digest of a value reference (no blob is read)."""
    if isinstance(ref, ArtifactRef):
        return f"sha256:{ref.hash}"
    if isinstance(ref, Literal):
        text = _canonical(ref.value)
        if not _keys_sorted(ref.value):  # a step iterating it sees this order
            text = "ordered:" + json.dumps(ref.value, separators=(",", ":"), default=str)
        tuples = tuple_paths(ref.value)
        if tuples:  # (1, 2) is not [1, 2] to the step that reads it
            text += "|tuples=" + _canonical(tuples)
    elif isinstance(ref, RefList):
        text = "[" + ",".join(digest(r) for r in ref.items) + "]"
    else:
        assert isinstance(ref, RefDict)
        keys = list(ref.items)
        ordered = "" if keys == sorted(keys) else "ordered:"  # as a literal's (see above)
        pairs = ref.items.items() if ordered else sorted(ref.items.items())
        text = ordered + "{" + ",".join(f"{k}={digest(r)}" for k, r in pairs) + "}"
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _code_components(code: str | CodeFingerprint, config_text: str) -> dict[str, Any]:
    config_digest = "sha256:" + hashlib.sha256(config_text.encode()).hexdigest()
    if isinstance(code, str):
        return {"code": code, "config": config_digest}
    return {"code": code.digest, "config": code.config or config_digest}


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A computed cache key and the components it was made of."""

    key: str
    components: dict[str, Any]


class Memoizer:
    """Computes cache keys and finds reusable executions."""

    def __init__(
        self, store: StateStore, artifacts: ArtifactStore, fingerprint: Fingerprint | None = None
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._fingerprint = fingerprint or default_fingerprint
        self._fingerprints: dict[str, str | CodeFingerprint] = {}
        self._details: dict[str, CodeFingerprint] = {}
        # config id -> (config, its code components, the run facts its code reads)
        self._configs: dict[int, tuple[Mapping[str, Any], dict[str, Any], tuple[str, ...]]] = {}
        # Keys whose entry was passed over because a blob of its outputs is gone, with the
        # execution it named (``run:path``): the miss says so (the step's new execution
        # then replaces that entry, so `kaon explain` could not find it afterwards).
        self.unavailable: dict[str, str] = {}

    @property
    def prepares(self) -> bool:
        """Whether :meth:`prepare` does anything (the fingerprint function batches)."""
        return hasattr(self._fingerprint, "prepare")

    def prepare(self, configs: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Tell the fingerprint function about configurations whose keys come soon, when it
        can do many at once (a server's sandboxed fingerprints: one child for a run's steps,
        not one each; see :mod:`kaon.service.fingerprint_sandbox`). Never raises."""
        prepare = getattr(self._fingerprint, "prepare", None)
        if prepare is None:
            return
        try:
            prepare(configs)
        except Exception:  # each key then asks for its own, and says why it failed
            log.warning("preparing code fingerprints failed", exc_info=True)

    def key(
        self,
        step_type: str,
        config: Mapping[str, Any],
        inputs: Mapping[str, ValueRef],
        version: str,
        group: str = "",
        facts: Callable[[], Mapping[str, ValueRef]] | None = None,
    ) -> CacheKey:
        """The cache key of one execution by a run of a workflow of owner group ``group``
        (empty: none). ``facts`` gives the run facts of the execution (its ``params``,
        foreach ``item`` and ``index``, loop ``iteration``): those its code reads from its
        context rather than from its inputs are components too (``context.params``).
        Raises whatever the fingerprint raises."""
        # Specs are immutable: a step's config is the same object for every foreach item.
        known = self._configs.get(id(config))
        if known is None or known[0] is not config:
            config_text = _canonical(config)
            code = self._fingerprints.get(f"{step_type}\0{config_text}")
            if code is None:
                code = self._fingerprint(step_type, config)
                self._fingerprints[f"{step_type}\0{config_text}"] = code
            reads: tuple[str, ...] = ()
            if isinstance(code, CodeFingerprint):
                self._details[code.digest] = code
                reads = code.context_reads
            known = (config, _code_components(code, config_text), reads)
            self._configs[id(config)] = known
        components: dict[str, Any] = {"step_type": step_type, **known[1], "version": version}
        if group:
            components["group"] = group
        for name in sorted(inputs):
            components[f"inputs.{name}"] = digest(inputs[name])
        if known[2] and facts is not None:
            read = facts()
            for name in known[2]:
                components[f"context.{name}"] = digest(read.get(name, Literal(None)))
        key = hashlib.sha256(_canonical(components).encode()).hexdigest()
        return CacheKey(key, components)

    def details(self, code: str) -> CodeFingerprint | None:
        """What the code digest ``code`` (a key's ``code`` component) is made of, if known."""
        return self._details.get(code)

    def lookup_many(self, keys: list[str]) -> dict[str, CacheEntryRecord]:
        """For each key with an earlier execution whose blobs are all still stored, it."""
        entries = self._store.get_cache_entries(keys)
        found: dict[str, CacheEntryRecord] = {}
        for k, e in entries.items():
            if self._available(e):
                found[k] = e
            else:
                self.unavailable[k] = f"{e.run_id}:{e.path}"
        return found

    def _available(self, entry: CacheEntryRecord) -> bool:
        try:
            refs = [a for r in decode_outputs(entry.outputs).values() for a in artifact_refs(r)]
            return all(self._artifacts.exists(ref) for ref in refs)
        except (ArtifactError, ValueError):
            return False

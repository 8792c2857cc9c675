"""Memoization in a run: probing the cache for queued tasks in bulk, reusing an earlier
execution's outputs, and recording the lineage of what a step produced."""

from __future__ import annotations

from typing import Any

from kaon.engine.core import RunCore, context_facts, frame_facts
from kaon.engine.memo import CacheKey
from kaon.engine.nodes import (
    Node,
)
from kaon.errors import KaonError
from kaon.model.breakpoints import BREAK_AFTER_CACHED
from kaon.model.cache_policy import CachePolicy
from kaon.model.specs import (
    TaskSpec,
)
from kaon.model.status import StepStatus
from kaon.model.values import (
    ValueRef,
    artifact_refs,
    decode_outputs,
)
from kaon.store.base import (
    ArtifactRecord,
    ArtifactUseRecord,
    CacheEntryRecord,
)

_S = StepStatus


class CachingSteps(RunCore):
    """Cache keys, lookups and reuse; lineage records."""

    _policy: tuple[dict[str, Any], CachePolicy] | None = None  # (labels read, their policy)

    def _cache_policy(self) -> CachePolicy:
        labels = self.record.labels
        if self._policy is None or self._policy[0] is not labels:
            self._policy = (labels, CachePolicy.from_labels(labels))
        return self._policy[1]

    def _skips_lookup(self, node: Node) -> bool:
        """Whether the run's cache policy makes this step execute without a lookup."""
        return self._cache_policy().skips_lookup(node.path, node.spec.id)

    def _cacheable(self, node: Node) -> bool:
        cache = node.spec.cache
        return node.frame.defaults.cache if cache is None else cache

    def _needs_probe(self, node: Node) -> bool:
        return node.probe is None and node.cache is None and self._cacheable(node)

    _prepared = False  # the run's cacheable configurations were handed to memo.prepare

    def _prepare_fingerprints(self) -> None:
        """Hand the fingerprint function every configuration whose key this turn or the run
        will need, at once (see :meth:`Memoizer.prepare`): at the first probe of the run, each
        cacheable task of its workflow; then the queued tasks (a subworkflow's, say)."""
        if not self.ctx.memo.prepares:
            return
        configs: dict[int, tuple[str, Any]] = {}
        if not self._prepared:
            self._prepared = True
            default = self.spec.defaults.cache
            for _path, step in self.spec.graph.walk():
                if isinstance(step, TaskSpec) and (
                    step.cache if step.cache is not None else default
                ):
                    configs[id(step.config)] = (step.step_type, step.config)
        for node in self.ready:
            spec = node.spec
            if isinstance(spec, TaskSpec) and self._needs_probe(node):
                configs[id(spec.config)] = (spec.step_type, spec.config)
        if configs:
            self.ctx.memo.prepare(configs.values())

    def _probe_cache(self, limit: int = 512) -> None:
        """Compute the cache keys of queued cacheable tasks and look them all up in one query
        (a window of foreach items costs one query, not one each)."""
        self._prepare_fingerprints()
        keyed: list[tuple[Node, CacheKey]] = []
        for node in self.ready:
            spec = node.spec
            if not isinstance(spec, TaskSpec) or not self._needs_probe(node):
                continue
            try:
                inputs = self.resolver.inputs(node)
            except KaonError:
                continue  # the attempt fails it, with this error, when it starts
            key = self._cache_key(node, spec, inputs)
            if key is None:
                node.probe = (None, None)
                continue
            node.inputs = inputs
            keyed.append((node, key))
            if len(keyed) >= limit:
                break
        looked = [key.key for node, key in keyed if not self._skips_lookup(node)]
        entries = self.ctx.memo.lookup_many(looked) if looked else {}
        for node, key in keyed:
            node.probe = (key, entries.get(key.key))

    def _probe(
        self, node: Node, spec: TaskSpec, inputs: dict[str, ValueRef]
    ) -> tuple[CacheKey | None, CacheEntryRecord | None]:
        key = self._cache_key(node, spec, inputs)
        if key is None or self._skips_lookup(node):
            return key, None
        return key, self.ctx.memo.lookup_many([key.key]).get(key.key)

    _announced: frozenset[str] = frozenset()  # code digests this run recorded the parts of

    def _cache_key(
        self, node: Node, spec: TaskSpec, inputs: dict[str, ValueRef]
    ) -> CacheKey | None:
        try:
            key = self.ctx.memo.key(
                spec.step_type,
                spec.config,
                inputs,
                spec.cache_version,
                self.tenant_group,
                facts=lambda: context_facts(node),
            )
        except Exception as exc:  # the code cannot be fingerprinted: execute, uncached
            self._event("cache", {"path": node.path, "error": f"{type(exc).__name__}: {exc}"})
            return None
        code = str(key.components["code"])
        if code not in self._announced:
            self._announced = self._announced | {code}
            details = self.ctx.memo.details(code)
            if details is not None and (details.parts or details.not_covered):
                data = {
                    "code": code,
                    "parts": details.parts,
                    "not_covered": list(details.not_covered),
                }
                self._event("fingerprint", data)
        return key

    def _reuse(self, node: Node, key: CacheKey, entry: CacheEntryRecord | None, now: float) -> bool:
        """Take an earlier execution's outputs if one matched; else remember the key."""
        data: dict[str, Any] = {"path": node.path, "key": key.key, "components": key.components}
        if entry is None:
            node.cache = key
            if self._skips_lookup(node):
                data["forced"] = True
            lost = self.ctx.memo.unavailable.pop(key.key, None)
            if lost is not None:
                data["blobs_missing"] = lost
            self._event("cache", {**data, "hit": False}, node.row_id)
            return False
        node.outputs = decode_outputs(entry.outputs)
        source = f"{entry.run_id}:{entry.path}"
        held = self._holds_after(node)
        if held:
            node.reason = BREAK_AFTER_CACHED
        self._set(
            node,
            _S.PAUSED if held else _S.CACHED,
            note={"cached_from": source, **({"breakpoint": "after"} if held else {})},
            outputs=entry.outputs,
            cache_key=key.key,
            cached_from=source,
            started_at=now,
            ended_at=now,
            **({"reason": BREAK_AFTER_CACHED} if held else {}),
        )
        if held:
            self._hold(node)
        else:
            self._terminal(node)
        return True

    def _record_uses(
        self, node: Node, attempt: int, outputs: dict[str, ValueRef], at: float
    ) -> None:
        """Record that the attempt, which succeeded, read its input blobs (``kaon lineage``'s
        "used by"), with the blobs it stored: one row per distinct blob read."""
        if not node.input_hashes:
            return
        assert node.row_id is not None
        stored = [[name, blob.hash] for name, ref in outputs.items() for blob in artifact_refs(ref)]
        for source in dict.fromkeys(node.input_hashes):
            self.ctx.batch.artifact_uses.append(
                ArtifactUseRecord(
                    hash=source,
                    run_id=self.id,
                    step_run_id=node.row_id,
                    path=node.path,
                    attempt=attempt,
                    outputs=stored,
                    created_at=at,
                )
            )

    def _record_lineage(
        self, node: Node, attempt: int, outputs: dict[str, ValueRef], at: float
    ) -> None:
        assert node.row_id is not None
        _, index, _ = frame_facts(node.frame)
        for name, ref in outputs.items():
            for blob in artifact_refs(ref):
                self.ctx.batch.artifacts.append(
                    ArtifactRecord(
                        hash=blob.hash,
                        run_id=self.id,
                        step_run_id=node.row_id,
                        path=node.path,
                        output=name,
                        serializer=blob.serializer,
                        size=blob.size,
                        attempt=attempt,
                        type_name=blob.type_name,
                        item_index=index,
                        inputs=list(node.input_hashes),
                        created_at=at,
                    )
                )

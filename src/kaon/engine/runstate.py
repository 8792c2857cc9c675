"""Advancing one run: readiness, containers, completion, failure modes, abort and skip.

:class:`RunState` owns the in-memory frames of one run and decides every transition. It never
talks to the executor or commits anything itself: each decision is recorded in the engine's
current :class:`~kaon.store.base.WriteBatch`, and attempts to start or cancel go to the
engine's outbox, which the engine acts on only after the batch is committed.

Work is proportional to what changed: finishing a node decrements its successors' counters and
queues the ones that reach zero; a frame is checked for completion only when its last node
finishes.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kaon.artifacts.base import ArtifactStore
from kaon.engine.memo import CacheKey, Fingerprint, Memoizer
from kaon.engine.nodes import (
    USER_SKIP,
    ForeachState,
    Frame,
    LoopState,
    Node,
    child_frames,
    trigger_decision,
    walk_frames,
)
from kaon.engine.resolve import Resolver, node_value
from kaon.errors import InvalidActionError, KaonError
from kaon.executors.base import TaskRequest
from kaon.model.events import AttemptKey, ErrorInfo
from kaon.model.graph import compile_graph
from kaon.model.params import bind_params
from kaon.model.specs import (
    FailureMode,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    StepDefaults,
    SubworkflowSpec,
    TaskSpec,
    WaitSpec,
    WorkflowSpec,
)
from kaon.model.status import RunStatus, StepStatus, check_step_transition
from kaon.model.values import (
    RETURN,
    Literal,
    ValueRef,
    artifact_refs,
    collect,
    decode_outputs,
    encode_outputs,
    outputs_value,
)
from kaon.store.base import (
    ArtifactRecord,
    AttemptRecord,
    CacheEntryRecord,
    EventRecord,
    RunRecord,
    SignalRecord,
    StateStore,
    StepRunRecord,
    WriteBatch,
)

DEFAULT_WINDOW = 1024  # foreach items expanded at once when no concurrency limit is set
_S = StepStatus


@dataclass
class Outbox:
    """What the engine must do once the current batch is committed."""

    submit: list[TaskRequest] = field(default_factory=list)
    cancel: list[AttemptKey] = field(default_factory=list)


@dataclass(order=True)
class Timer:
    """A wake-up: a retry to start, an attempt to time out, a run deadline."""

    at: float
    seq: int
    kind: str = field(compare=False)
    run_id: str = field(compare=False)
    node: Node | None = field(compare=False, default=None)
    key: AttemptKey | None = field(compare=False, default=None)


class EngineContext:
    """What a run state needs from its engine: the store, artifacts, clock, batch and timers."""

    def __init__(
        self,
        store: StateStore,
        artifacts: ArtifactStore,
        clock: Callable[[], float] = time.time,
        fingerprint: Fingerprint | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.clock = clock
        self.memo = Memoizer(store, artifacts, fingerprint)
        self.batch = WriteBatch()
        self.outbox = Outbox()
        self.timers: list[Timer] = []
        self._seq = 0

    def add_timer(
        self,
        at: float,
        kind: str,
        run_id: str,
        node: Node | None = None,
        key: AttemptKey | None = None,
    ) -> None:
        """Wake the engine at ``at`` for ``kind``."""
        self._seq += 1
        heapq.heappush(self.timers, Timer(at, self._seq, kind, run_id, node, key))


def error_info(exc: BaseException, *, platform: bool = False) -> ErrorInfo:
    """An ErrorInfo for an error raised while the engine prepared a step."""
    return ErrorInfo(type(exc).__name__, str(exc), platform=platform)


class RunState:
    """The engine's working state for one run it holds the lease on."""

    def __init__(self, record: RunRecord, spec: WorkflowSpec, ctx: EngineContext) -> None:
        self.id = record.id
        self.record = record
        self.spec = spec
        self.ctx = ctx
        self.status = record.status
        self.resolver = Resolver(ctx.artifacts, {"id": record.id, "workflow": spec.name})
        self.next_row_id = ctx.store.max_step_run_id(record.id) + 1
        self.ready: deque[Node] = deque()
        self.work: deque[Node] = deque()
        self.frames_done: deque[Frame] = deque()
        self.inflight: dict[AttemptKey, Node] = {}
        self.draining = False
        self.finished = False
        self.waiting: list[Node] = []  # wait steps, woken by signals
        self._events_batch: WriteBatch | None = None  # the batch _step_events belong to
        self._step_events: dict[str, EventRecord] = {}
        self.signal_cursor = 0
        self.error: str | None = None
        self.root = self._new_frame(spec.graph, "", dict(record.params), spec.defaults)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Mark the run running, rebuild state from the store, and queue what is ready."""
        now = self.ctx.clock()
        if self.status is not RunStatus.RUNNING:
            self.status = RunStatus.RUNNING
            self.ctx.batch.update_run(self.id, status=RunStatus.RUNNING, started_at=now)
            self._event("run", {"status": RunStatus.RUNNING.value})
        self._restore_frame(self.root, self.ctx.store.step_runs(self.id))
        self._seed(self.root)
        if self.spec.timeout_s is not None:
            started = self.record.started_at or now
            self.ctx.add_timer(started + self.spec.timeout_s, "run_timeout", self.id)

    def process(self) -> None:
        """Run the readiness worklist and frame completions until nothing is left."""
        while (self.work or self.frames_done) and not self.finished:
            while self.work and not self.finished:
                self._check(self.work.popleft())
            if self.frames_done and not self.finished:
                self._frame_done(self.frames_done.popleft())
        if self.draining and not self.inflight and not self.finished:
            self.abort(RunStatus.FAILED, self.error or "a step failed")

    def next_request(self, artifact_url: str) -> TaskRequest | None:
        """Start the next queued task attempt, if any: its rows go in the batch."""
        while self.ready and not self.finished and not self.draining:
            if self._needs_probe(self.ready[0]):
                self._probe_cache()
            node = self.ready.popleft()
            node.queued = False
            if node.status not in (_S.PENDING, _S.QUEUED, _S.RETRYING):
                continue
            request = self._start_attempt(node, artifact_url)
            if request is not None:
                return request
        return None

    # -- executor events ---------------------------------------------------------------------

    def attempt_started(self, key: AttemptKey, at: float, worker: str) -> None:
        """Record where an attempt runs."""
        if key in self.inflight:
            self.ctx.batch.update_attempt(key, started_at=at, worker=worker)

    def attempt_succeeded(self, key: AttemptKey, at: float, outputs: dict[str, ValueRef]) -> None:
        """An attempt finished: record its outputs and move on."""
        node = self.inflight.pop(key, None)
        if node is None:
            return
        node.running = None
        self.ctx.batch.update_attempt(key, status="succeeded", ended_at=at)
        node.outputs = outputs
        encoded = encode_outputs(outputs)
        self._set(node, _S.SUCCEEDED, outputs=encoded, ended_at=at, error=None)
        self._record_lineage(node, key[2], outputs, at)
        if node.cache is not None:
            self.ctx.batch.cache_entries.append(
                CacheEntryRecord(
                    key=node.cache.key,
                    workflow=self.spec.name,
                    step_id=node.spec.id,
                    path=node.path,
                    run_id=self.id,
                    step_run_id=key[1],
                    outputs=encoded,
                    components=node.cache.components,
                    created_at=at,
                )
            )
        self._terminal(node)

    def attempt_failed(self, key: AttemptKey, at: float, error: ErrorInfo) -> None:
        """An attempt failed: retry it by policy, or fail the step."""
        node = self.inflight.pop(key, None)
        if node is None:
            return
        node.running = None
        error_data = _error_dict(error)
        self.ctx.batch.update_attempt(key, status="failed", ended_at=at, error=error_data)
        policy = node.retry
        if error.platform:
            node.platform_attempts += 1
            again, delay = node.platform_attempts <= policy.platform_attempts, 0.0
        else:
            node.attempts += 1
            again = node.attempts < policy.max_attempts and policy.retries_error(error.error_type)
            delay = policy.delay_for(node.attempts)
        counts: dict[str, Any] = {
            "attempts": node.attempts,
            "platform_attempts": node.platform_attempts,
        }
        if not again or self.draining:
            self._fail(node, error, **counts)
        elif delay > 0:
            retry_at = self.ctx.clock() + delay
            self._set(node, _S.RETRYING, error=error_data, next_attempt_at=retry_at, **counts)
            self.ctx.add_timer(retry_at, "retry", self.id, node)
        else:
            self._set(node, _S.QUEUED, error=error_data, **counts)
            self._enqueue(node)

    def timer_fired(self, timer: Timer) -> None:
        """Handle a due timer of this run."""
        node = timer.node
        if self.finished:
            return
        if timer.kind == "run_timeout":
            self.abort(RunStatus.FAILED, f"run timed out after {self.spec.timeout_s:g}s")
        elif timer.kind == "retry" and node is not None and node.status is _S.RETRYING:
            self._enqueue(node)
        elif timer.kind == "wait_timeout" and node is not None and node.status is _S.WAITING:
            self.waiting.remove(node)
            limit = node.timeout_s or 0.0
            error = ErrorInfo("Timeout", f"no matching signal within {limit:g}s", timeout=True)
            self._fail(node, error)
        elif timer.kind == "timeout" and node is not None and node.running == timer.key:
            assert timer.key is not None
            self.ctx.outbox.cancel.append(timer.key)
            limit = node.timeout_s or 0.0
            error = ErrorInfo("Timeout", f"attempt exceeded its {limit:g}s timeout", timeout=True)
            self.attempt_failed(timer.key, self.ctx.clock(), error)

    def deliver_signals(self, signals: list[SignalRecord]) -> None:
        """Wake the wait steps that a newly received signal matches."""
        for signal in signals:
            self.signal_cursor = max(self.signal_cursor, signal.id or 0)
            for node in list(self.waiting):
                spec = node.spec
                assert isinstance(spec, WaitSpec)
                if node.status is not _S.WAITING or spec.signal != signal.name:
                    continue
                if spec.match:
                    where = spec.location.with_field("match")
                    extra = {"signal": signal.params}
                    try:
                        if not self.resolver.condition(node.frame, spec.match, where, extra):
                            continue
                    except KaonError as exc:
                        self.waiting.remove(node)
                        self._fail(node, error_info(exc))
                        continue
                self.waiting.remove(node)
                node.outputs = {RETURN: Literal(dict(signal.params))}
                self._set(
                    node,
                    _S.SUCCEEDED,
                    outputs=encode_outputs(node.outputs),
                    ended_at=self.ctx.clock(),
                    reason=f"signal {signal.name} #{signal.id}",
                )
                self._terminal(node)

    # -- user actions ------------------------------------------------------------------------

    def abort(self, status: RunStatus, reason: str) -> None:
        """Stop everything: cancel attempts in flight and mark unfinished steps cancelled."""
        if self.finished:
            return
        now = self.ctx.clock()
        for frame in list(walk_frames(self.root)):
            for node in frame.nodes.values():
                self._cancel_node(node, reason, now)
            if _has_own_row(frame) and not frame.finished:
                self._frame_row(frame, _S.CANCELLED, ended_at=now, reason=reason)
        self.ready.clear()
        self.work.clear()
        self.frames_done.clear()
        self._finish(status, reason)

    def skip(self, path: str, output: Any = None, has_output: bool = False) -> None:
        """Skip the active step at ``path``; downstream sees ``output`` (or nothing)."""
        node = self._active_node(path)
        node.user_output = Literal(output) if has_output else None
        node.reason = USER_SKIP
        if node.status is _S.PENDING and not node.queued:
            return  # skipped when its dependencies finish
        self._stop_inside(node, USER_SKIP, self.ctx.clock())
        self._skip_now(node)

    def cancel_step(self, path: str, by: str = "") -> None:
        """Cancel the active step at ``path``: steps after it are skipped as after a failure."""
        node = self._active_node(path)
        now = self.ctx.clock()
        reason = f"cancelled by {by or 'a user'}"
        self._stop_inside(node, reason, now)
        node.queued = False
        self._set(node, _S.CANCELLED, reason=reason, ended_at=now)
        self._event("action", {"action": "cancel", "path": node.path, "by": by})
        self._terminal(node)

    def _active_node(self, path: str) -> Node:
        node = next((n for n in self.root.walk_nodes() if n.path == path), None)
        if node is None or node.done:
            raise InvalidActionError(f"step {path!r} is not waiting or running in run {self.id}")
        return node

    def _stop_inside(self, node: Node, reason: str, now: float) -> None:
        """Stop a node's attempt and everything running inside it (a container's frames)."""
        for child in list(child_frames(node)):
            for frame in list(walk_frames(child)):
                for inner in frame.nodes.values():
                    self._cancel_node(inner, reason, now)
                if _has_own_row(frame) and not frame.finished:
                    self._frame_row(frame, _S.CANCELLED, ended_at=now, reason=reason)
        self._drop_attempt(node, now)
        if node in self.waiting:
            self.waiting.remove(node)
        node.foreach = node.loop = None
        node.sub = None

    # -- readiness ---------------------------------------------------------------------------

    def _seed(self, frame: Frame) -> None:
        for node in frame.nodes.values():
            if node.status is _S.PENDING and node.deps_left == 0:
                self.work.append(node)
        if frame.remaining == 0:
            self.frames_done.append(frame)

    def _check(self, node: Node) -> None:
        if node.status is not _S.PENDING or node.queued or node.deps_left > 0 or self.draining:
            return
        if node.reason == USER_SKIP:
            self._skip_now(node)
            return
        frame = node.frame
        deps = [frame.nodes[d] for d in frame.compiled.deps[node.spec.id]]
        may_run, why = trigger_decision(node.spec.trigger_rule, deps)
        if not may_run:
            self._skip(node, why)
            return
        if node.spec.when:
            where = node.spec.location.with_field("when")
            try:
                if not self.resolver.condition(frame, node.spec.when, where):
                    self._skip(node, f"condition is false: {node.spec.when}")
                    return
            except KaonError as exc:
                self._fail(node, error_info(exc))
                return
        self._launch(node)

    def _launch(self, node: Node) -> None:
        spec = node.spec
        try:
            if isinstance(spec, TaskSpec):
                self._enqueue(node)
            elif isinstance(spec, ForeachSpec):
                self._start_foreach(node, spec)
            elif isinstance(spec, LoopSpec):
                self._start_loop(node, spec)
            elif isinstance(spec, SubworkflowSpec):
                self._start_sub(node, spec)
            elif isinstance(spec, WaitSpec):
                self._start_wait(node, spec)
            else:
                raise KaonError(f"unknown step kind {spec.kind!r}")
        except KaonError as exc:
            self._fail(node, error_info(exc))

    def _enqueue(self, node: Node) -> None:
        if not node.queued:
            node.queued = True
            self.ready.append(node)

    def _skip(self, node: Node, reason: str) -> None:
        self._set(node, _S.SKIPPED, reason=reason, ended_at=self.ctx.clock())
        self._terminal(node)

    def _skip_now(self, node: Node) -> None:
        outputs = {RETURN: node.user_output} if node.user_output is not None else {}
        node.outputs = outputs
        node.queued = False
        self._set(
            node,
            _S.SKIPPED,
            reason=USER_SKIP,
            outputs=encode_outputs(outputs),
            ended_at=self.ctx.clock(),
        )
        self._event("action", {"action": "skip", "path": node.path})
        self._terminal(node)

    # -- attempts ----------------------------------------------------------------------------

    def _start_attempt(self, node: Node, artifact_url: str) -> TaskRequest | None:
        spec = node.spec
        assert isinstance(spec, TaskSpec)
        try:
            inputs, node.inputs = node.inputs or self.resolver.inputs(node), None
        except KaonError as exc:
            self._fail(node, error_info(exc))
            return None
        now = self.ctx.clock()
        node.input_hashes = [a.hash for ref in inputs.values() for a in artifact_refs(ref)]
        if node.cache is None and self._cacheable(node):
            probe, node.probe = node.probe, None
            cache_key, entry = probe if probe is not None else self._probe(node, spec, inputs)
            if cache_key is not None and self._reuse(node, cache_key, entry, now):
                return None
        number = node.next_number
        node.next_number += 1
        first = node.started_at is None
        node.started_at = node.started_at or now
        changes: dict[str, Any] = {"next_attempt_at": None}
        if node.cache is not None:
            changes["cache_key"] = node.cache.key
        if first:
            changes["started_at"] = now
        self._set(node, _S.RUNNING, **changes)
        assert node.row_id is not None
        key: AttemptKey = (self.id, node.row_id, number)
        self.ctx.batch.insert_attempt(
            AttemptRecord(self.id, node.row_id, number, "running", started_at=now)
        )
        node.running = key
        self.inflight[key] = node
        timeout = node.timeout_s
        if timeout is not None:
            self.ctx.add_timer(now + timeout, "timeout", self.id, node, key)
        item, index, iteration = _frame_facts(node.frame)
        return TaskRequest(
            key=key,
            step_path=node.path,
            step_type=spec.step_type,
            config=spec.config,
            inputs=inputs,
            params=node.frame.params,
            artifact_url=artifact_url,
            workflow=self.spec.name,
            item=item,
            index=index,
            iteration=iteration,
            timeout_s=timeout,
        )

    def _cacheable(self, node: Node) -> bool:
        cache = node.spec.cache
        return node.frame.defaults.cache if cache is None else cache

    def _needs_probe(self, node: Node) -> bool:
        return node.probe is None and node.cache is None and self._cacheable(node)

    def _probe_cache(self, limit: int = 512) -> None:
        """Compute the cache keys of queued cacheable tasks and look them all up in one query
        (a window of foreach items costs one query, not one each)."""
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
        entries = self.ctx.memo.lookup_many([key.key for _, key in keyed])
        for node, key in keyed:
            node.probe = (key, entries.get(key.key))

    def _probe(
        self, node: Node, spec: TaskSpec, inputs: dict[str, ValueRef]
    ) -> tuple[CacheKey | None, CacheEntryRecord | None]:
        key = self._cache_key(node, spec, inputs)
        if key is None:
            return None, None
        return key, self.ctx.memo.lookup_many([key.key]).get(key.key)

    def _cache_key(
        self, node: Node, spec: TaskSpec, inputs: dict[str, ValueRef]
    ) -> CacheKey | None:
        try:
            return self.ctx.memo.key(spec.step_type, spec.config, inputs, spec.cache_version)
        except Exception as exc:  # the code cannot be fingerprinted: execute, uncached
            self._event("cache", {"path": node.path, "error": f"{type(exc).__name__}: {exc}"})
            return None

    def _reuse(self, node: Node, key: CacheKey, entry: CacheEntryRecord | None, now: float) -> bool:
        """Take an earlier execution's outputs if one matched; else remember the key."""
        data: dict[str, Any] = {"path": node.path, "key": key.key, "components": key.components}
        if entry is None:
            node.cache = key
            self._event("cache", {**data, "hit": False}, node.row_id)
            return False
        node.outputs = decode_outputs(entry.outputs)
        source = f"{entry.run_id}:{entry.path}"
        self._set(
            node,
            _S.CACHED,
            note={"cached_from": source},
            outputs=entry.outputs,
            cache_key=key.key,
            cached_from=source,
            started_at=now,
            ended_at=now,
        )
        self._terminal(node)
        return True

    def _record_lineage(
        self, node: Node, attempt: int, outputs: dict[str, ValueRef], at: float
    ) -> None:
        assert node.row_id is not None
        _, index, _ = _frame_facts(node.frame)
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

    def _drop_attempt(self, node: Node, now: float) -> None:
        if node.running is not None:
            key = node.running
            self.inflight.pop(key, None)
            self.ctx.outbox.cancel.append(key)
            self.ctx.batch.update_attempt(key, status="cancelled", ended_at=now)
            node.running = None

    def _cancel_node(self, node: Node, reason: str, now: float) -> None:
        self._drop_attempt(node, now)
        if node in self.waiting:
            self.waiting.remove(node)
        if not node.done:
            node.queued = False
            self._set(node, _S.CANCELLED, reason=reason, ended_at=now)

    # -- completion --------------------------------------------------------------------------

    def _fail(self, node: Node, error: ErrorInfo, **changes: Any) -> None:
        self._set(node, _S.FAILED, error=_error_dict(error), ended_at=self.ctx.clock(), **changes)
        self._terminal(node)

    def _terminal(self, node: Node) -> None:
        if self.finished:
            return
        if node.status is _S.FAILED and not node.failure_ignored:
            message = f"step {node.path} failed"
            if node.on_failure is FailureMode.FAIL_FAST:
                self.abort(RunStatus.FAILED, message)
                return
            self.draining = True
            self.error = self.error or message
        frame = node.frame
        frame.remaining -= 1
        for succ in frame.compiled.successors[node.spec.id]:
            nxt = frame.nodes[succ]
            nxt.deps_left -= 1
            if nxt.deps_left == 0:
                self.work.append(nxt)
        if frame.remaining == 0:
            self.frames_done.append(frame)

    def _frame_done(self, frame: Frame) -> None:
        if frame.finished:
            return
        frame.finished = True
        failed = any(
            n.status in (_S.FAILED, _S.CANCELLED) and not n.failure_ignored
            for n in frame.nodes.values()
        )
        output = self._frame_output(frame)
        container = frame.container
        if container is None:
            if failed:
                self._finish(RunStatus.FAILED, self.error or "a step failed")
            else:
                self._finish(RunStatus.SUCCEEDED, None)
        elif container.foreach is not None:
            self._item_done(container, frame, failed, output)
        elif container.loop is not None:
            self._iteration_done(container, container.loop, frame, failed, output)
        else:
            self._complete_container(container, failed, output)

    @staticmethod
    def _frame_output(frame: Frame) -> ValueRef:
        ids = frame.compiled.output_ids
        if len(ids) == 1:
            return node_value(frame.nodes[ids[0]])
        return outputs_value({i: node_value(frame.nodes[i]) for i in ids})

    def _complete_container(
        self, node: Node, failed: bool, output: ValueRef, why: str = ""
    ) -> None:
        now = self.ctx.clock()
        node.foreach = None
        node.loop = None
        node.sub = None
        if failed:
            error = ErrorInfo("ChildFailed", why or f"a step inside {node.path} failed")
            self._fail(node, error)
            return
        node.outputs = {RETURN: output}
        self._set(node, _S.SUCCEEDED, outputs=encode_outputs(node.outputs), ended_at=now)
        self._terminal(node)

    def _finish(self, status: RunStatus, error: str | None) -> None:
        self.finished = True
        self.status = status
        now = self.ctx.clock()
        self.ctx.batch.update_run(self.id, status=status, ended_at=now, error=error)
        self._event("run", {"status": status.value, "error": error})

    # -- foreach -----------------------------------------------------------------------------

    def _start_foreach(self, node: Node, spec: ForeachSpec) -> None:
        where = spec.location.with_field("foreach")
        items = self.resolver.value(node.frame, spec.items, where)
        if not isinstance(items, list):
            raise ForeachItemsError(
                f"foreach {node.path}: items must be a list, got {type(items).__name__}: "
                f"{items!r:.80}"
            )
        existing = self._children_rows(node)
        if node.status is not _S.RUNNING:
            self._set(node, _S.RUNNING, started_at=self.ctx.clock())
        state = ForeachState(spec, items, spec.concurrency or DEFAULT_WINDOW)
        for row in existing:
            if row.index is None:
                continue
            if row.status in (_S.SUCCEEDED, _S.CACHED):
                outputs = decode_outputs(row.outputs)
                state.results[row.index] = outputs.get(RETURN, Literal(None))
            else:
                state.restore[row.index] = row
        node.foreach = state
        self._advance_foreach(node, state)

    def _advance_foreach(self, node: Node, state: ForeachState) -> None:
        while (
            not self.draining
            and not self.finished
            and len(state.active) < state.limit
            and not state.exhausted
        ):
            index = state.next_index
            state.next_index += 1
            if index not in state.results:
                self._open_item(node, state, index)
        if state.exhausted and not state.active and not self.finished and not self.draining:
            refs = [state.results.get(i, Literal(None)) for i in range(len(state.items))]
            failed = state.failed > 0
            why = f"{state.failed} of {len(state.items)} items of {node.path} failed"
            self._complete_container(node, failed, collect(refs), why)

    def _open_item(self, node: Node, state: ForeachState, index: int) -> None:
        spec = state.spec
        item = state.items[index]
        frame = self._new_frame(
            spec.body,
            f"{node.path}[{index}].",
            node.frame.params,
            node.frame.defaults,
            container=node,
            scope=node.frame,
            bindings={spec.item_name: item, "index": index},
            index=index,
        )
        state.active[index] = frame
        self._open_frame_row(frame, state.restore.pop(index, None), kind="item", item=item)

    def _item_done(self, node: Node, frame: Frame, failed: bool, output: ValueRef) -> None:
        state = node.foreach
        assert state is not None and frame.index is not None
        state.active.pop(frame.index, None)
        state.results[frame.index] = output
        if failed:
            state.failed += 1
        self._close_frame_row(frame, failed, output)
        self._advance_foreach(node, state)

    # -- loop --------------------------------------------------------------------------------

    def _start_loop(self, node: Node, spec: LoopSpec) -> None:
        existing = self._children_rows(node)
        if node.status is not _S.RUNNING:
            self._set(node, _S.RUNNING, started_at=self.ctx.clock())
        state = LoopState(spec)
        node.loop = state
        rows = sorted((r for r in existing if r.index is not None), key=lambda r: r.index or 0)
        state.rows = {r.index: r for r in rows if r.index is not None}
        # Resume at the first iteration that did not succeed (a restart resets the ones to
        # redo), or re-decide after the last one.
        resume = next((r for r in rows if r.status is not _S.SUCCEEDED), rows[-1] if rows else None)
        if resume is not None and resume.index is not None:
            state.iteration = resume.index
        self._open_iteration(node, state, state.rows.pop(state.iteration, None))

    def _open_iteration(self, node: Node, state: LoopState, row: StepRunRecord | None) -> None:
        frame = self._new_frame(
            state.spec.body,
            f"{node.path}[{state.iteration}].",
            node.frame.params,
            node.frame.defaults,
            container=node,
            scope=node.frame,
            bindings={"iteration": state.iteration},
            index=state.iteration,
        )
        state.frame = frame
        self._open_frame_row(frame, row, kind="iteration", item=None)

    def _iteration_done(
        self, node: Node, state: LoopState, frame: Frame, failed: bool, output: ValueRef
    ) -> None:
        self._close_frame_row(frame, failed, output)
        state.frame = None
        if failed:
            self._complete_container(node, True, output)
            return
        spec = state.spec
        try:
            stop = self.resolver.condition(frame, spec.until, spec.location.with_field("until"))
        except KaonError as exc:
            self._fail(node, error_info(exc))
            return
        if stop:
            self._complete_container(node, False, output)
        elif state.iteration + 1 >= spec.max_iterations:
            why = f"loop {node.path} reached {spec.max_iterations} iterations"
            self._complete_container(node, spec.fail_on_exhausted, output, why)
        elif not self.draining:
            state.iteration += 1
            self._open_iteration(node, state, state.rows.pop(state.iteration, None))

    # -- wait ---------------------------------------------------------------------------------

    def _start_wait(self, node: Node, spec: WaitSpec) -> None:
        if node.status is not _S.WAITING:
            self._set(node, _S.WAITING, started_at=self.ctx.clock())
        self.waiting.append(node)
        if node.timeout_s is not None:
            started = node.started_at or self.ctx.clock()
            self.ctx.add_timer(started + node.timeout_s, "wait_timeout", self.id, node)

    # -- subworkflow -------------------------------------------------------------------------

    def _start_sub(self, node: Node, spec: SubworkflowSpec) -> None:
        sub = spec.spec
        if sub is None:
            raise KaonError(f"subworkflow {spec.workflow!r} of {node.path} was not resolved")
        values = {
            name: self.resolver.value(
                node.frame, source, spec.location.with_field(f"inputs.{name}")
            )
            for name, source in spec.inputs.items()
        }
        params = bind_params(sub, values)
        existing = self._children_rows(node)
        if node.status is not _S.RUNNING:
            self._set(node, _S.RUNNING, started_at=self.ctx.clock())
        frame = self._new_frame(
            sub.graph, f"{node.path}.", params, sub.defaults, container=node, scope=None
        )
        frame.row_id = node.row_id
        node.sub = frame
        self._restore_frame(frame, existing)
        self._seed(frame)

    # -- frames and rows ---------------------------------------------------------------------

    def _new_frame(
        self,
        graph: GraphSpec,
        prefix: str,
        params: dict[str, Any],
        defaults: StepDefaults,
        *,
        container: Node | None = None,
        scope: Frame | None = None,
        bindings: dict[str, Any] | None = None,
        index: int | None = None,
    ) -> Frame:
        compiled = compile_graph(graph)
        frame = Frame(
            graph=graph,
            compiled=compiled,
            prefix=prefix,
            params=params,
            defaults=defaults,
            container=container,
            scope=scope,
            bindings=bindings or {},
            index=index,
        )
        for step in graph.steps:
            frame.nodes[step.id] = Node(step, frame, deps_left=len(compiled.deps[step.id]))
        frame.remaining = len(frame.nodes)
        return frame

    def _open_frame_row(
        self, frame: Frame, row: StepRunRecord | None, *, kind: str, item: Any
    ) -> None:
        container = frame.container
        assert container is not None and container.row_id is not None
        now = self.ctx.clock()
        if row is None:
            frame.row_id = self._alloc()
            self.ctx.batch.insert_step_run(
                StepRunRecord(
                    run_id=self.id,
                    id=frame.row_id,
                    path=frame.prefix[:-1],
                    step_id=container.spec.id,
                    kind=kind,
                    status=_S.RUNNING,
                    parent_id=container.row_id,
                    index=frame.index,
                    item=item,
                    created_at=now,
                    started_at=now,
                )
            )
            self._step_event(frame.prefix[:-1], _S.RUNNING, frame.row_id)
        else:
            frame.row_id = row.id
            if row.status is not _S.RUNNING:
                self.ctx.batch.update_step_run(self.id, row.id, status=_S.RUNNING, ended_at=None)
            self._restore_frame(frame, self.ctx.store.step_runs(self.id, parent_id=row.id))
        self._seed(frame)

    def _close_frame_row(self, frame: Frame, failed: bool, output: ValueRef) -> None:
        status = _S.FAILED if failed else _S.SUCCEEDED
        outputs = encode_outputs({RETURN: output})
        self._frame_row(frame, status, outputs=outputs, ended_at=self.ctx.clock())

    def _frame_row(self, frame: Frame, status: StepStatus, **changes: Any) -> None:
        assert frame.row_id is not None
        self.ctx.batch.update_step_run(self.id, frame.row_id, status=status, **changes)
        self._step_event(frame.prefix[:-1], status, frame.row_id)

    def _children_rows(self, node: Node) -> list[StepRunRecord]:
        if node.row_id is None:
            return []
        return self.ctx.store.step_runs(self.id, parent_id=node.row_id)

    def _restore_frame(self, frame: Frame, rows: list[StepRunRecord]) -> None:
        """Rebuild a frame's nodes from their rows (resume, restart, or a fresh run: none)."""
        if not rows:
            return
        by_step = {row.step_id: row for row in rows}
        restored: list[tuple[Node, StepRunRecord]] = []
        for node in frame.nodes.values():
            row = by_step.get(node.spec.id)
            if row is None:
                continue
            node.row_id = row.id
            node.status = row.status
            node.reason = row.reason
            node.attempts = row.attempts
            node.platform_attempts = row.platform_attempts
            node.started_at = row.started_at
            node.outputs = decode_outputs(row.outputs) if row.outputs is not None else None
            restored.append((node, row))
        for node in frame.nodes.values():
            if node.done:
                frame.remaining -= 1
                for succ in frame.compiled.successors[node.spec.id]:
                    frame.nodes[succ].deps_left -= 1
        for node, row in restored:
            if not node.done:
                self._resume_node(node, row)

    def _resume_node(self, node: Node, row: StepRunRecord) -> None:
        if not isinstance(node.spec, TaskSpec):
            if node.status in (_S.RUNNING, _S.WAITING):
                self._launch(node)
            return
        attempts = self.ctx.store.attempts(self.id, row.id)
        node.next_number = max((a.number for a in attempts), default=0) + 1
        now = self.ctx.clock()
        for attempt in attempts:
            if attempt.status == "running":
                lost = ErrorInfo("EngineLost", "the engine stopped while this attempt ran")
                key = (self.id, row.id, attempt.number)
                self.ctx.batch.update_attempt(
                    key, status="lost", ended_at=now, error=_error_dict(lost)
                )
        if node.status in (_S.RUNNING, _S.QUEUED):
            node.platform_attempts += 1
            if node.platform_attempts > node.retry.platform_attempts:
                error = ErrorInfo(
                    "EngineLost",
                    "the engine stopped while the step ran, and the platform retry budget "
                    f"({node.retry.platform_attempts}) is spent",
                    platform=True,
                )
                self._fail(node, error, platform_attempts=node.platform_attempts)
                return
            if node.status is _S.RUNNING:
                self._set(node, _S.QUEUED, platform_attempts=node.platform_attempts)
            self._enqueue(node)
        elif node.status is _S.RETRYING:
            self.ctx.add_timer(row.next_attempt_at or now, "retry", self.id, node)

    def _alloc(self) -> int:
        row_id = self.next_row_id
        self.next_row_id += 1
        return row_id

    def _set(
        self,
        node: Node,
        status: StepStatus,
        note: dict[str, Any] | None = None,
        **changes: Any,
    ) -> None:
        """Move a node to ``status``: its row (created on first change) and a step event."""
        check_step_transition(node.status, status, node.path)
        node.status = status
        batch = self.ctx.batch
        if node.row_id is None:
            node.row_id = self._alloc()
            record = StepRunRecord(
                run_id=self.id,
                id=node.row_id,
                path=node.path,
                step_id=node.spec.id,
                kind=node.spec.kind,
                status=status,
                parent_id=node.frame.row_id,
                created_at=self.ctx.clock(),
            )
            for name, value in changes.items():
                setattr(record, name, value)
            batch.insert_step_run(record)
        else:
            batch.update_step_run(self.id, node.row_id, status=status, **changes)
        self._step_event(node.path, status, node.row_id, note)

    def _step_event(
        self,
        path: str,
        status: StepStatus,
        row_id: int | None,
        note: dict[str, Any] | None = None,
    ) -> None:
        """Record a step's new status. Within one batch only the last status of a path is
        kept: the ones before it were never committed, so nobody could have seen them."""
        batch = self.ctx.batch
        if batch is not self._events_batch:
            self._events_batch = batch
            self._step_events = {}
        data = {"path": path, "status": status.value, **(note or {})}
        earlier = self._step_events.get(path)
        if earlier is not None:
            earlier.data = data
            earlier.at = self.ctx.clock()
            return
        record = EventRecord(self.id, "step", self.ctx.clock(), data, row_id)
        batch.events.append(record)
        self._step_events[path] = record

    def _event(self, kind: str, data: dict[str, Any], step_run_id: int | None = None) -> None:
        self.ctx.batch.events.append(
            EventRecord(self.id, kind, self.ctx.clock(), data, step_run_id)
        )


class ForeachItemsError(KaonError):
    """A foreach's items are not a list at run time."""


def _error_dict(error: ErrorInfo) -> dict[str, Any]:
    return {
        "type": error.error_type,
        "message": error.message,
        "traceback": error.traceback,
        "platform": error.platform,
        "timeout": error.timeout,
    }


def _has_own_row(frame: Frame) -> bool:
    """True for a foreach item's or loop iteration's frame (a subworkflow's frame shares its
    container's row, and the top-level frame has none)."""
    container = frame.container
    return frame.row_id is not None and container is not None and container.sub is not frame


def _frame_facts(frame: Frame) -> tuple[Any, int | None, int | None]:
    """The innermost foreach item and index, and the innermost loop iteration, of a frame."""
    item: Any = None
    index: int | None = None
    iteration: int | None = None
    found_item = found_iteration = False
    current: Frame | None = frame
    while current is not None:
        container = current.container
        if container is not None and isinstance(container.spec, ForeachSpec) and not found_item:
            item = current.bindings.get(container.spec.item_name)
            index = current.index
            found_item = True
        if container is not None and isinstance(container.spec, LoopSpec) and not found_iteration:
            iteration = current.index
            found_iteration = True
        current = current.scope
    return item, index, iteration

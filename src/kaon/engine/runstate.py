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

import logging
from collections.abc import Callable, Mapping
from typing import Any

from kaon.engine.breakpoints import BreakpointSteps
from kaon.engine.caching import CachingSteps
from kaon.engine.containers import ContainerSteps, ForeachItemsError
from kaon.engine.context import EngineContext, Outbox, Timer, error_dict, error_info
from kaon.engine.core import DEFAULT_WINDOW, frame_facts, has_own_row
from kaon.engine.nodes import (
    USER_SKIP,
    Frame,
    Node,
    child_frames,
    walk_frames,
)
from kaon.engine.outages import step_retry_pause
from kaon.errors import ExpressionError, InvalidActionError
from kaon.executors.base import TaskRequest
from kaon.model.breakpoints import BREAK_AFTER
from kaon.model.events import LOG_OUTPUT, AttemptKey, ErrorInfo
from kaon.model.specs import (
    TaskSpec,
    WaitSpec,
)
from kaon.model.status import RunStatus, StepStatus, paused_seconds
from kaon.model.values import (
    RETURN,
    Literal,
    ValueRef,
    artifact_refs,
    encode_outputs,
)
from kaon.store.base import (
    AttemptRecord,
    CacheEntryRecord,
    SignalRecord,
    StepRunRecord,
)

__all__ = ["DEFAULT_WINDOW", "EngineContext", "ForeachItemsError", "Outbox", "RunState", "Timer"]

_S = StepStatus
log = logging.getLogger("kaon.engine")


class RunState(BreakpointSteps, ContainerSteps, CachingSteps):
    """The engine's working state for one run it holds the lease on: the public face (what the
    engine calls) over the core, container and caching layers."""

    def start(self) -> None:
        """Mark the run running, rebuild state from the store, and queue what is ready."""
        now = self.ctx.clock()
        if self.status not in (RunStatus.RUNNING, RunStatus.PAUSED):
            # New or restarted: this execution (its time limit, which failures decide, see
            # _restore_decisions) begins now.
            self.status = RunStatus.RUNNING
            self.record.started_at = now
            self.ctx.batch.update_run(self.id, status=RunStatus.RUNNING, started_at=now)
            self._event("run", {"status": RunStatus.RUNNING.value})
        rows = self.ctx.store.step_runs(self.id) if self.has_rows else []
        self._restore_frame(self.root, rows)
        if self.spec.timeout_s is not None and self.has_rows and self.record.started_at:
            # Resumed: how long it was paused so far (a pause still open counts to now).
            began = self.record.started_at
            changes = self.ctx.store.run_status_changes(self.id, began)
            self.paused_total = paused_seconds(changes, began, now)
            if self.status is RunStatus.PAUSED:
                self.paused_since = now
        if self.status is RunStatus.PAUSED and not self.paused:
            self._run_status(RunStatus.RUNNING)  # nothing is held any more
        self._seed(self.root)
        self.arm_run_timeout()

    def process(self) -> None:
        """Run the readiness worklist and frame completions until nothing is left."""
        while (self.work or self.frames_done) and not self.finished:
            while self.work and not self.finished:
                self._check(self.work.popleft())
            if self.frames_done and not self.finished:
                self._frame_done(self.frames_done.popleft())
        if self.draining and not self.inflight and not self.finished and not self._finishing():
            self.abort(RunStatus.FAILED, self.error or "a step failed")

    def _finishing(self) -> bool:
        """True while a step whose running attempt was lost waits to run again (queued, or
        retrying after a pause: the artifact store failed it)."""
        return any(n.finishing and n.queued for n in self.ready) or any(
            n.finishing and n.status is _S.RETRYING for n in self.timed.values()
        )

    def next_request(self, artifact_url: str) -> TaskRequest | None:
        """Start the next queued task attempt, if any: its rows go in the batch."""
        while self.ready and not self.finished:
            if self.draining:  # only a step whose running attempt was lost starts again
                node = next((n for n in self.ready if n.finishing), None)
                if node is None:
                    return None
                self.ready.remove(node)
            else:
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

    def start_node(self, node: Node, artifact_url: str) -> TaskRequest | None:
        """Start an attempt of one queued node that admission chose (see
        :mod:`kaon.engine.tenancy`), wherever it is in the queue; None when it did not start
        (no longer queued, a cache hit, its inputs failed)."""
        if self.finished or (self.draining and not node.finishing) or not node.queued:
            return None
        try:
            self.ready.remove(node)
        except ValueError:
            return None
        node.queued = False
        if node.status not in (_S.PENDING, _S.QUEUED, _S.RETRYING):
            return None
        return self._start_attempt(node, artifact_url)

    def attempt_started(self, key: AttemptKey, at: float, worker: str) -> None:
        """Record where and when an attempt really started (an executor may queue attempts
        ahead of its workers): its timeout counts from the moment the engine learns of it (on
        the engine's clock), not from its dispatch."""
        node = self.inflight.get(key)
        if node is not None:
            self.ctx.batch.update_attempt(key, started_at=at, worker=worker)
            timeout = node.timeout_s
            if timeout is not None:
                self.ctx.timers.add(self.ctx.clock() + timeout, "timeout", self.id, key=key)

    def attempt_succeeded(self, key: AttemptKey, at: float, outputs: dict[str, ValueRef]) -> None:
        """An attempt finished: record its outputs and move on."""
        node = self._attempt_over(key)
        if node is None:
            return
        self.ctx.batch.update_attempt(key, status="succeeded", ended_at=at)
        node.outputs = outputs
        encoded = encode_outputs(outputs)
        held = self._holds_after(node)
        if held:
            node.reason, note = BREAK_AFTER, {"breakpoint": "after"}
            self._set(node, _S.PAUSED, note, outputs=encoded, ended_at=at, reason=BREAK_AFTER)
        else:
            self._set(node, _S.SUCCEEDED, outputs=encoded, ended_at=at, error=None)
        self._record_lineage(node, key[2], outputs, at)
        self._record_uses(node, key[2], outputs, at)
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
        if held:
            self._hold(node)
        else:
            self._terminal(node)

    def attempt_log_stored(self, key: AttemptKey, at: float, ref: ValueRef) -> None:
        """A running attempt stored its whole log as an artifact: record it with lineage."""
        node = self.inflight.get(key)
        if node is not None:
            self._record_lineage(node, key[2], {LOG_OUTPUT: ref}, at)

    def attempt_failed(
        self,
        key: AttemptKey,
        at: float,
        error: ErrorInfo,
        kept: Mapping[str, ValueRef] | None = None,
    ) -> None:
        """An attempt failed: retry it by policy, or fail the step. ``kept`` are outputs the
        failed attempt stored (a partial notebook): recorded with lineage and on the failed
        step run, never passed downstream."""
        node = self._attempt_over(key)
        if node is None:
            return
        kept_outputs: dict[str, Any] = {}
        if kept:
            self._record_lineage(node, key[2], dict(kept), at)
            kept_outputs = {"outputs": encode_outputs(dict(kept))}
        error_data = error_dict(error)
        self.ctx.batch.update_attempt(key, status="failed", ended_at=at, error=error_data)
        policy = node.retry
        if error.platform:
            node.platform_attempts += 1
            again, delay = node.platform_attempts <= policy.platform_attempts, 0.0
            again = again and error.artifact_store != "refused"  # fixed by no retry
            if error.artifact_store == "unavailable":  # an outage: give it time to pass
                delay = step_retry_pause(node.platform_attempts)
        else:
            node.attempts += 1
            again = node.attempts < policy.max_attempts and policy.retries_error(
                error.error_type, error.bases
            )
            delay = policy.delay_for(node.attempts)
        counts: dict[str, Any] = {
            "attempts": node.attempts,
            "platform_attempts": node.platform_attempts,
        }
        if not again or (self.draining and not error.platform):
            self._fail(node, error, **counts, **kept_outputs)
        elif delay > 0:
            retry_at = self.ctx.clock() + delay
            if error.platform:
                node.finishing = True  # draining lets it run again, as below
                log.warning(
                    "run %s: step %s: the artifact store failed the attempt; platform retry "
                    "%d of %d in %.0fs: %s",
                    self.id,
                    node.path,
                    node.platform_attempts,
                    policy.platform_attempts,
                    delay,
                    error.summary(),
                )
            self._set(node, _S.RETRYING, error=error_data, next_attempt_at=retry_at, **counts)
            self._arm(node, "retry", retry_at)
        else:
            node.finishing = error.platform  # a lost worker: draining lets it run again
            self._set(node, _S.QUEUED, error=error_data, **counts)
            self._enqueue(node)

    def _attempt_over(self, key: AttemptKey) -> Node | None:
        """Forget an attempt in flight and its timeout; returns its node (None if unknown)."""
        node = self.inflight.pop(key, None)
        if node is not None:
            node.running = None
            self.ctx.timers.cancel("timeout", self.id, key=key)
        return node

    def timer_fired(self, timer: Timer) -> None:
        """Handle a due timer of this run: the node is found by its row or its attempt."""
        if self.finished:
            return
        if timer.kind == "run_timeout":
            self.abort(RunStatus.FAILED, f"run timed out after {self.spec.timeout_s:g}s")
            return
        if timer.kind == "timeout" and timer.key is not None:
            node = self.inflight.get(timer.key)
            if node is not None:
                self._time_out(node, timer.key)
            return
        node = self.timed.pop(timer.row_id, None) if timer.row_id is not None else None
        if node is None:
            return
        if timer.kind == "retry" and node.status is _S.RETRYING:
            self._enqueue(node)
        elif timer.kind == "wait_timeout" and node.status is _S.WAITING:
            self.waiting.remove(node)
            limit = node.timeout_s or 0.0
            error = ErrorInfo("Timeout", f"no matching signal within {limit:g}s", timeout=True)
            self._fail(node, error)
        elif timer.kind == "step_timeout" and node.status is _S.RUNNING:
            limit = node.spec.timeout_s or 0.0
            left = self._running_time_left(node, limit)
            if left > 0:  # the run was paused meanwhile: that time does not count
                wait = max(left, 1.0) if self.paused_since is not None else left
                self._arm(node, "step_timeout", self.ctx.clock() + wait)
                return
            message = f"step exceeded its {limit:g}s timeout"
            self._stop_inside(node, f"{node.path}: {message}", self.ctx.clock())
            self._fail(node, ErrorInfo("Timeout", message, timeout=True))

    def _running_time_left(self, node: Node, limit: float) -> float:
        """Seconds left of a container's ``limit`` counted from its start, not counting the
        time the run was paused since (a step held at a breakpoint: the run's own limit
        stops too, see :meth:`arm_run_timeout`). Read when its timer fires: the run's status
        changes since the container started (one indexed read), and the pause still open."""
        now = self.ctx.clock()
        started = node.started_at or now
        changes = self.ctx.store.run_status_changes(self.id, started)
        paused = paused_seconds(changes, started, now)
        open_counted = bool(changes) and changes[-1][1] == RunStatus.PAUSED.value
        if self.paused_since is not None and not open_counted:
            paused += max(0.0, now - max(self.paused_since, started))  # begun before it
        return started + paused + limit - now

    def _time_out(self, node: Node, key: AttemptKey) -> None:
        self.ctx.outbox.cancel.append(key)
        limit = node.timeout_s or 0.0
        error = ErrorInfo("Timeout", f"attempt exceeded its {limit:g}s timeout", timeout=True)
        self.attempt_failed(key, self.ctx.clock(), error)

    def waiting_signals(self) -> set[str]:
        """The names of the signals this run's wait steps are waiting for."""
        found = set()
        for node in self.waiting:
            assert isinstance(node.spec, WaitSpec)
            found.add(node.spec.signal)
        return found

    def signal_read_start(self, first: Callable[[], int]) -> int:
        """Where the next read of signals must start for this run's wait steps: the oldest
        position among them. A step that has just started waiting reads from its signal
        name's floor (``first()``, the first signal since the run's creation, for a name
        not awaited before), so a signal it matches that no wait step of the run took
        reaches it, whenever it came: before it waited, or while another wait step on the
        same name waited for another match (a foreach's items each awaiting their own)."""
        for node in self.waiting:
            if node not in self.wait_cursors:
                assert isinstance(node.spec, WaitSpec)
                name = node.spec.signal
                if name not in self.signal_floors:
                    self.signal_floors[name] = first()
                self.wait_cursors[node] = self.signal_floors[name]
        return min((self.wait_cursors[n] for n in self.waiting), default=0)

    def _taken(self, name: str) -> set[int]:
        """The ids of the signals called ``name`` that woke one of this run's wait steps.

        Built from the steps' rows the first time (a run resumed by another engine), then
        kept as steps are woken: such a signal is offered to no later wait step.
        """
        taken = self.signals_taken.get(name)
        if taken is None:
            taken = self.signals_taken[name] = set()
            prefix = f"signal {name} #"
            for frame in walk_frames(self.root):
                for node in frame.nodes.values():
                    if isinstance(node.spec, WaitSpec) and node.status is _S.SUCCEEDED:
                        number = node.reason.removeprefix(prefix)
                        if node.reason.startswith(prefix) and number.isdigit():
                            taken.add(int(number))
        return taken

    def deliver_signals(self, signals: list[SignalRecord], start: int, last_read: int) -> None:
        """Offer newly read signals (oldest first) to the wait steps waiting on their names;
        the read covered the ids after ``start`` up to ``last_read``.

        A signal wakes every wait step waiting on its name that it matches and was not
        offered it yet; once it woke one it is taken, and no later wait step receives it.
        One that woke none stays for the wait steps that start later (see
        :meth:`signal_read_start`): the floor of its name stops before it.
        """
        for signal in signals:
            number = signal.id or 0
            taken = self._taken(signal.name)
            if number in taken:
                continue
            takers = [
                n
                for n in self.waiting
                if _waits_on(n, signal.name) and self.wait_cursors.get(n, number) < number
            ]
            for node in takers:
                spec = node.spec
                assert isinstance(spec, WaitSpec)
                if node.status is not _S.WAITING or node not in self.waiting:
                    continue
                if spec.match:
                    where = spec.location.with_field("match")
                    extra = {"signal": signal.params}
                    try:
                        if not self.resolver.condition(node.frame, spec.match, where, extra):
                            continue
                    except ExpressionError as exc:
                        # This signal cannot be matched (a key it lacks, a value of another
                        # type: another sender's): not for this step, as a signal trigger
                        # skips it; the run's events say so.
                        data = {"path": node.path, "signal": signal.name, "id": signal.id}
                        data["error"] = str(exc)
                        self._event("signal_not_matched", data, node.row_id)
                        continue
                    except Exception as exc:  # a value the match reads failed to load
                        self.waiting.remove(node)
                        self._fail(node, error_info(exc))
                        continue
                self.waiting.remove(node)
                taken.add(number)
                node.outputs = {RETURN: Literal(dict(signal.params))}
                self._set(
                    node,
                    _S.SUCCEEDED,
                    outputs=encode_outputs(node.outputs),
                    ended_at=self.ctx.clock(),
                    reason=f"signal {signal.name} #{signal.id}",
                )
                self._terminal(node)
        still = set(self.waiting)
        for node in list(self.wait_cursors):
            if node in still:
                self.wait_cursors[node] = max(self.wait_cursors[node], last_read)
            else:
                del self.wait_cursors[node]
        for name, floor in self.signal_floors.items():
            if start > floor:
                continue  # the read began past the floor: what follows it was not all seen
            taken = self._taken(name)
            left = [
                s.id or 0
                for s in signals
                if s.name == name and (s.id or 0) > floor and (s.id or 0) not in taken
            ]
            self.signal_floors[name] = max(floor, min(left) - 1 if left else last_read)

    def abort(self, status: RunStatus, reason: str) -> None:
        """Stop everything: cancel attempts in flight and mark unfinished steps cancelled."""
        if self.finished:
            return
        self.paused.clear()  # cancelled below: the run is not resumed in between
        now = self.ctx.clock()
        frames = list(walk_frames(self.root))
        for frame in frames:
            for node in frame.nodes.values():
                if node.status is _S.FAILED and not node.failure_ignored:
                    self._fail_enclosing(node, now)
                elif (
                    node.foreach is not None
                    and node.foreach.failed
                    and not node.done
                    and not node.holds_failures
                ):
                    # Its failed items are folded away (a drain let them end): still failed.
                    why = node.foreach.failed_text(node.path)
                    error = error_dict(ErrorInfo("ChildFailed", why))
                    self._set(node, _S.FAILED, error=error, ended_at=now)
                    self._fail_enclosing(node, now)
        for frame in frames:
            for node in frame.nodes.values():
                self._close_unreached(node, _S.CANCELLED, reason)
            if self._ended_by_itself(frame):
                continue
            for node in frame.nodes.values():
                self._cancel_node(node, reason, now)
            if has_own_row(frame) and not frame.finished:
                self._frame_row(frame, _S.CANCELLED, ended_at=now, reason=reason)
        self.ready.clear()
        self.work.clear()
        self.frames_done.clear()
        self._finish(status, reason)

    def _ended_by_itself(self, frame: Frame) -> bool:
        """Close an item or iteration whose steps had all ended when a stop came (its end not
        yet processed: the same turn), as it ended: ``succeeded``, or ``failed``, not
        ``cancelled`` beside a task that succeeded. False for a frame with a step still to
        stop."""
        if frame.finished or not frame.nodes or not all(n.done for n in frame.nodes.values()):
            return False
        frame.finished = True
        if has_own_row(frame):
            failed = any(
                n.status in (_S.FAILED, _S.CANCELLED) and not n.failure_ignored
                for n in frame.nodes.values()
            )
            self._close_frame_row(frame, failed, self._frame_output(frame))
        return True

    def _fail_enclosing(self, node: Node, now: float) -> None:
        """Show the item, iteration and container steps around a failed node ``failed``, not
        ``cancelled``, when the run stops because of it (or while it is failed inside them).
        A container that holds failures stops that (an ``ignore`` one, a foreach with
        ``min_success``): its failed item decided nothing before all its items ended, so it
        is cancelled with the run, and so are the steps around it."""
        frame = node.frame
        while frame.container is not None:
            container = frame.container
            if has_own_row(frame) and not frame.finished:
                frame.finished = True
                self._frame_row(frame, _S.FAILED, ended_at=now, error=self._frame_error(frame))
            if container.holds_failures:
                return
            if not container.done:
                error = ErrorInfo("ChildFailed", f"step {node.path} failed")
                self._set(container, _S.FAILED, error=error_dict(error), ended_at=now)
            frame = container.frame

    def _stop_contained(self, frame: Frame, failed: Node) -> None:
        """Stop everything in ``frame`` (the item, iteration or body of an ``ignore``
        container) around ``failed``, a ``fail_fast`` failure inside it: the containers that
        hold the failed node end ``failed`` (ChildFailed) with their item and iteration rows,
        every other unfinished step in the frame and below it is cancelled (its attempt
        stopped). The frame then ends failed as its last step ends, and the container
        around it carries on (its mode is ``ignore``)."""
        now = self.ctx.clock()
        reason = f"step {failed.path} failed"
        path_frames: set[int] = set()
        holders: list[Node] = []  # the containers between the failed node and the frame
        inner = failed.frame
        while inner is not frame and inner.container is not None:
            path_frames.add(id(inner))
            holders.append(inner.container)
            inner = inner.container.frame
        frames = [f for n in frame.nodes.values() for c in child_frames(n) for f in walk_frames(c)]
        error = error_dict(ErrorInfo("ChildFailed", reason))
        for node in holders:
            if not node.done:
                self._set(node, _S.FAILED, error=error, ended_at=now)
        for inside in frames:
            if self._ended_by_itself(inside):
                continue
            for node in inside.nodes.values():
                self._cancel_node(node, reason, now)
            if not inside.finished:
                inside.finished = True  # its container ended: nothing more comes of it
                if has_own_row(inside):
                    if id(inside) in path_frames:
                        error = self._frame_error(inside)
                        self._frame_row(inside, _S.FAILED, ended_at=now, error=error)
                    else:
                        self._frame_row(inside, _S.CANCELLED, ended_at=now, reason=reason)
        stopped = []
        for node in frame.nodes.values():
            if node is failed or (node.done and node not in holders):
                continue
            self._cancel_node(node, reason, now)
            stopped.append(node)
        for node in holders:
            self._close_unreached(node, _S.CANCELLED, reason)
            node.foreach = node.loop = None
            node.sub = None
        frame.remaining -= len(stopped)  # its unfinished steps; none follows (all are done)
        if frame.remaining == 0 and failed.frame is not frame:
            self.frames_done.append(frame)

    def skip(self, path: str, output: Any = None, has_output: bool = False) -> None:
        """Skip the active step at ``path``; downstream sees ``output`` (or nothing)."""
        node = self._active_node(path)
        node.user_output = Literal(output) if has_output else None
        node.reason = USER_SKIP
        if node.status is _S.PENDING and not node.queued:
            self._record_pending_skip(node)
            return  # skipped when its dependencies finish
        self._stop_inside(node, USER_SKIP, self.ctx.clock())
        self._skip_now(node)

    def _record_pending_skip(self, node: Node) -> None:
        """Make the skip of a step that has not started a row (status pending, reason "skipped
        by user", the given output), committed with the command marked done: a resumed
        engine rebuilds it from the row (:meth:`_restore_frame`)."""
        kept = node.user_output
        outputs = encode_outputs({RETURN: kept} if kept is not None else {})
        if node.row_id is not None:
            self.ctx.batch.update_step_run(self.id, node.row_id, reason=USER_SKIP, outputs=outputs)
        else:
            node.row_id = self._alloc()
            self.ctx.batch.insert_step_run(
                StepRunRecord(
                    run_id=self.id,
                    id=node.row_id,
                    path=node.path,
                    step_id=node.spec.id,
                    kind=node.spec.kind,
                    status=_S.PENDING,
                    parent_id=node.frame.row_id,
                    outputs=outputs,
                    reason=USER_SKIP,
                    created_at=self.ctx.clock(),
                )
            )
        self._event("action", {"action": "skip", "path": node.path, "pending": True})

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
                if has_own_row(frame) and not frame.finished:
                    self._frame_row(frame, _S.CANCELLED, ended_at=now, reason=reason)
        self._drop_attempt(node, now)
        if node in self.waiting:
            self.waiting.remove(node)
        self._close_unreached(node, _S.CANCELLED, reason)
        node.foreach = node.loop = None
        node.sub = None

    def _start_attempt(self, node: Node, artifact_url: str) -> TaskRequest | None:
        spec = node.spec
        assert isinstance(spec, TaskSpec)
        try:
            inputs, node.inputs = node.inputs or self.resolver.inputs(node), None
        except Exception as exc:  # a user's value or expression: the step fails, not the run
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
        node.finishing = False
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
        item, index, iteration = frame_facts(node.frame)
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
            resources=spec.resources.as_request() if spec.resources is not None else {},
        )

    def _drop_attempt(self, node: Node, now: float) -> None:
        if node.running is not None:
            key = node.running
            self._attempt_over(key)
            node.running = None
            self.ctx.outbox.cancel.append(key)
            self.ctx.batch.update_attempt(key, status="cancelled", ended_at=now)

    def _cancel_node(self, node: Node, reason: str, now: float) -> None:
        self._drop_attempt(node, now)
        self._close_unreached(node, _S.CANCELLED, reason)
        if node in self.waiting:
            self.waiting.remove(node)
        if not node.done:
            node.queued = False
            self._set(node, _S.CANCELLED, reason=reason, ended_at=now)


def _waits_on(node: Node, name: str) -> bool:
    spec = node.spec
    return isinstance(spec, WaitSpec) and spec.signal == name and node.status is _S.WAITING

"""The core of a run's state: its fields, how a transition is recorded, readiness and
completion. The container steps (:mod:`kaon.engine.containers`), memoization
(:mod:`kaon.engine.caching`) and the public run state (:mod:`kaon.engine.runstate`) build on it.

Nothing here talks to the executor or commits: every decision goes into the engine's current
write batch; attempts to start or cancel go to its outbox.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from kaon.engine.context import EngineContext, error_dict, error_info
from kaon.engine.nodes import (
    CONDITION_FALSE,
    USER_SKIP,
    Frame,
    LoopState,
    Node,
    trigger_decision,
)
from kaon.engine.resolve import Resolver, node_value
from kaon.model.events import AttemptKey, ErrorInfo
from kaon.model.graph import compile_graph
from kaon.model.specs import (
    FailureMode,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    StepDefaults,
    WorkflowSpec,
)
from kaon.model.status import RunStatus, StepStatus, check_step_transition
from kaon.model.values import (
    RETURN,
    Literal,
    ValueRef,
    encode_outputs,
    outputs_value,
)
from kaon.store.base import (
    EventRecord,
    RunRecord,
    StepRunRecord,
    WriteBatch,
)

DEFAULT_WINDOW = 1024  # foreach items expanded at once when no concurrency limit is set
_S = StepStatus
# Statuses a node may wait in on a timer of its own (a container runs under its timeout).
_TIMED = frozenset({_S.RETRYING, _S.WAITING, _S.RUNNING})
_TIMER_KINDS = {_S.RETRYING: "retry", _S.WAITING: "wait_timeout", _S.RUNNING: "step_timeout"}


class RunCore(ABC):
    """A run's in-memory state and the primitives every layer uses."""

    # The run's owner group on a server (set when the engine loads it; it names the run's
    # cache keys and admission's fair share, see kaon.engine.tenancy); "" for none.
    tenant_group = ""

    def __init__(
        self,
        record: RunRecord,
        spec: WorkflowSpec,
        ctx: EngineContext,
        *,
        last_row_id: int | None = None,
    ) -> None:
        """``last_row_id``: the run's largest step run id when the caller read it already
        (many runs are claimed at once); read from the store when None."""
        self.id = record.id
        self.record = record
        self.spec = spec
        self.ctx = ctx
        self.status = record.status
        self.resolver = Resolver(ctx.artifacts, {"id": record.id, "workflow": spec.name})
        if last_row_id is None:
            last_row_id = ctx.store.max_step_run_id(record.id)
        self.has_rows = last_row_id > 0  # step runs recorded before this engine took it
        self.next_row_id = last_row_id + 1
        self.ready: deque[Node] = deque()
        self.work: deque[Node] = deque()
        self.frames_done: deque[Frame] = deque()
        self.inflight: dict[AttemptKey, Node] = {}
        self.draining = False
        self.finished = False
        self.waiting: list[Node] = []  # wait steps, woken by signals
        # Containers that ended failed only because a person cancelled a step inside them
        # (``kaon kill --step``): like that step's cancel, their failure stops nothing else.
        self.failed_by_cancel: set[Node] = set()
        self.timed: dict[int, Node] = {}  # retrying or waiting nodes with a timer, by row
        self.paused: dict[str, Node] = {}  # nodes held at a breakpoint, by path
        # The run's time limit counts running time: seconds paused since it started (closed
        # pauses), and when the open pause began (see BreakpointSteps._run_status).
        self.paused_total = 0.0
        self.paused_since: float | None = None
        self._events_batch: WriteBatch | None = None  # the batch _step_events belong to
        self._step_events: dict[str, EventRecord] = {}
        # Signals for wait steps (see RunState.deliver_signals): per waiting step, the newest
        # signal offered to it; per signal name, where a step starting to wait on it reads
        # from (every signal of the name up to there woke a wait step of this run, or came
        # before the run), and the signals of the name that woke one (offered to no other).
        self.wait_cursors: dict[Node, int] = {}
        self.signal_floors: dict[str, int] = {}
        self.signals_taken: dict[str, set[int]] = {}
        self.error: str | None = None
        self.ended_error: str | None = None  # the error the run ended with (_finish)
        self.root = self._new_frame(spec.graph, "", dict(record.params), spec.defaults)

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
        if node.status in _TIMED and status is not node.status:
            self._disarm(node)
        was_paused = node.status is _S.PAUSED and status is not _S.PAUSED
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
        if was_paused:
            self._released(node)

    def _arm(self, node: Node, kind: str, at: float) -> None:
        """Wake the engine at ``at`` for a retrying, waiting or running container node
        (``retry``, ``wait_timeout``, ``step_timeout``): the timer names the node's row, and
        the node is kept in :attr:`timed` only until the timer fires or the node moves on."""
        assert node.row_id is not None
        self.timed[node.row_id] = node
        self.ctx.timers.add(at, kind, self.id, node.row_id)

    def _disarm(self, node: Node) -> None:
        """Drop a node's timer (it left the status it waited in)."""
        if node.row_id is not None and self.timed.pop(node.row_id, None) is not None:
            self.ctx.timers.cancel(_TIMER_KINDS[node.status], self.id, node.row_id)

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

    def _frame_row(self, frame: Frame, status: StepStatus, **changes: Any) -> None:
        assert frame.row_id is not None
        if frame.ended_at is not None:
            # Its row had ended before this engine reopened it (a failed item on resume, an
            # item a restart --only does not reach): it stays as it ended, status, output and
            # time, rather than a cancelled item turning failed with a null output.
            return
        self.ctx.batch.update_step_run(self.id, frame.row_id, status=status, **changes)
        self._step_event(frame.prefix[:-1], status, frame.row_id)

    @staticmethod
    def _frame_error(frame: Frame, culprit: Node | None = None) -> dict[str, Any]:
        """The error of an item or iteration row that failed: which step inside it did
        (``culprit``, else the first of its steps that failed or was cancelled)."""
        if culprit is None:
            culprit = next(
                (
                    n
                    for n in frame.nodes.values()
                    if n.status in (_S.FAILED, _S.CANCELLED) and not n.failure_ignored
                ),
                None,
            )
        if culprit is None:
            return error_dict(ErrorInfo("ChildFailed", f"a step inside {frame.prefix[:-1]} failed"))
        return error_dict(ErrorInfo("ChildFailed", f"step {culprit.path} {culprit.status.value}"))

    def _children_rows(self, node: Node) -> list[StepRunRecord]:
        if node.row_id is None:
            return []
        return self.ctx.store.step_runs(self.id, parent_id=node.row_id)

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
                    self._skip(node, f"{CONDITION_FALSE}: {node.spec.when}")
                    return
            except Exception as exc:  # a user's value or expression: the step fails
                self._fail(node, error_info(exc))
                return
        if self._holds_before(node):
            return
        self._launch(node)

    def _enqueue(self, node: Node) -> None:
        if not node.queued:
            node.queued = True
            self.ready.append(node)

    def _skip(self, node: Node, reason: str) -> None:
        node.reason = reason  # successors read it: a branch not taken does not stop a join
        self._set(node, _S.SKIPPED, reason=reason, ended_at=self.ctx.clock())
        self._terminal(node)

    def _skip_now(self, node: Node) -> None:
        outputs = {RETURN: node.user_output} if node.user_output is not None else {}
        node.outputs = outputs
        node.queued = False
        self._set(  # a retry it was waiting for is dropped with the error that caused it
            node,
            _S.SKIPPED,
            reason=USER_SKIP,
            outputs=encode_outputs(outputs),
            error=None,
            next_attempt_at=None,
            ended_at=self.ctx.clock(),
        )
        self._event("action", {"action": "skip", "path": node.path})
        self._terminal(node)

    def _fail(self, node: Node, error: ErrorInfo, **changes: Any) -> None:
        self._set(node, _S.FAILED, error=error_dict(error), ended_at=self.ctx.clock(), **changes)
        self._terminal(node)

    def _terminal(self, node: Node) -> None:
        if self.finished:
            return
        if (
            node.status is _S.FAILED
            and not node.failure_ignored
            and node not in self.failed_by_cancel
        ):
            effect = node.failure_effect
            message = f"step {node.path} failed"
            if effect is FailureMode.FAIL_FAST:
                self.abort(RunStatus.FAILED, message)
                return
            if effect is FailureMode.FINISH_RUNNING:
                self.draining = True
                self.error = self.error or message
            if effect is FailureMode.IGNORE:
                self._contain(node)
        frame = node.frame
        frame.remaining -= 1
        for succ in frame.compiled.successors[node.spec.id]:
            nxt = frame.nodes[succ]
            nxt.deps_left -= 1
            if nxt.deps_left == 0:
                self.work.append(nxt)
        if frame.remaining == 0:
            self.frames_done.append(frame)

    def _contain(self, node: Node) -> None:
        """A failure that an ``ignore`` container holds. The containers between the failed
        node and that one keep their own modes within it: a foreach among them starts no new
        item (``finish_running`` and ``fail_fast`` alike: each ends failed once its running
        items end); and when the failure's mode there is ``fail_fast`` (the node's own, unless
        a container between is ``finish_running``), everything still running in the ignoring
        container's item (or body) is stopped now, as ``fail_fast`` stops a whole run."""
        mode, frame = self._halt_containers(node)
        if mode is FailureMode.FAIL_FAST:
            self._stop_contained(frame, node)

    @staticmethod
    def _halt_containers(node: Node) -> tuple[FailureMode, Frame]:
        """Halt the foreaches between a failed node and the ``ignore`` container that holds
        its failure (they start no new item); returns the failure's mode there and the frame
        (item or body) of that container where it stops."""
        mode = node.on_failure
        frame = node.frame
        container = frame.container
        while container is not None and not container.holds_failures:
            if container.on_failure is FailureMode.FINISH_RUNNING:
                mode = FailureMode.FINISH_RUNNING
            if container.foreach is not None:
                container.foreach.halted = True
            frame = container.frame
            container = frame.container
        return mode, frame

    def _frame_done(self, frame: Frame) -> None:
        if frame.finished:
            return
        frame.finished = True
        culprits = [
            n
            for n in frame.nodes.values()
            if n.status in (_S.FAILED, _S.CANCELLED) and not n.failure_ignored
        ]
        culprit = culprits[0] if culprits else None
        failed = culprit is not None
        # Only steps a person cancelled (or containers failed by such a cancel) inside: the
        # container ends failed, but its failure has no effect (fail_fast would stop the
        # run's other branches, which a cancel at the top level lets finish).
        by_cancel = failed and all(
            n.status is _S.CANCELLED or n in self.failed_by_cancel for n in culprits
        )
        output = self._frame_output(frame)
        container = frame.container
        if container is None:
            if culprit is not None:  # a step killed by a user is cancelled, not failed
                why = self.error or f"step {culprit.path} {culprit.status.value}"
                self._finish(RunStatus.FAILED, why)
            else:
                self._finish(RunStatus.SUCCEEDED, None)
        elif container.foreach is not None:
            self._item_done(container, frame, failed, output, by_cancel=by_cancel)
        elif container.loop is not None:
            self._iteration_done(
                container, container.loop, frame, failed, output, by_cancel=by_cancel
            )
        else:
            self._complete_container(container, failed, output, by_cancel=by_cancel)

    @staticmethod
    def _frame_output(frame: Frame) -> ValueRef:
        ids = frame.compiled.output_ids
        if len(ids) == 1:
            return node_value(frame.nodes[ids[0]])
        return outputs_value({i: node_value(frame.nodes[i]) for i in ids})

    def _complete_container(
        self,
        node: Node,
        failed: bool,
        output: ValueRef,
        why: str = "",
        *,
        by_cancel: bool = False,
    ) -> None:
        """End a container whose steps ended: failed (``by_cancel``: only because a person
        cancelled a step inside, a failure with no effect) or succeeded with ``output``."""
        now = self.ctx.clock()
        self._close_unreached(node, _S.SKIPPED)
        node.foreach = None
        node.loop = None
        node.sub = None
        if failed:
            if by_cancel:
                self.failed_by_cancel.add(node)
            error = ErrorInfo("ChildFailed", why or f"a step inside {node.path} failed")
            self._fail(node, error)
            return
        node.outputs = {RETURN: output}
        # Said of a container that succeeds all the same: a foreach's failed items within
        # its min_success, a loop that ran out of iterations.
        outputs = encode_outputs(node.outputs)
        if why:
            self._set(node, _S.SUCCEEDED, outputs=outputs, ended_at=now, reason=why)
        else:
            self._set(node, _S.SUCCEEDED, outputs=outputs, ended_at=now)
        self._terminal(node)

    def _close_unreached(self, node: Node, status: StepStatus, reason: str = "") -> None:
        """End the item or iteration rows of a container ``node`` that its execution ends
        without reopening, and the unfinished rows inside them: rows a restart reset to
        ``pending`` (or a stop left open) that this execution does not reach, as when the
        redone items list is shorter, the loop stops earlier, or the run stops first. They
        end ``skipped`` (``not reached: ...``) when the container ends by itself, or with
        ``status`` and ``reason`` (``cancelled``) when it is stopped. A finished run never
        keeps a ``pending`` row."""
        rows: list[StepRunRecord] = []
        if node.foreach is not None:
            rows.extend(node.foreach.restore.values())
            node.foreach.restore.clear()
            why = f"not reached: foreach {node.path} ended with {node.foreach.next_index} items"
        elif node.loop is not None:
            rows.extend(node.loop.rows.values())
            node.loop.rows.clear()
            why = f"not reached: loop {node.path} ended at iteration {node.loop.iteration}"
        else:
            return
        why = reason or why
        now = self.ctx.clock()
        level = [row for row in rows if not row.status.is_terminal]
        while level:  # a level at a time: the rows inside many frames in one read
            for row in level:
                self.ctx.batch.update_step_run(
                    self.id, row.id, status=status, reason=why, ended_at=now
                )
                self._step_event(row.path, status, row.id)
            inside = self.ctx.store.children_of(self.id, [row.id for row in level])
            level = [row for row in inside if not row.status.is_terminal]

    def _finish(self, status: RunStatus, error: str | None) -> None:
        self.finished = True
        self.status = status
        self.ended_error = error
        self.ctx.timers.cancel_run(self.id)
        self.timed.clear()
        now = self.ctx.clock()
        self.ctx.batch.update_run(self.id, status=status, ended_at=now, error=error)
        self._event("run", {"status": status.value, "error": error})

    # -- implemented by the container and run-state layers ---------------------------------

    @abstractmethod
    def abort(self, status: RunStatus, reason: str) -> None:
        """Stop everything and finish the run (see :class:`~kaon.engine.runstate.RunState`)."""

    @abstractmethod
    def _stop_contained(self, frame: Frame, failed: Node) -> None:
        """Stop what runs in ``frame`` around a ``fail_fast`` failure (see :meth:`_contain`)."""

    @abstractmethod
    def _holds_before(self, node: Node) -> bool:
        """Hold a ready node at a breakpoint (:mod:`kaon.engine.breakpoints`)."""

    @abstractmethod
    def _holds_after(self, node: Node) -> bool:
        """Whether a node that just succeeded is held (:mod:`kaon.engine.breakpoints`)."""

    @abstractmethod
    def _hold(self, node: Node) -> None:
        """Count a node restored as ``paused`` as held (:mod:`kaon.engine.breakpoints`)."""

    @abstractmethod
    def _released(self, node: Node) -> None:
        """A held node left ``paused`` (:mod:`kaon.engine.breakpoints`)."""

    @abstractmethod
    def _launch(self, node: Node) -> None:
        """Start a ready node by its kind (see :class:`~kaon.engine.containers.ContainerSteps`)."""

    @abstractmethod
    def _item_done(
        self, node: Node, frame: Frame, failed: bool, output: ValueRef, *, by_cancel: bool
    ) -> None:
        """A foreach item's frame finished (``by_cancel``: failed only by a person's cancel)."""

    @abstractmethod
    def _iteration_done(
        self,
        node: Node,
        state: LoopState,
        frame: Frame,
        failed: bool,
        output: ValueRef,
        *,
        by_cancel: bool,
    ) -> None:
        """A loop iteration's frame finished (``by_cancel``: failed only by a person's
        cancel)."""


def has_own_row(frame: Frame) -> bool:
    """True for a foreach item's or loop iteration's frame (a subworkflow's frame shares its
    container's row, and the top-level frame has none)."""
    container = frame.container
    return frame.row_id is not None and container is not None and container.sub is not frame


def frame_facts(frame: Frame) -> tuple[Any, int | None, int | None]:
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


def context_facts(node: Node) -> dict[str, ValueRef]:
    """The run facts a step's context gives its code (``kaon.context().params``, ``.item``,
    ``.index``, ``.iteration``), as values for its cache key: an item that is not plain JSON
    (a date, a DataFrame) by the reference it is stored under, so by its content."""
    frame = node.frame
    item, index, iteration = frame_facts(frame)
    item_ref: ValueRef = Literal(item)
    current: Frame | None = frame
    while current is not None:
        container = current.container
        if container is not None and isinstance(container.spec, ForeachSpec):
            item_ref = current.stored.get(container.spec.item_name, item_ref)
            break
        current = current.scope
    return {
        "params": Literal(frame.params),
        "item": item_ref,
        "index": Literal(index),
        "iteration": Literal(iteration),
    }

"""Container steps: foreach (windowed, lazily expanded), bounded loops, subworkflows and wait
steps, and how their frames are opened, closed and rebuilt from the store on resume."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaon.artifacts.jsonable import is_literal_json
from kaon.engine.context import error_dict, error_info
from kaon.engine.core import DEFAULT_WINDOW, RunCore
from kaon.engine.nodes import (
    USER_SKIP,
    ForeachState,
    Frame,
    FrameRows,
    LoopState,
    Node,
)
from kaon.engine.spool import LazyItems
from kaon.errors import KaonError, ParameterError, Problem
from kaon.model.events import AttemptKey, ErrorInfo
from kaon.model.params import bind_params
from kaon.model.specs import (
    FailureMode,
    ForeachSpec,
    LoopSpec,
    SubworkflowSpec,
    TaskSpec,
    WaitSpec,
)
from kaon.model.status import StepStatus
from kaon.model.text import bounded_text, readable_text
from kaon.model.values import (
    RETURN,
    Literal,
    ValueRef,
    decode_outputs,
    encode_outputs,
)
from kaon.store.base import (
    AttemptRecord,
    StepRunRecord,
)

_S = StepStatus

# A loss before the attempt's start was recorded does not count against the platform budget
# (it may only have been queued in a worker), but where steps run in the engine's process
# (inline: a queued attempt starts within a turn), a step lost this many times in a row that
# way is failed: it is most likely what stops its engine (os._exit, a crash, memory).
UNSTARTED_LOSS_LIMIT = 5

# A foreach item that is not plain JSON is shown in its row (kaon show, metrics, compare) as
# its repr, at most this long; the step gets the value itself.
ITEM_TEXT_CHARS = 200

# A resumed (or restarted) foreach reads what its items are rebuilt from (the rows inside
# them, their tasks' attempts) for the items with rows among this many as the first of them
# opens: two reads a window, where each item took two (40 % of a restarted foreach's time).
RESTORE_WINDOW = 256


class ForeachItemsError(KaonError):
    """A foreach's items are not a list at run time."""


def _not_a_list(path: str, value: Any) -> str:
    """Why a foreach's ``value`` cannot be its items, on one line (a step row's error): a
    table (a SQL step's ``result: table``) by its size, with how SQL gives a list instead,
    anything else by its type and the start of its repr."""
    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    if hasattr(value, "columns") and isinstance(shape, tuple) and shape:
        return (
            f"foreach {path}: items must be a list, got a table ({kind}, {shape[0]:,} rows); "
            "a SQL step gives a list with result: scalar and an aggregate, select list(region) "
            "from t (or select list({'region': region, 'n': n}) from t for each row's fields)"
        )
    shown = " ".join(repr(value).split())
    return f"foreach {path}: items must be a list, got {kind}: {shown:.80}"


def _at_sub_inputs(error: ParameterError, path: str, spec: SubworkflowSpec) -> ParameterError:
    """``error`` of binding a subworkflow's parameters, each problem moved from the child's
    ``params.<name>`` (a field no file holds) to the step's input that gave the value, at
    the step's file and line, naming the step and the child workflow."""
    child = spec.spec.name if spec.spec is not None else spec.workflow
    problems: list[Problem] = []
    for problem in error.problems:
        field = problem.location.field or ""
        name = field.removeprefix("params.") if field.startswith("params.") else ""
        message = problem.message
        if name and message.startswith(f"parameter {name!r} "):
            message = f"parameter {name!r} of {child!r} " + message[len(f"parameter {name!r} ") :]
        else:
            message = f"{message} (workflow {child!r})"
        where = spec.location.with_field(f"inputs.{name}" if name in spec.inputs else "inputs")
        problems.append(Problem(f"subworkflow {path!r}: {message}", where))
    return ParameterError(problems)


class ContainerSteps(RunCore):
    """Starting and finishing container steps; rebuilding frames from their rows."""

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
        except Exception as exc:  # its items, params or values: the step fails, not the run
            self._close_unreached(node, _S.SKIPPED)
            self._fail(node, error_info(exc))

    def _run_container(self, node: Node) -> None:
        """Mark a foreach, loop or subworkflow running (unless resumed so) and arm its own
        ``timeout``, which bounds the whole step from its first start. A workflow's default
        timeout is each task attempt's limit and does not bound a container."""
        if node.status is not _S.RUNNING:
            node.started_at = self.ctx.clock()
            self._set(node, _S.RUNNING, started_at=node.started_at)
        limit = node.spec.timeout_s
        if limit is not None:
            self._arm(node, "step_timeout", (node.started_at or self.ctx.clock()) + limit)

    def _start_foreach(self, node: Node, spec: ForeachSpec) -> None:
        where = spec.location.with_field("foreach")
        ref = self.resolver.input_ref(node.frame, spec.items, where)
        items = self.ctx.artifacts.list_items(ref)
        if items is None:
            raise ForeachItemsError(_not_a_list(node.path, self.ctx.artifacts.get(ref)))
        existing = self._children_rows(node)
        self._run_container(node)
        state = ForeachState(spec, LazyItems(items), spec.concurrency or DEFAULT_WINDOW)
        for row in existing:
            if row.index is None:
                continue
            if row.status in (_S.SUCCEEDED, _S.CACHED):
                outputs = decode_outputs(row.outputs)
                state.results.put(row.index, outputs.get(RETURN, Literal(None)))
                state.finished.add(row.index)
            else:
                state.restore[row.index] = row
        node.foreach = state
        # How many items: the live views show a foreach's counts against its total. The items
        # are decoded lazily (never held whole), so they are counted in a second pass.
        total = sum(1 for _ in self.ctx.artifacts.list_items(ref) or ())
        self._event("foreach", {"path": node.path, "items": total}, node.row_id)
        self._advance_foreach(node, state)

    def _advance_foreach(self, node: Node, state: ForeachState) -> None:
        while not self.finished and len(state.active) < state.limit and not state.exhausted:
            index = state.next_index
            if (self.draining or state.halted) and not _opened_before(state, index):
                break  # a drain, or a failure the foreach holds, starts no new item
            item = state.items.take(index)
            state.next_index += 1
            if index not in state.finished:
                self._open_item(node, state, index, item)
        done = state.exhausted or state.halted
        if done and not state.active and not self.finished and not self.draining:
            count = state.next_index
            output = state.results.collect(count, self.ctx.artifacts, node.path)
            failed = not state.succeeded_enough
            why = state.failed_text(node.path) if state.failed else ""
            by_cancel = state.failed == state.failed_by_cancel
            self._complete_container(node, failed, output, why, by_cancel=by_cancel)

    def _open_item(self, node: Node, state: ForeachState, index: int, item: Any) -> None:
        spec = state.spec
        is_json = is_literal_json(item)
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
        if not is_json:
            # A date, a numpy scalar, a DataFrame (items of a pickled list): it travels as
            # any non-JSON value does, by reference, and its row shows a bounded text of it.
            name = f"{node.path}[{index}]"
            frame.stored[spec.item_name] = self.ctx.artifacts.put(item, name=name)
        state.active[index] = frame
        shown = item if is_json else _item_text(item)
        row = state.restore.pop(index, None)
        inside = None if row is None else self._item_rows(state, index, row)
        self._open_frame_row(frame, row, kind="item", item=shown, inside=inside)

    def _item_rows(self, state: ForeachState, index: int, row: StepRunRecord) -> FrameRows:
        """What item ``index`` (its row ``row``, being reopened) is rebuilt from: read ahead
        with that of the items after it that have rows, up to :data:`RESTORE_WINDOW` items
        on, unless an earlier read ahead holds it. Items open in order, so the window is
        used up before the next is read; it replaces the last, which keeps memory bounded."""
        inside = state.read_ahead.pop(row.id, None)
        if inside is None:
            ahead = (state.restore.get(i) for i in range(index + 1, index + RESTORE_WINDOW))
            state.read_ahead = self._read_frames([row, *(r for r in ahead if r is not None)])
            inside = state.read_ahead.pop(row.id)
        return inside

    def _read_frames(self, frames: list[StepRunRecord]) -> dict[int, FrameRows]:
        """What each of the frame rows ``frames`` is rebuilt from, by row id, in two reads:
        the rows under them, and the attempts of the unfinished tasks among those."""
        steps: dict[int, list[StepRunRecord]] = {row.id: [] for row in frames}
        attempts: dict[int, list[AttemptRecord]] = {}
        for child in self.ctx.store.children_of(self.id, steps):
            assert child.parent_id is not None
            steps[child.parent_id].append(child)
            if child.kind == "task" and not child.status.is_terminal:
                attempts[child.id] = []
        for attempt in self.ctx.store.attempts_of(self.id, attempts) if attempts else ():
            attempts[attempt.step_run_id].append(attempt)
        return {row_id: FrameRows(rows, attempts) for row_id, rows in steps.items()}

    def _item_done(
        self, node: Node, frame: Frame, failed: bool, output: ValueRef, *, by_cancel: bool
    ) -> None:
        state = node.foreach
        assert state is not None and frame.index is not None
        state.active.pop(frame.index, None)
        # A failed item is null in the foreach's output (under min_success), not what its
        # steps left: one of several sinks may have succeeded (its row keeps that).
        state.results.put(frame.index, Literal(None) if failed else output)
        if failed:
            state.failed += 1
            state.failed_by_cancel += by_cancel
        self._close_frame_row(frame, failed, output)
        # A frame and its nodes refer to each other: break the cycle so that the finished item
        # is freed now, not at the next full collection (rare with the engine's thresholds,
        # see kaon.engine.engine.tune_gc), which would make memory grow with the items.
        frame.nodes.clear()
        self._advance_foreach(node, state)

    def _start_loop(self, node: Node, spec: LoopSpec) -> None:
        existing = self._children_rows(node)
        self._run_container(node)
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
        self,
        node: Node,
        state: LoopState,
        frame: Frame,
        failed: bool,
        output: ValueRef,
        *,
        by_cancel: bool,
    ) -> None:
        self._close_frame_row(frame, failed, output)
        state.frame = None
        if failed:
            self._complete_container(node, True, output, by_cancel=by_cancel)
            return
        spec = state.spec
        try:
            stop = self.resolver.condition(frame, spec.until, spec.location.with_field("until"))
        except Exception as exc:  # a user's value or expression: the step fails
            self._close_unreached(node, _S.SKIPPED)
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

    def _start_wait(self, node: Node, spec: WaitSpec) -> None:
        if node.status is not _S.WAITING:
            self._set(node, _S.WAITING, started_at=self.ctx.clock())
        self.waiting.append(node)
        if node.timeout_s is not None:
            started = node.started_at or self.ctx.clock()
            self._arm(node, "wait_timeout", started + node.timeout_s)

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
        try:
            params = bind_params(sub, values)
        except ParameterError as exc:
            raise _at_sub_inputs(exc, node.path, spec) from None
        existing = self._children_rows(node)
        self._run_container(node)
        frame = self._new_frame(
            sub.graph, f"{node.path}.", params, sub.defaults, container=node, scope=None
        )
        frame.row_id = node.row_id
        node.sub = frame
        self._restore_frame(frame, existing)
        self._seed(frame)

    def _open_frame_row(
        self,
        frame: Frame,
        row: StepRunRecord | None,
        *,
        kind: str,
        item: Any,
        inside: FrameRows | None = None,
    ) -> None:
        """Open ``frame``'s row: insert it, or reopen ``row`` and rebuild the frame from what
        is inside it (``inside`` when read ahead, else read here)."""
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
            if row.status in (_S.FAILED, _S.CANCELLED) and row.ended_at is not None:
                frame.ended_at = row.ended_at  # it ended before the stop: it stays ended
            elif row.status is not _S.RUNNING:
                # A restart reset its start: its duration counts from this opening.
                changes: dict[str, Any] = {"started_at": now} if row.started_at is None else {}
                if kind == "item" and row.item != item:
                    # A restart redid the items list: the row shows the item it runs now.
                    changes["item"] = item
                self.ctx.batch.update_step_run(
                    self.id, row.id, status=_S.RUNNING, ended_at=None, **changes
                )
            if inside is None:
                self._restore_frame(frame, self.ctx.store.step_runs(self.id, parent_id=row.id))
            else:
                self._restore_frame(frame, inside.steps, inside.attempts)
        self._seed(frame)

    def _close_frame_row(self, frame: Frame, failed: bool, output: ValueRef) -> None:
        outputs = encode_outputs({RETURN: output})
        now = self.ctx.clock()
        if failed:
            error = self._frame_error(frame)
            self._frame_row(frame, _S.FAILED, outputs=outputs, error=error, ended_at=now)
        else:
            self._frame_row(frame, _S.SUCCEEDED, outputs=outputs, ended_at=now)

    def _restore_frame(
        self,
        frame: Frame,
        rows: list[StepRunRecord],
        attempts: Mapping[int, list[AttemptRecord]] | None = None,
    ) -> None:
        """Rebuild a frame's nodes from their rows (resume, restart, or a fresh run: none),
        and its unfinished tasks' from their attempts (by step run id: those ``attempts``
        holds, the others read in one query)."""
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
            if row.status is _S.PENDING and row.reason == USER_SKIP:  # a skip not yet applied
                node.user_output = (node.outputs or {}).get(RETURN)
            self._restore_decisions(node, row)
            restored.append((node, row))
        for node in frame.nodes.values():
            if node.done:
                frame.remaining -= 1
                for succ in frame.compiled.successors[node.spec.id]:
                    frame.nodes[succ].deps_left -= 1
        tasks = [r.id for n, r in restored if not n.done and isinstance(n.spec, TaskSpec)]
        found = self._task_attempts(tasks, attempts or {})
        for node, row in restored:
            if not node.done:  # (resuming one may end others: a failure stops its frame)
                self._resume_node(node, row, found.get(row.id, []))

    def _task_attempts(
        self, step_run_ids: list[int], known: Mapping[int, list[AttemptRecord]]
    ) -> dict[int, list[AttemptRecord]]:
        """The attempts of ``step_run_ids`` by id, in order: those ``known``, the others
        read in one query."""
        found = {i: known[i] for i in step_run_ids if i in known}
        missing = [i for i in step_run_ids if i not in known]
        for attempt in self.ctx.store.attempts_of(self.id, missing) if missing else ():
            found.setdefault(attempt.step_run_id, []).append(attempt)
        return found

    def _reattached(self, node: Node, key: AttemptKey, started_at: float) -> None:
        """The executor still runs attempt ``key`` of ``node``: wait for its events again
        (its time limit still counts from when it started)."""
        node.running = key
        self.inflight[key] = node
        timeout = node.timeout_s
        if timeout is not None:
            self.ctx.timers.add(started_at + timeout, "timeout", self.id, key=key)
        self._event("attempt_reattached", {"attempt": key[2]}, key[1])

    def _restore_decisions(self, node: Node, row: StepRunRecord) -> None:
        """Rebuild what a restored row decided, as :meth:`_terminal` did when it happened: a
        failure under ``finish_running`` started draining the run; one that an ``ignore``
        container holds halted the foreaches between them (no new item starts).

        Only a failure of the run's current execution decides: one that ended before the
        run last started (kept failed by ``restart --from X --only``) belonged to the run
        the restart ended, and does not stop what the restart redoes."""
        if node.status is not _S.FAILED or node.failure_ignored:
            return
        began = self.record.started_at
        if row.ended_at is not None and began is not None and row.ended_at < began:
            return
        effect = node.failure_effect
        if effect is FailureMode.FINISH_RUNNING:
            self.draining = True
            self.error = self.error or f"step {node.path} failed"
        elif effect is FailureMode.IGNORE:
            self._halt_containers(node)

    def _resume_node(self, node: Node, row: StepRunRecord, attempts: list[AttemptRecord]) -> None:
        """Take up ``node`` where its row (and, for a task, its ``attempts``) left it."""
        if not isinstance(node.spec, TaskSpec):
            if node.status in (_S.RUNNING, _S.WAITING):
                self._launch(node)
            elif node.status is _S.PAUSED:
                self._hold(node)  # still held at its breakpoint
            return
        node.next_number = max((a.number for a in attempts), default=0) + 1
        if node.status is _S.PAUSED:
            self._hold(node)
            return
        now = self.ctx.clock()
        began = False  # an attempt had started on a worker (not only been sent to one)
        unstarted = 0  # the last attempts lost in a row before their start was recorded
        for attempt in attempts:
            if attempt.status == "lost" or attempt.status == "running":
                unstarted = 0 if attempt.worker else unstarted + 1
            else:
                unstarted = 0
            if attempt.status == "running":
                key = (self.id, row.id, attempt.number)
                if node.status is _S.RUNNING and node.running is None and self.ctx.reattach(key):
                    self._reattached(node, key, attempt.started_at or now)
                    continue
                began = began or bool(attempt.worker)
                lost = ErrorInfo(
                    "EngineLost", "the engine stopped while this attempt ran", platform=True
                )
                self.ctx.batch.update_attempt(
                    key, status="lost", ended_at=now, error=error_dict(lost)
                )
        if node.running is not None:
            return  # re-attached: its events follow as if this engine had started it
        if node.status in (_S.RUNNING, _S.QUEUED):
            # Only an attempt that had begun counts against the platform budget: one still
            # queued in a worker (sent ahead, see Executor.prefetch) lost nothing but its place.
            node.platform_attempts += 1 if began else 0
            if node.platform_attempts > node.retry.platform_attempts:
                error = ErrorInfo(
                    "EngineLost",
                    "the engine stopped while the step ran, and the platform retry budget "
                    f"({node.retry.platform_attempts}) is spent",
                    platform=True,
                )
                self._fail(node, error, platform_attempts=node.platform_attempts)
                return
            if unstarted >= UNSTARTED_LOSS_LIMIT and self.ctx.steps_in_engine_process:
                error = ErrorInfo(
                    "EngineLost",
                    f"the engine stopped {unstarted} times in a row while this step was sent "
                    "to run and before its start was recorded: the step may be what stops it "
                    "(os._exit, a crash or memory exhaustion in the engine's process)",
                    platform=True,
                )
                self._fail(node, error, platform_attempts=node.platform_attempts)
                return
            if node.status is _S.RUNNING:
                node.finishing = True
                self._set(node, _S.QUEUED, platform_attempts=node.platform_attempts)
            else:  # queued again after a loss (a stop, a lost worker): a drain lets it end
                node.finishing = _lost(attempts[-1]) if attempts else False
            self._enqueue(node)
        elif node.status is _S.RETRYING:
            # After a platform failure (the artifact store failed it): a drain lets it run.
            node.finishing = _lost(attempts[-1]) if attempts else False
            self._arm(node, "retry", row.next_attempt_at or now)


def _lost(attempt: AttemptRecord) -> bool:
    """Whether an attempt was lost to the platform (its engine stopped, its worker died)."""
    return attempt.status == "lost" or bool((attempt.error or {}).get("platform"))


def _opened_before(state: ForeachState, index: int) -> bool:
    """Whether item ``index`` was opened before a stop (or has finished): a resumed drain or
    halt (rebuilt from a failure's row while the foreach reopens its items) reopens such an
    item, so that its running steps end as they would have without the stop, but no new one."""
    if index in state.finished:
        return True
    row = state.restore.get(index)
    return row is not None and row.status is not _S.PENDING


def _item_text(item: Any) -> str:
    """How a foreach item that is not plain JSON is shown in its row: its repr, bounded."""
    try:
        text = repr(item)
    except Exception:  # user code: its __repr__ may raise anything
        text = f"<{type(item).__name__}>"
    return bounded_text(readable_text(text), ITEM_TEXT_CHARS)

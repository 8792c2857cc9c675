"""Run reads for people (API, UI, CLI) that cost what they show, as typed views.

A run opens as its summary (:meth:`RunReads.summary`): the run, task counts by status
computed in the database, and the top level of its graph with edges from the definition, each
foreach, loop or subworkflow rolled up as one node with counts of its children by status. A
node opens level by level (:meth:`RunReads.children`: a page of a parent's children,
filterable and sortable); one step run's detail is an indexed lookup (:meth:`RunReads.step`);
logs come in windows (:meth:`RunReads.logs`). None of these loads every step run of a run.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from pydantic import Field

from kaon.artifacts.base import ArtifactStore
from kaon.errors import (
    ConfigurationError,
    DefinitionError,
    Location,
    NotFoundError,
    ParameterError,
    Problem,
)
from kaon.model.codec import workflow_from_dict
from kaon.model.graph import dependencies
from kaon.model.specs import WaitSpec, WorkflowSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.service._metric_pages import MetricCursor, filled_metric_page
from kaon.service.limits import MAX_RUN_METRICS_PAGE, MAX_RUNS_OFFSET, RUN_METRICS
from kaon.service.step_inputs import MAX_DEPTH, InputView, resolve_inputs, shown_json
from kaon.service.views import (
    MetricView,
    RunDetail,
    RunView,
    StepRunView,
    View,
    error_view,
    metric_view,
    run_view,
    step_duration,
    step_view,
)
from kaon.store.base import AttemptRecord, StateStore, StepRunRecord
from kaon.store.reads import MAX_PAGE, SORT_KEYS, SQLRunReads, StepQuery
from kaon.store.sql import SQLStore

_ITEM_CHARS = 200


def check_run_list(status: str | None, limit: int, offset: int) -> None:
    """Refuse a run list's arguments the way ``GET /runs`` would, in the same words on
    both sides (the local service and the remote one, before asking): a status that is no
    :class:`RunStatus`, a ``limit`` below 1 or an ``offset`` out of 0 to
    :data:`MAX_RUNS_OFFSET`. Raises ParameterError naming the field. (Locally, a bad status
    was a bare ValueError and ``limit=-1`` listed every run: SQLite's ``LIMIT -1``.)"""
    problems: list[Problem] = []
    known = [s.value for s in RunStatus]
    if status is not None and status not in known:
        message = f"must be one of {', '.join(known)}, not {status!r:.100}"
        problems.append(Problem(message, Location(field="status")))
    if limit < 1:
        problems.append(Problem(f"must be at least 1, not {limit}", Location(field="limit")))
    if not 0 <= offset <= MAX_RUNS_OFFSET:
        message = f"must be 0 to {MAX_RUNS_OFFSET}, not {offset}"
        problems.append(Problem(message, Location(field="offset")))
    if problems:
        raise ParameterError(problems)


STEP_METRICS = 1000
_CONTAINERS = ("foreach", "loop", "subworkflow", "item", "iteration")


class NodeView(View):
    """One step run as a row or a graph node; a container carries counts of its children."""

    path: str
    step_id: str
    kind: str
    status: str
    index: int | None = None
    item: str | None = Field(default=None, description="the item (JSON, cut short)")
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    reason: str = ""
    error: str | None = Field(default=None, description="Type: first line of the message")
    children: dict[str, int] = Field(default_factory=dict, description="children by status")
    started: bool = Field(default=True, description="False for a step with no step run yet")
    items: int | None = Field(
        default=None,
        description="a foreach's number of items (its children are created as they start)",
    )
    held: int = Field(default=0, description="steps held at a breakpoint inside it, all levels")


class EdgeView(View):
    """A dependency of the top-level graph: ``target`` needs ``source``."""

    source: str
    target: str


class RunSummary(RunView):
    """A run as it opens: counts by status and its top-level graph (``GET .../summary``)."""

    labels: dict[str, Any] = Field(default_factory=dict)
    started_by: str | None = Field(default=None, description="who or what started the run")
    tasks: dict[str, int] = Field(default_factory=dict, description="tasks by status, all levels")
    nodes: list[NodeView] = Field(default_factory=list)
    edges: list[EdgeView] = Field(default_factory=list)
    last_event_id: int = Field(default=0, description="follow ``GET /events?after=`` from here")
    last_log_id: int = Field(
        default=0, description="follow ``GET /runs/{id}/log?after=`` from here"
    )


class StepPageView(View):
    """A page of the children of a parent (the top level when ``parent`` is None)."""

    parent: str | None = None
    total: int
    offset: int
    limit: int
    counts: dict[str, int] = Field(default_factory=dict, description="all children by status")
    items: list[NodeView] = Field(default_factory=list)


class ProgressView(View):
    """How far a step run is: its last reported fraction (a task) or its children done (a
    foreach or loop), and the time left at the pace so far."""

    fraction: float | None = Field(default=None, description="0..1; None when only a message")
    message: str = ""
    done: int | None = Field(default=None, description="children finished (a container)")
    total: int | None = Field(default=None, description="children in all (a container)")
    eta_s: float | None = Field(default=None, description="seconds left at the pace so far")


class WaitView(View):
    """What a wait step waits for: a signal's name, and the condition it must meet."""

    signal: str
    match: str | None = None


class StepDetail(View):
    """One step run with its attempts, outputs, metrics, progress and cache decision."""

    step: StepRunView
    parent: str | None = None
    item: Any = None
    cache_key: str | None = None
    cached_from: str | None = None
    metrics: list[MetricView] = Field(
        default_factory=list,
        description="its last STEP_METRICS values (a cached step: those it reused)",
    )
    metrics_truncated: bool = Field(
        default=False, description="more values than shown: all in GET /runs/R/metrics"
    )
    progress: ProgressView | None = None
    inputs: list[InputView] = Field(
        default_factory=list,
        description="a task's inputs: their sources, resolved now (values cut short)",
    )
    wait: WaitView | None = Field(
        default=None, description="a wait step: the signal it waits for (the UI sends it)"
    )


class LogLineView(View):
    """One log line with its id (to page on)."""

    id: int
    attempt: int
    at: float
    stream: str
    text: str
    path: str | None = Field(default=None, description="the step run's (a run-wide window)")


class LogWindowView(View):
    """A window of a step run's log lines (or, without ``path``, of the whole run's),
    oldest first."""

    path: str | None = None
    lines: list[LogLineView] = Field(default_factory=list)


class RunPage(RunDetail):
    """A run with one page of its step runs (``GET /runs/{id}``): the top level by default,
    every level in creation order with ``all_steps``; deeper levels page through
    ``GET /runs/{id}/children``. Counts come from the database; metrics are the first
    ``metrics_limit`` reported."""

    steps_total: int = Field(
        default=0, description="step runs in all (of the top level, or all levels)"
    )
    offset: int = 0
    limit: int = MAX_PAGE
    top_counts: dict[str, int] = Field(
        default_factory=dict,
        description="the top level's step runs by status, all of them (whatever the page shows)",
    )


class RunReads:
    """Bounded reads of runs over a SQL state store (see the module docstring)."""

    def __init__(self, store: StateStore, artifacts: ArtifactStore | None = None) -> None:
        if not isinstance(store, SQLStore):
            raise ConfigurationError(f"run reads need a SQL store, not {type(store).__name__}")
        self.store = store
        self.reads = SQLRunReads(store)
        self.artifacts = artifacts  # to resolve a step's inputs (None: they are not)

    def summary(self, run_id: str) -> RunSummary:
        """The run, its counts by status and its top-level graph. Raises NotFoundError."""
        record = self.store.get_run(run_id)
        last_event = self.reads.last_event_id(run_id)
        now = time.time()
        tasks = self._task_counts(run_id, last_event)
        top = self.reads.step_page(run_id, StepQuery(limit=MAX_PAGE)).rows
        counts = self._children_counts(
            run_id, [r.id for r in top if r.kind in _CONTAINERS], last_event
        )
        rows = {row.path: node_view(row, counts.get(row.id), now) for row in top}
        for row in top:
            if row.kind == "foreach":
                rows[row.path].items = self.reads.foreach_items(run_id, row.id)
        if tasks.get(StepStatus.PAUSED):
            held = self.store.step_runs(run_id, all_levels=True, statuses=[StepStatus.PAUSED])
            for path in (h.path for h in held):
                top_path = re.split(r"[.\[]", path, maxsplit=1)[0]
                if top_path in rows and top_path != path:
                    rows[top_path].held += 1
        order, edges = _graph(self.store, record.definition_hash)
        nodes = [
            rows.pop(step_id) if step_id in rows else _unstarted(step_id, kind)
            for step_id, kind in order
        ]
        summary = RunSummary.of(**dict(run_view(record, now)))
        summary.labels = record.labels
        by = record.labels.get("by")
        summary.started_by = str(by) if by is not None else None
        summary.tasks = _plain(tasks)
        summary.last_event_id = last_event
        summary.last_log_id = self.reads.last_log_id(run_id)
        summary.nodes = nodes + list(rows.values())
        summary.edges = [EdgeView.of(source=s, target=d) for s, d in edges]
        return summary

    def page(
        self,
        run_id: str,
        *,
        all_steps: bool = False,
        limit: int = MAX_PAGE,
        offset: int = 0,
        metrics_limit: int = RUN_METRICS,
        statuses: tuple[str, ...] = (),
        kind: str | None = None,
        sort: str = "index",
        descending: bool = False,
    ) -> RunPage:
        """The run, its task counts, the top level's step runs counted by status, one page
        of its step runs (each with its attempts, a foreach or loop with its children
        counted by status) and its first metrics: what ``GET /runs/{id}`` answers, at a cost
        that follows the page, not the run. ``statuses`` and ``kind`` keep only the step
        runs in those statuses and of that kind (``kaon show --status failed`` asks for the
        failed tasks of every level); ``sort`` (one of :data:`SORTS`) and ``descending``
        order a page of the top level (``kaon run``'s report asks for the slowest steps);
        every level pages in creation order. Raises NotFoundError, and ValueError for a
        bad status, sort or limit."""
        record = self.store.get_run(run_id)
        wanted = tuple(StepStatus(s) for s in statuses)
        last_event = self.reads.last_event_id(run_id)
        tasks = self._task_counts(run_id, last_event)
        top = self._top_counts(run_id, last_event)
        known: int | None = None
        if all_steps:
            if kind == "task" and wanted:  # the counts by status tell the total
                known = sum(tasks.get(status, 0) for status in wanted)
            found = self.reads.all_levels_page(
                run_id, limit=limit, offset=offset, statuses=wanted, kind=kind, total=known
            )
        else:
            query = StepQuery(
                statuses=wanted,
                kind=kind,
                sort=sort,
                descending=descending,
                limit=limit,
                offset=offset,
            )
            if query.by_status_only:  # the top level's counts tell the total
                known = sum(top.get(status, 0) for status in wanted or tuple(top))
            found = self.reads.step_page(run_id, query, total=known)
        rows = found.rows
        attempts: dict[int, list[AttemptRecord]] = {}
        for attempt in self.store.attempts_of(run_id, [row.id for row in rows]):
            attempts.setdefault(attempt.step_run_id, []).append(attempt)
        counts = self._children_counts(
            run_id, [row.id for row in rows if row.kind in ("foreach", "loop")], last_event
        )
        now = time.time()
        detail = RunPage.of(**dict(run_view(record, now)))
        detail.steps = [
            step_view(row, attempts.get(row.id, []), _plain(counts.get(row.id, {})), now)
            for row in rows
        ]
        detail.tasks = _plain(tasks)
        detail.top_counts = _plain(top)
        detail.steps_total, detail.offset, detail.limit = found.total, offset, limit
        metrics = self.metrics(run_id, limit=metrics_limit + 1)
        detail.metrics = metrics[:metrics_limit]
        detail.metrics_truncated = len(metrics) > metrics_limit
        return detail

    def _task_counts(self, run_id: str, last_event: int) -> dict[StepStatus, int]:
        """Tasks by status, counted once per state of the run (see :data:`_COUNTS`)."""
        return self._counted(run_id, "tasks", last_event, self.reads.status_counts)

    def _top_counts(self, run_id: str, last_event: int) -> dict[StepStatus, int]:
        """The top level's step runs by status, counted once per state of the run."""
        return self._counted(run_id, "top", last_event, self.reads.top_counts)

    def _counted(
        self,
        run_id: str,
        what: str,
        last_event: int,
        count: Callable[[str], dict[StepStatus, int]],
    ) -> dict[StepStatus, int]:
        """``count(run_id)``, kept in :data:`_COUNTS` for this state of the run."""
        key = (self.store.url, run_id, what, last_event)
        found: dict[StepStatus, int] | None = _fresh(_COUNTS.get(key))
        if found is None:
            found = count(run_id)
            _COUNTS.put(key, (time.monotonic(), found))
        return dict(found)

    def _children_counts(
        self, run_id: str, parent_ids: list[int], last_event: int
    ) -> dict[int, dict[StepStatus, int]]:
        """Children by status of each parent, counted once per state of the run."""
        found: dict[int, dict[StepStatus, int]] = {}
        missing: list[int] = []
        for parent in parent_ids:
            cached = _fresh(_COUNTS.get((self.store.url, run_id, parent, last_event)))
            if cached is None:
                missing.append(parent)
            elif cached:
                found[parent] = dict(cached)
        if missing:
            counted = self.reads.children_counts(run_id, missing)
            for parent in missing:
                counts = counted.get(parent, {})
                _COUNTS.put(
                    (self.store.url, run_id, parent, last_event), (time.monotonic(), counts)
                )
                if counts:
                    found[parent] = dict(counts)
        return found

    def children(
        self,
        run_id: str,
        parent: str | None = None,
        *,
        statuses: tuple[str, ...] = (),
        step_id: str | None = None,
        index_from: int | None = None,
        index_to: int | None = None,
        text: str | None = None,
        sort: str = "index",
        descending: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> StepPageView:
        """A page of the children of ``parent`` (a path; None: the top level), filtered and
        sorted, each container with counts of its own children. Raises NotFoundError, and
        ValueError for a bad status, sort key or limit."""
        parent_id = self.reads.step_run(run_id, parent).id if parent else None
        query = StepQuery(
            parent_id=parent_id,
            statuses=tuple(StepStatus(s) for s in statuses),
            step_id=step_id,
            index_from=index_from,
            index_to=index_to,
            text=text,
            sort=sort,
            descending=descending,
            limit=limit,
            offset=offset,
        )
        all_counts: dict[StepStatus, int] = {}
        known: int | None = None
        if parent_id is not None:
            # One GROUP BY gives the counts shown above the table and, unless other filters
            # narrow the page, its total: no second scan of the children.
            last_event = self.reads.last_event_id(run_id)
            all_counts = self._children_counts(run_id, [parent_id], last_event).get(parent_id, {})
            if query.by_status_only:
                wanted = query.statuses or tuple(all_counts)
                known = sum(all_counts.get(status, 0) for status in wanted)
        page = self.reads.step_page(run_id, query, total=known)
        counts = self.reads.children_counts(
            run_id, [r.id for r in page.rows if r.kind in _CONTAINERS]
        )
        made: dict[int, int] = {}  # a task's attempts, as its step view counts them
        tasks = [r.id for r in page.rows if r.kind == "task"]
        for attempt in self.store.attempts_of(run_id, tasks) if tasks else ():
            made[attempt.step_run_id] = made.get(attempt.step_run_id, 0) + 1
        now = time.time()
        return StepPageView.of(
            parent=parent,
            total=page.total,
            offset=offset,
            limit=limit,
            counts=_plain(all_counts),
            items=[node_view(row, counts.get(row.id), now, made.get(row.id)) for row in page.rows],
        )

    def step(self, run_id: str, path: str) -> StepDetail:
        """One step run with its attempts, outputs, children counts, metrics (the last
        :data:`STEP_METRICS`: each metric's latest value is there; a cached step's are those
        it reused) and cache decision: indexed lookups only. Raises NotFoundError."""
        row = self.reads.step_run(run_id, path)
        attempts = self.store.attempts(run_id, row.id)
        counts = self.reads.children_counts(run_id, [row.id]).get(row.id, {})
        now = time.time()
        view = step_view(row, attempts, _plain(counts), now)
        parent = self.reads.step_run_by_id(run_id, row.parent_id) if row.parent_id else None
        metrics = [
            metric_view(m, path)
            for m in self.reads.newest_step_metrics(run_id, row.id, limit=STEP_METRICS + 1)
        ]
        if not metrics and row.status is StepStatus.CACHED and row.cached_from:
            metrics = self._reused_step_metrics(row, STEP_METRICS + 1)
        truncated = len(metrics) > STEP_METRICS
        return StepDetail(
            step=view,
            parent=parent.path if parent else None,
            item=row.item,
            cache_key=row.cache_key,
            cached_from=row.cached_from,
            metrics=metrics[-STEP_METRICS:],
            metrics_truncated=truncated,
            progress=self._progress(run_id, row, counts, now),
            inputs=self._inputs(run_id, row, parent),
            wait=self._wait(run_id, row),
        )

    def _wait(self, run_id: str, row: StepRunRecord) -> WaitView | None:
        """The signal a wait step waits for, from the run's definition (its wait steps of
        that id; None when they disagree or the definition cannot be read)."""
        if row.kind != "wait":
            return None
        try:
            spec = _workflow(self.store, self.store.get_run(run_id).definition_hash)
        except (DefinitionError, NotFoundError):
            return None
        found = {
            (step.signal, step.match)
            for _path, step in spec.graph.walk()
            if isinstance(step, WaitSpec) and step.id == row.step_id
        }
        if len(found) != 1:
            return None
        signal, match = found.pop()
        return WaitView(signal=signal, match=match)

    def _reused_step_metrics(self, row: StepRunRecord, limit: int) -> list[MetricView]:
        """The last metrics of the execution a cached step reused (``reused_from`` set)."""
        source_run, _, source_path = (row.cached_from or "").partition(":")
        try:
            source = self.reads.step_run(source_run, source_path)
        except NotFoundError:
            return []
        found = self.reads.newest_step_metrics(source_run, source.id, limit=limit)
        return [metric_view(m, row.path, row.cached_from) for m in found]

    def _inputs(
        self, run_id: str, row: StepRunRecord, parent: StepRunRecord | None
    ) -> list[InputView]:
        """A task's inputs resolved now (see :mod:`kaon.service.step_inputs`): one lookup
        per enclosing level and per upstream step its inputs name."""
        if self.artifacts is None or row.kind != "task":
            return []
        ancestors: list[StepRunRecord] = []
        while parent is not None and len(ancestors) < MAX_DEPTH:
            ancestors.append(parent)
            parent = (
                self.reads.step_run_by_id(run_id, parent.parent_id) if parent.parent_id else None
            )
        record = self.store.get_run(run_id)
        try:
            spec = _workflow(self.store, record.definition_hash)
        except (DefinitionError, NotFoundError) as exc:
            return [InputView(name="*", source="", kind="expression", error=str(exc))]
        return resolve_inputs(
            self.store, self.artifacts, record, spec, row, list(reversed(ancestors))
        )

    def _progress(
        self, run_id: str, row: StepRunRecord, counts: dict[StepStatus, int], now: float
    ) -> ProgressView | None:
        """A container's children done, or a task's last reported progress, with an ETA."""
        elapsed = None if row.started_at is None else max(now - row.started_at, 0.0)
        if counts:
            total = sum(counts.values())
            if row.kind == "foreach":  # items are created as they start: count the rest too
                total = max(total, self.reads.foreach_items(run_id, row.id) or 0)
            done = sum(n for status, n in counts.items() if status.is_terminal)
            fraction = done / total if total else None
            view = ProgressView(fraction=fraction, done=done, total=total)
        elif row.kind == "task" and row.status is StepStatus.RUNNING:
            found = self.reads.last_progress(run_id, row.id)
            if found is None:
                return None
            view = ProgressView(fraction=found["fraction"], message=str(found["message"]))
        else:
            return None
        running = row.status.is_terminal is False and row.status is not StepStatus.PENDING
        if running and elapsed and view.fraction and 0 < view.fraction < 1:
            view.eta_s = round(elapsed * (1 - view.fraction) / view.fraction, 1)
        return view

    def metrics(
        self, run_id: str, *, name: str | None = None, limit: int = MAX_RUN_METRICS_PAGE
    ) -> list[MetricView]:
        """The run's first ``limit`` metrics (optionally of one name): the first page of
        :meth:`metrics_page`."""
        return self.metrics_page(run_id, name=name, limit=limit)[0]

    def metrics_page(
        self,
        run_id: str,
        *,
        name: str | None = None,
        after: MetricCursor | None = None,
        limit: int = MAX_RUN_METRICS_PAGE,
    ) -> tuple[list[MetricView], MetricCursor | None]:
        """At most ``limit`` of the run's metrics (optionally of one name) after ``after``,
        with the path of the step that reported each: the run's own in the order reported,
        then those its cached steps reused (the values the execution each reused reported,
        ``reused_from`` naming it); and where the next page starts (None: none remains).
        A keyset page (:mod:`kaon.service._metric_pages`): its cost grows with the metrics
        shown and the cached steps looked at, not with the run or the pages before.
        Raises NotFoundError for an unknown run."""
        self.store.get_run(run_id)
        if limit <= 0:
            return [], None
        points, following = filled_metric_page(self.reads, run_id, after, limit, name=name)
        views = [
            MetricView.of(
                path=p.path,
                name=p.name,
                value=p.value,
                step=p.step,
                at=p.at,
                reused_from=p.reused_from,
            )
            for p in points
        ]
        return views, following

    def logs(
        self,
        run_id: str,
        path: str | None,
        *,
        attempt: int | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        text: str | None = None,
        limit: int = 200,
    ) -> LogWindowView:
        """A window of a step run's log lines (see :meth:`SQLRunReads.log_window`); without
        ``path``, the lines of every step after ``after_id`` (0 by default), each with its
        step's path: what a follower tails in one query."""
        if path is None:
            return self._run_logs(run_id, after_id or 0, limit)
        row = self.reads.step_run(run_id, path)
        records = self.reads.log_window(
            run_id,
            row.id,
            attempt=attempt,
            after_id=after_id,
            before_id=before_id,
            text=text,
            limit=limit,
        )
        lines = [
            LogLineView.of(id=r.id or 0, attempt=r.attempt, at=r.at, stream=r.stream, text=r.text)
            for r in records
        ]
        return LogWindowView.of(path=path, lines=lines)

    def _run_logs(self, run_id: str, after_id: int, limit: int) -> LogWindowView:
        records = self.reads.log_window(run_id, None, after_id=after_id, limit=limit)
        paths = self.reads.paths(run_id, list({r.step_run_id for r in records}))
        lines = [
            LogLineView.of(
                id=r.id or 0,
                attempt=r.attempt,
                at=r.at,
                stream=r.stream,
                text=r.text,
                path=paths.get(r.step_run_id, "?"),
            )
            for r in records
        ]
        return LogWindowView.of(lines=lines)


SORTS = tuple(SORT_KEYS)
SORT_PATTERN = "^(" + "|".join(SORTS) + ")$"
"""What a ``sort`` query parameter may be (``GET /runs/{id}``, ``GET /runs/{id}/children``)."""


def node_view(
    row: StepRunRecord,
    counts: dict[StepStatus, int] | None,
    now: float | None = None,
    attempts: int | None = None,
) -> NodeView:
    """The node view of a step run row (``counts``: its children by status; ``attempts``:
    the attempts it made, when counted, else the row's count of failed ones)."""
    error = error_view(row.error)
    item = None
    if row.item is not None:
        item = shown_json(row.item, _ITEM_CHARS)[0]
    return NodeView.of(
        path=row.path,
        step_id=row.step_id,
        kind=row.kind,
        status=row.status.value,
        index=row.index,
        item=item,
        attempts=row.attempts if attempts is None else attempts,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=step_duration(row, now),
        reason=row.reason,
        error=error.summary if error else None,
        children=_plain(counts or {}),
    )


def _unstarted(step_id: str, kind: str) -> NodeView:
    return NodeView.of(path=step_id, step_id=step_id, kind=kind, status="pending", started=False)


def _plain(counts: dict[StepStatus, int]) -> dict[str, int]:
    return {status.value: n for status, n in sorted(counts.items())}


_Graph = tuple[list[tuple[str, str]], list[tuple[str, str]]]


def _graph(store: StateStore, definition_hash: str) -> _Graph:
    """``(step id, kind)`` of the top level in definition order, and its edges."""
    try:
        return _graph_of(store, definition_hash)
    except (DefinitionError, NotFoundError):
        return [], []


def _workflow(
    store: StateStore, definition_hash: str, data: dict[str, Any] | None = None
) -> WorkflowSpec:
    """The decoded definition of a version (``data``: its stored form, when already read),
    kept in a small cache: a definition never changes."""
    cached: WorkflowSpec | None = _SPECS.get(definition_hash)
    if cached is None:
        if data is None:
            data = store.get_definition(definition_hash).spec
        cached = _SPECS.put(definition_hash, workflow_from_dict(data))
    return cached


def _graph_of(store: StateStore, definition_hash: str) -> _Graph:
    cached: _Graph | None = _GRAPHS.get(definition_hash)
    if cached is None:
        data = store.get_definition(definition_hash).spec
        spec = _workflow(store, definition_hash, data)
        deps, _ = dependencies(spec.graph, strict=False)
        kinds = {s.get("id"): s.get("kind") for s in data.get("graph", {}).get("steps", [])}
        order = [(step.id, str(kinds.get(step.id) or "task")) for step in spec.graph.steps]
        edges = [(source, target) for target, sources in deps.items() for source in sources]
        cached = _GRAPHS.put(definition_hash, (order, edges))
    return cached


class _Lru:
    """A small bounded map (decoded graphs by definition hash, counts by run state)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: Hashable, value: Any) -> Any:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


_GRAPHS = _Lru(256)
_SPECS = _Lru(64)
# Counts by status, keyed by (store, run, parent or "tasks", the run's last event id). Every
# change of a step run's status is committed with an event of its run, so a run whose last
# event is the same has the same counts: a finished run's 100,000 items are counted once, and
# an active run's counts are fresh after each event. An event that commits after a later one
# (two writers of one active run) is covered by the run's next event, and at worst by the
# entry's age limit.
_COUNTS = _Lru(4096)
_COUNTS_MAX_AGE_S = 30.0


def _fresh(entry: tuple[float, Any] | None) -> Any:
    """The counts of a cache entry younger than the age limit, else None."""
    if entry is None or time.monotonic() - entry[0] > _COUNTS_MAX_AGE_S:
        return None
    return entry[1]


def forget_counts() -> None:
    """Drop every cached count (a benchmark measures the first read after a change)."""
    with _COUNTS.lock:
        _COUNTS.items.clear()

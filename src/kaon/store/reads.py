"""Reads that cost what they show: counts computed in the database, pages of step runs.

A run of 100,000 foreach items must open as fast as a run of ten steps. Nothing here loads
every step run of a run: counts are ``GROUP BY`` queries on covering indexes
(``ix_step_runs_kind_status``, ``ix_step_runs_parent_status``), lists are pages (a limit and
an offset, with the total matching count), one step run is an indexed lookup by path, and log
reads take a window (a tail, or the lines after or before an id).

:class:`SQLRunReads` works on a :class:`~kaon.store.sql.SQLStore`'s connections; the service
layer (:mod:`kaon.service.run_reads`) turns its records into views.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from kaon.model.status import RunStatus, StepStatus
from kaon.store._lite import like_pattern, text_patterns
from kaon.store._rows import run_record, step_run_record
from kaon.store.base import ArtifactRecord, LogRecord, MetricRecord, RunRecord, StepRunRecord
from kaon.store.sql import SQLStore

# How a page of step runs may be ordered (ties broken by id); the column expressions are
# in kaon.store._queries.
SORT_KEYS = ("index", "id", "path", "status", "started_at", "ended_at", "duration", "attempts")
MAX_PAGE = 1000


def _text_params(text: str | None, dialect: str) -> dict[str, str | None]:
    """The parameters of a text filter (both None without one)."""
    if not text:
        return {"pattern": None, "json_pattern": None}
    return dict(text_patterns(text, dialect))


@dataclass(frozen=True, slots=True)
class StepQuery:
    """Which step runs a page shows: the children of one parent, filtered and sorted.

    ``parent_id`` ``None`` is the run's top level. ``statuses`` keeps only those statuses;
    ``kind`` only step runs of that kind (``task``, ``item``...); ``step_id`` only one step of
    the body; ``index_from``/``index_to`` an inclusive range of
    item indexes (or loop iterations); ``text`` a case-insensitive substring of the path, the
    reason or the item (of a string in it, as written). ``sort`` is one of :data:`SORT_KEYS`.
    """

    parent_id: int | None = None
    statuses: tuple[StepStatus, ...] = ()
    kind: str | None = None
    step_id: str | None = None
    index_from: int | None = None
    index_to: int | None = None
    text: str | None = None
    sort: str = "index"
    descending: bool = False
    limit: int = 100
    offset: int = 0

    @property
    def filters(self) -> tuple[str, ...]:
        """The filters the query sets, in a fixed order (the shape of its statement)."""
        chosen = (
            ("statuses", bool(self.statuses)),
            ("kind", bool(self.kind)),
            ("step_id", bool(self.step_id)),
            ("index_from", self.index_from is not None),
            ("index_to", self.index_to is not None),
            ("text", bool(self.text)),
        )
        return tuple(name for name, on in chosen if on)

    def params(self, run_id: str, dialect: str) -> dict[str, Any]:
        """The statement parameters of the query's filters on a store of ``dialect``."""
        return {
            "run_id": run_id,
            "parent_id": self.parent_id,
            "statuses": [s.value for s in self.statuses],
            "kind": self.kind,
            "step_id": self.step_id,
            "index_from": self.index_from,
            "index_to": self.index_to,
            **_text_params(self.text, dialect),
        }

    @property
    def by_status_only(self) -> bool:
        """True when nothing but statuses filters the children (counts by status tell the
        total)."""
        narrowed = (self.kind, self.step_id, self.index_from, self.index_to, self.text)
        return all(value is None or value == "" for value in narrowed)

    def __post_init__(self) -> None:
        if self.sort not in SORT_KEYS:
            raise ValueError(
                f"unknown sort key {self.sort!r}; choose one of {', '.join(SORT_KEYS)}"
            )
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        if self.offset < 0:
            raise ValueError("offset must not be negative")


@dataclass(slots=True)
class StepPage:
    """One page of step runs and how many match the query in all."""

    total: int
    rows: list[StepRunRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunHistoryQuery:
    """Which runs of one workflow a history page shows, newest first.

    ``statuses`` keeps only those; ``since``/``until`` bound the creation time (Unix
    seconds, inclusive); ``text`` is a case-insensitive substring of the run id, its
    parameters or its labels (of a key or string value in them, as written: ``ü``, not the
    ``\\u00fc`` a SQLite store keeps).
    """

    workflow: str
    statuses: tuple[RunStatus, ...] = ()
    since: float | None = None
    until: float | None = None
    text: str | None = None
    limit: int = 25
    offset: int = 0
    before: tuple[float, str] | None = None
    """The keyset ``(created_at, id)`` of the run before the page: the page starts after it
    (then ``offset`` more runs on), whatever the runs before it."""


@dataclass(slots=True)
class RunHistoryPage:
    """One page of a workflow's runs and how many match in all."""

    total: int
    rows: list[RunRecord] = field(default_factory=list)


class SQLRunReads:
    """Bounded reads of one run's step runs, logs and metrics over a :class:`SQLStore`.

    Every method raises :class:`~kaon.errors.NotFoundError` for an unknown run (or step run)
    and :class:`~kaon.errors.StoreError` when the database fails. The statements are in
    :mod:`kaon.store._queries`.
    """

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def status_counts(self, run_id: str, kind: str = "task") -> dict[StepStatus, int]:
        """How many step runs of ``kind`` (``task``, ``item``, ``foreach``...) are in each
        status, all levels included: one ``GROUP BY`` on a covering index."""
        rows = self.store.query(("kind_status_counts", True), run_id=run_id, kind=kind)
        if not rows:
            self.store.require_run(run_id)
        return {StepStatus(row["status"]): int(row["n"]) for row in rows}

    def top_counts(self, run_id: str) -> dict[StepStatus, int]:
        """How many of the run's top-level step runs are in each status: one ``GROUP BY`` over
        the top level's range of ``ix_step_runs_parent_index`` (a few rows per step of the
        graph), not over the run's step runs."""
        rows = self.store.query(("top_counts",), run_id=run_id)
        return {StepStatus(row["status"]): int(row["n"]) for row in rows}

    def children_counts(
        self, run_id: str, parent_ids: Sequence[int]
    ) -> dict[int, dict[StepStatus, int]]:
        """For each of ``parent_ids`` (containers or frames), how many direct children are in
        each status; parents without children are absent."""
        if not parent_ids:
            return {}
        found: dict[int, dict[StepStatus, int]] = {}
        rows = self.store.query(("children_counts",), run_id=run_id, parent_ids=list(parent_ids))
        for row in rows:
            found.setdefault(int(row["parent_id"]), {})[StepStatus(row["status"])] = int(row["n"])
        return found

    def step_page(self, run_id: str, query: StepQuery, *, total: int | None = None) -> StepPage:
        """The page of step runs ``query`` asks for, with the total that match it (counted
        unless the caller knows it already, from :meth:`children_counts`)."""
        top, filters = query.parent_id is None, query.filters
        params = query.params(run_id, self.store.dialect)
        seek = self._seek(run_id, query, total)
        key = ("step_page", top, filters, query.sort, query.descending, seek is not None)
        rows = self.store.query(
            key, **params, limit=query.limit, offset=query.offset, seek_index=seek
        )
        if total is None:
            total = int(self.store.query_value(("step_count", top, filters), **params) or 0)
        if not total:
            self.store.require_run(run_id)
        return StepPage(total=total, rows=[step_run_record(row) for row in rows])

    def all_levels_page(
        self,
        run_id: str,
        *,
        limit: int,
        offset: int = 0,
        statuses: Sequence[StepStatus] = (),
        kind: str | None = None,
        total: int | None = None,
    ) -> StepPage:
        """A page of the step runs of every level, in creation (id) order, optionally only
        those in ``statuses`` and of ``kind``, with how many match (counted on an index
        unless the caller knows it already, e.g. from :meth:`status_counts`). With a kind and
        one status the page is read in order from ``ix_step_runs_kind_status``, so the first
        failed tasks of a run of any size cost what they show."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        shape = (bool(statuses), bool(kind))
        params = {"run_id": run_id, "statuses": [s.value for s in statuses], "kind": kind}
        rows = self.store.query(("all_levels", *shape, False), **params, limit=limit, offset=offset)
        if total is None:
            total = int(self.store.query_value(("all_levels", *shape, True), **params) or 0)
        if not rows:
            self.store.require_run(run_id)
        return StepPage(total=total, rows=[step_run_record(row) for row in rows])

    def run_history(self, query: RunHistoryQuery) -> RunHistoryPage:
        """A page of a workflow's runs, newest first, with the total matching (both on the
        ``(workflow, created_at)`` index); with ``before``, the page seeks that run's place
        in the index (the total still counts every run matching the filters)."""
        chosen = (
            ("statuses", bool(query.statuses)),
            ("since", query.since is not None),
            ("until", query.until is not None),
            ("text", bool(query.text)),
        )
        filters = tuple(name for name, on in chosen if on)
        params = {
            "workflow": query.workflow,
            "statuses": [s.value for s in query.statuses],
            "since": query.since,
            "until": query.until,
            **_text_params(query.text, self.store.dialect),
        }
        before_at, before_id = query.before or (None, None)
        seek = ("before",) if query.before is not None else ()
        rows = self.store.query(
            ("run_history", filters + seek, False),
            **params,
            before_at=before_at,
            before_id=before_id,
            limit=query.limit,
            offset=query.offset,
        )
        total = int(self.store.query_value(("run_history", filters, True), **params) or 0)
        return RunHistoryPage(total=total, rows=[run_record(row) for row in rows])

    def run_status_changes(self, run_id: str, since: float) -> list[tuple[float, str]]:
        """When the run's own status changed from ``since`` on, and to what, in order
        (its ``run`` events: ``running``, ``paused``, an end)."""
        return self.store.run_status_changes(run_id, since)

    def last_event_id(self, run_id: str) -> int:
        """The id of the run's latest event (0 when none): where a live view starts."""
        return int(self.store.query_value(("event_max", True), run_id=run_id) or 0)

    def last_log_id(self, run_id: str) -> int:
        """The id of the run's latest log line (0 when none): where a log tail that must not
        show the run's earlier lines (a restart's) starts. One lookup on ``ix_logs_run``."""
        return int(self.store.query_value(("log_max",), run_id=run_id) or 0)

    def last_progress(self, run_id: str, step_run_id: int) -> dict[str, Any] | None:
        """The latest ``progress`` event of a step run, as ``{fraction, message, at}``: read
        backwards from the end of the step's events (``ix_events_run_step``), not the run's."""
        rows = self.store.query(
            ("step_events", True), run_id=run_id, step_run_id=step_run_id, kind="progress", limit=1
        )
        if not rows:
            return None
        data = dict(rows[0]["data"] or {})
        at = rows[0]["at"]
        return {"fraction": data.get("fraction"), "message": data.get("message", ""), "at": at}

    def foreach_items(self, run_id: str, step_run_id: int) -> int | None:
        """The number of items a foreach step run was given (its latest ``foreach`` event),
        or None before it started them."""
        rows = self.store.query(
            ("step_events", True), run_id=run_id, step_run_id=step_run_id, kind="foreach", limit=1
        )
        if not rows:
            return None
        items = (rows[0]["data"] or {}).get("items")
        return items if isinstance(items, int) and not isinstance(items, bool) else None

    def step_run(self, run_id: str, path: str) -> StepRunRecord:
        """The step run at ``path`` (one lookup on the unique (run, path) index)."""
        return self.store.get_step_run(run_id, path)

    def step_run_by_id(self, run_id: str, step_run_id: int) -> StepRunRecord | None:
        """The step run with this id (primary key lookup), or None."""
        rows = self.store.query(("step_run_by_id",), run_id=run_id, id=step_run_id)
        return step_run_record(rows[0]) if rows else None

    def artifacts_at_paths(self, run_id: str, paths: Sequence[str]) -> list[ArtifactRecord]:
        """The artifact records of ``run_id`` made by the step runs at ``paths``, in creation
        order: only those are decoded (the database filters the run's records on
        ``ix_artifacts_run``)."""
        if not paths:
            return []
        rows = self.store.query(("artifacts_at_paths",), run_id=run_id, paths=sorted(set(paths)))
        return [ArtifactRecord(**row) for row in rows]

    def paths(self, run_id: str, step_run_ids: Sequence[int]) -> dict[int, str]:
        """The paths of some step runs, by id."""
        if not step_run_ids:
            return {}
        rows = self.store.query(("paths",), run_id=run_id, ids=sorted(set(step_run_ids)))
        return {int(row["id"]): str(row["path"]) for row in rows}

    def log_window(
        self,
        run_id: str,
        step_run_id: int | None,
        *,
        attempt: int | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        text: str | None = None,
        limit: int = 200,
    ) -> list[LogRecord]:
        """At most ``limit`` log lines of a step run (``None``: of every step run of the
        run, as they were written), oldest first: the first lines after ``after_id``, else
        the last lines before ``before_id`` (else the tail); optionally of one attempt and
        containing ``text``."""
        mode = "after" if after_id is not None else "before" if before_id is not None else "tail"
        key = ("log_window", step_run_id is not None, attempt is not None, bool(text), mode)
        rows = self.store.query(
            key,
            run_id=run_id,
            step_run_id=step_run_id,
            attempt=attempt,
            pattern=like_pattern(text) if text else None,
            after_id=after_id,
            before_id=before_id,
            limit=limit,
        )
        found = [LogRecord(**row) for row in rows]
        if after_id is None:
            found.reverse()
        return found

    def step_metrics(
        self, run_id: str, step_run_id: int, *, limit: int = 1000
    ) -> list[MetricRecord]:
        """The first ``limit`` metrics one step run reported, in the order reported."""
        rows = self.store.query(
            ("metrics", True, False, True), run_id=run_id, step_run_id=step_run_id, limit=limit
        )
        return [MetricRecord(**row) for row in rows]

    def newest_step_metrics(
        self, run_id: str, step_run_id: int, *, limit: int = 1000
    ) -> list[MetricRecord]:
        """The last ``limit`` metrics one step run reported, in the order reported (on the
        ``(run_id, step_run_id, id)`` index, read backwards)."""
        rows = self.store.query(
            ("newest_step_metrics",), run_id=run_id, step_run_id=step_run_id, limit=limit
        )
        return [MetricRecord(**row) for row in reversed(rows)]

    def metrics_after(
        self,
        run_id: str,
        after_id: int,
        limit: int,
        *,
        step_run_id: int | None = None,
        name: str | None = None,
    ) -> list[MetricRecord]:
        """At most ``limit`` metrics of a run (of one step run, of one name, when given)
        with ids above ``after_id``, in the order reported: a page of a keyset."""
        rows = self.store.query(
            ("metrics_after", step_run_id is not None, name is not None),
            run_id=run_id,
            step_run_id=step_run_id,
            name=name,
            after_id=after_id,
            limit=limit,
        )
        return [MetricRecord(**row) for row in rows]

    def cached_tasks_after(
        self, run_id: str, after_id: int, limit: int
    ) -> list[tuple[int, str, str]]:
        """At most ``limit`` ``(id, path, cached_from)`` of the run's tasks that reused
        another execution (status ``cached``) with ids above ``after_id``, by id."""
        rows = self.store.query(
            ("cached_tasks_after",), run_id=run_id, after_id=after_id, limit=limit
        )
        return [(int(r["id"]), str(r["path"]), str(r["cached_from"] or "")) for r in rows]

    def step_runs_at(self, run_id: str, paths: Collection[str]) -> dict[str, StepRunRecord]:
        """The run's step runs at ``paths`` (those that exist), by path."""
        if not paths:
            return {}
        rows = self.store.query(("step_runs_at",), run_id=run_id, paths=sorted(set(paths)))
        return {str(r["path"]): step_run_record(r) for r in rows}

    def run_metrics(
        self, run_id: str, *, name: str | None = None, limit: int = 10_000
    ) -> list[MetricRecord]:
        """The first ``limit`` metrics of a run (optionally of one name), in the order
        reported: what the run reported, not its step runs."""
        key = ("metrics", False, name is not None, True)
        rows = self.store.query(key, run_id=run_id, name=name, limit=limit)
        return [MetricRecord(**row) for row in rows]

    # -- plumbing ------------------------------------------------------------------------

    def _seek(self, run_id: str, query: StepQuery, total: int | None) -> int | None:
        """The first item index of the page, when it replaces the offset of an unfiltered
        page of items in index order, or None. A container's children have unique indexes;
        when those run densely from 0 to ``total - 1`` (two index lookups tell), the page at
        offset k starts at index k, so a page deep in a 100,000-item foreach reads its rows,
        not the k before them."""
        unfiltered = query.by_status_only and not query.statuses
        if query.sort != "index" or query.parent_id is None or not unfiltered or not total:
            return None
        if query.offset == 0:
            return None
        mine = {"run_id": run_id, "parent_id": query.parent_id}
        # Two statements: SQLite answers a lone min() or max() from the index's end.
        low = self.store.query_value(("frame_index", "min"), **mine)
        high = self.store.query_value(("frame_index", "max"), **mine)
        if low != 0 or high != total - 1:
            return None
        if query.descending:
            return total - 1 - query.offset
        return query.offset

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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from kaon.errors import NotFoundError
from kaon.model.status import RunStatus, StepStatus
from kaon.store import schema as t
from kaon.store.base import LogRecord, MetricRecord, RunRecord, StepRunRecord
from kaon.store.sql import SQLStore

# How a page of step runs may be ordered (column expressions, ties broken by id).
_c = t.step_runs.c
SORT_KEYS: dict[str, Any] = {
    "index": _c.index,
    "id": _c.id,
    "path": _c.path,
    "status": _c.status,
    "started_at": _c.started_at,
    "ended_at": _c.ended_at,
    "duration": _c.ended_at - _c.started_at,
    "attempts": _c.attempts,
}
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class StepQuery:
    """Which step runs a page shows: the children of one parent, filtered and sorted.

    ``parent_id`` ``None`` is the run's top level. ``statuses`` keeps only those statuses;
    ``kind`` only step runs of that kind (``task``, ``item``...); ``step_id`` only one step of
    the body; ``index_from``/``index_to`` an inclusive range of
    item indexes (or loop iterations); ``text`` a case-insensitive substring of the path, the
    reason or the item. ``sort`` is a key of :data:`SORT_KEYS`.
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
    parameters or its labels (JSON).
    """

    workflow: str
    statuses: tuple[RunStatus, ...] = ()
    since: float | None = None
    until: float | None = None
    text: str | None = None
    limit: int = 25
    offset: int = 0


@dataclass(slots=True)
class RunHistoryPage:
    """One page of a workflow's runs and how many match in all."""

    total: int
    rows: list[RunRecord] = field(default_factory=list)


class SQLRunReads:
    """Bounded reads of one run's step runs, logs and metrics over a :class:`SQLStore`.

    Every method raises :class:`~kaon.errors.NotFoundError` for an unknown run (or step run)
    and :class:`~kaon.errors.StoreError` when the database fails.
    """

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def status_counts(self, run_id: str, kind: str = "task") -> dict[StepStatus, int]:
        """How many step runs of ``kind`` (``task``, ``item``, ``foreach``...) are in each
        status, all levels included: one ``GROUP BY`` on a covering index."""
        stmt = (
            sa.select(_c.status, sa.func.count())
            .where(_c.run_id == run_id, _c.kind == kind)
            .group_by(_c.status)
        )
        with self.store.reading() as conn:
            found = {StepStatus(status): int(count) for status, count in conn.execute(stmt)}
            if not found:
                self._require_run(conn, run_id)
        return found

    def children_counts(
        self, run_id: str, parent_ids: Sequence[int]
    ) -> dict[int, dict[StepStatus, int]]:
        """For each of ``parent_ids`` (containers or frames), how many direct children are in
        each status; parents without children are absent."""
        if not parent_ids:
            return {}
        stmt = (
            sa.select(_c.parent_id, _c.status, sa.func.count())
            .where(_c.run_id == run_id, _c.parent_id.in_(list(parent_ids)))
            .group_by(_c.parent_id, _c.status)
        )
        found: dict[int, dict[StepStatus, int]] = {}
        with self.store.reading() as conn:
            for parent, status, count in conn.execute(stmt):
                found.setdefault(int(parent), {})[StepStatus(status)] = int(count)
        return found

    def step_page(self, run_id: str, query: StepQuery, *, total: int | None = None) -> StepPage:
        """The page of step runs ``query`` asks for, with the total that match it (counted
        unless the caller knows it already, from :meth:`children_counts`)."""
        where = self._where(run_id, query)
        order = SORT_KEYS[query.sort]
        ordering = [order.desc() if query.descending else order.asc()]
        if query.sort != "index" or query.parent_id is None:
            # Item indexes are unique under a parent; other keys need a tie-break.
            ordering.append(_c.id.desc() if query.descending else _c.id.asc())
        rows_stmt = (
            sa.select(t.step_runs)
            .where(*where)
            .order_by(*ordering)
            .limit(query.limit)
            .offset(query.offset)
        )
        count_stmt = sa.select(sa.func.count()).select_from(t.step_runs).where(*where)
        with self.store.reading() as conn:
            seek = self._seek(conn, run_id, query, total)
            if seek is not None:
                rows_stmt = (
                    sa.select(t.step_runs)
                    .where(*where, seek)
                    .order_by(*ordering)
                    .limit(query.limit)
                )
            rows = [_step_run_record(row) for row in conn.execute(rows_stmt)]
            if total is None:
                total = int(conn.scalar(count_stmt) or 0)
            if not total:
                self._require_run(conn, run_id)
        return StepPage(total=total, rows=rows)

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
        where: list[Any] = [_c.run_id == run_id]
        if statuses:
            where.append(_c.status.in_([s.value for s in statuses]))
        if kind:
            where.append(_c.kind == kind)
        rows_stmt = sa.select(t.step_runs).where(*where).order_by(_c.id).limit(limit).offset(offset)
        count_stmt = sa.select(sa.func.count()).select_from(t.step_runs).where(*where)
        with self.store.reading() as conn:
            rows = [_step_run_record(row) for row in conn.execute(rows_stmt)]
            if total is None:
                total = int(conn.scalar(count_stmt) or 0)
            if not rows:
                self._require_run(conn, run_id)
        return StepPage(total=total, rows=rows)

    def run_history(self, query: RunHistoryQuery) -> RunHistoryPage:
        """A page of a workflow's runs, newest first, with the total matching (both on the
        ``(workflow, created_at)`` index)."""
        r = t.runs.c
        where: list[Any] = [r.workflow == query.workflow]
        if query.statuses:
            where.append(r.status.in_([s.value for s in query.statuses]))
        if query.since is not None:
            where.append(r.created_at >= query.since)
        if query.until is not None:
            where.append(r.created_at <= query.until)
        if query.text:
            where.append(
                sa.or_(
                    r.id.icontains(query.text, autoescape=True),
                    sa.cast(r.params, sa.Text).icontains(query.text, autoescape=True),
                    sa.cast(r.labels, sa.Text).icontains(query.text, autoescape=True),
                )
            )
        rows_stmt = (
            sa.select(t.runs)
            .where(*where)
            .order_by(r.created_at.desc(), r.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        count_stmt = sa.select(sa.func.count()).select_from(t.runs).where(*where)
        with self.store.reading() as conn:
            rows = [_run_record(row) for row in conn.execute(rows_stmt)]
            total = int(conn.scalar(count_stmt) or 0)
        return RunHistoryPage(total=total, rows=rows)

    def last_event_id(self, run_id: str) -> int:
        """The id of the run's latest event (0 when none): where a live view starts."""
        stmt = sa.select(sa.func.max(t.events.c.id)).where(t.events.c.run_id == run_id)
        with self.store.reading() as conn:
            return int(conn.scalar(stmt) or 0)

    def last_progress(self, run_id: str, step_run_id: int) -> dict[str, Any] | None:
        """The latest ``progress`` event of a step run, as ``{fraction, message, at}``: read
        backwards from the end of the step's events (``ix_events_run_step``), not the run's."""
        c = t.events.c
        stmt = (
            sa.select(c.data, c.at)
            .where(c.run_id == run_id, c.step_run_id == step_run_id, c.kind == "progress")
            .order_by(c.id.desc())
            .limit(1)
        )
        with self.store.reading() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        data = dict(row.data or {})
        return {"fraction": data.get("fraction"), "message": data.get("message", ""), "at": row.at}

    def step_run(self, run_id: str, path: str) -> StepRunRecord:
        """The step run at ``path`` (one lookup on the unique (run, path) index)."""
        return self.store.get_step_run(run_id, path)

    def step_run_by_id(self, run_id: str, step_run_id: int) -> StepRunRecord | None:
        """The step run with this id (primary key lookup), or None."""
        stmt = sa.select(t.step_runs).where(_c.run_id == run_id, _c.id == step_run_id)
        with self.store.reading() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _step_run_record(row)

    def paths(self, run_id: str, step_run_ids: Sequence[int]) -> dict[int, str]:
        """The paths of some step runs, by id."""
        if not step_run_ids:
            return {}
        stmt = sa.select(_c.id, _c.path).where(
            _c.run_id == run_id, _c.id.in_(list(set(step_run_ids)))
        )
        with self.store.reading() as conn:
            return {int(i): str(p) for i, p in conn.execute(stmt)}

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
        c = t.logs.c
        stmt = sa.select(t.logs).where(c.run_id == run_id)
        if step_run_id is not None:
            stmt = stmt.where(c.step_run_id == step_run_id)
        if attempt is not None:
            stmt = stmt.where(c.attempt == attempt)
        if text:
            stmt = stmt.where(c.text.icontains(text, autoescape=True))
        if after_id is not None:
            stmt = stmt.where(c.id > after_id).order_by(c.id.asc())
        else:
            if before_id is not None:
                stmt = stmt.where(c.id < before_id)
            stmt = stmt.order_by(c.id.desc())
        with self.store.reading() as conn:
            found = [LogRecord(**row._asdict()) for row in conn.execute(stmt.limit(limit))]
        if after_id is None:
            found.reverse()
        return found

    def step_metrics(
        self, run_id: str, step_run_id: int, *, limit: int = 1000
    ) -> list[MetricRecord]:
        """The first ``limit`` metrics one step run reported, in the order reported."""
        c = t.metrics.c
        stmt = (
            sa.select(t.metrics)
            .where(c.run_id == run_id, c.step_run_id == step_run_id)
            .order_by(c.id)
            .limit(limit)
        )
        with self.store.reading() as conn:
            return [MetricRecord(**row._asdict()) for row in conn.execute(stmt)]

    def run_metrics(
        self, run_id: str, *, name: str | None = None, limit: int = 10_000
    ) -> list[MetricRecord]:
        """The first ``limit`` metrics of a run (optionally of one name), in the order
        reported: what the run reported, not its step runs."""
        c = t.metrics.c
        stmt = sa.select(t.metrics).where(c.run_id == run_id)
        if name is not None:
            stmt = stmt.where(c.name == name)
        with self.store.reading() as conn:
            rows = conn.execute(stmt.order_by(c.id).limit(limit))
            return [MetricRecord(**row._asdict()) for row in rows]

    # -- plumbing ------------------------------------------------------------------------

    @staticmethod
    def _where(run_id: str, query: StepQuery) -> list[Any]:
        where: list[Any] = [_c.run_id == run_id]
        if query.parent_id is None:
            where.append(_c.parent_id.is_(None))
        else:
            where.append(_c.parent_id == query.parent_id)
        if query.statuses:
            where.append(_c.status.in_([s.value for s in query.statuses]))
        if query.kind:
            where.append(_c.kind == query.kind)
        if query.step_id:
            where.append(_c.step_id == query.step_id)
        if query.index_from is not None:
            where.append(_c.index >= query.index_from)
        if query.index_to is not None:
            where.append(_c.index <= query.index_to)
        if query.text:
            where.append(
                sa.or_(
                    _c.path.icontains(query.text, autoescape=True),
                    _c.reason.icontains(query.text, autoescape=True),
                    sa.cast(_c.item, sa.Text).icontains(query.text, autoescape=True),
                )
            )
        return where

    @staticmethod
    def _seek(conn: sa.Connection, run_id: str, query: StepQuery, total: int | None) -> Any | None:
        """A condition that replaces the offset of an unfiltered page of items in index
        order, or None. A container's children have unique indexes; when those run densely
        from 0 to ``total - 1`` (two index lookups tell), the page at offset k starts at index
        k, so a page deep in a 100,000-item foreach reads its rows, not the k before them."""
        unfiltered = query.by_status_only and not query.statuses
        if query.sort != "index" or query.parent_id is None or not unfiltered or not total:
            return None
        if query.offset == 0:
            return None
        mine = (_c.run_id == run_id, _c.parent_id == query.parent_id)
        # Two statements: SQLite answers a lone min() or max() from the index's end.
        low = conn.scalar(sa.select(sa.func.min(_c.index)).where(*mine))
        high = conn.scalar(sa.select(sa.func.max(_c.index)).where(*mine))
        if low != 0 or high != total - 1:
            return None
        if query.descending:
            return _c.index <= total - 1 - query.offset
        return _c.index >= query.offset

    @staticmethod
    def _require_run(conn: sa.Connection, run_id: str) -> None:
        found = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first()
        if found is None:
            raise NotFoundError(f"no run {run_id!r}")


def _run_record(row: sa.Row[Any]) -> RunRecord:
    values = row._asdict()
    values["status"] = RunStatus(values["status"])
    values["params"] = values["params"] or {}
    values["labels"] = values["labels"] or {}
    return RunRecord(**values)


def _step_run_record(row: sa.Row[Any]) -> StepRunRecord:
    values = row._asdict()
    values["status"] = StepStatus(values["status"])
    return StepRunRecord(**values)

"""A run's metric values as rows, a page at a time (``GET /runs/{id}/metric-rows``).

The rows are the run's own metric values in the order reported, then, for each task that
reused another execution from the cache (by step run id), the values that execution
reported (``reused_from`` names it). A page is read by a keyset, never an offset, so its
cost follows the page, not the run: the cursor (:class:`MetricCursor`, ``Kaon-Next`` over
HTTP) is the last row sent, ``own:METRIC_ID`` or ``reused:STEP_RUN_ID:METRIC_ID``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from kaon.errors import Location, ParameterError, Problem
from kaon.service._metric_points import MetricPoint, frame_path, place
from kaon.store.base import MetricRecord

if TYPE_CHECKING:
    from kaon.store.reads import SQLRunReads

MAX_METRIC_ROWS_PAGE: Final = 1000
"""The most rows one ``GET /runs/{id}/metric-rows`` answers."""

CACHED_TASKS_A_PAGE: Final = 100
"""The most cached tasks one page looks at (most report no metric: a page of them may be
short, and says where the next one starts)."""

FILLING_TASKS: Final = 200
"""The most cached tasks :func:`filled_metric_page` looks at to fill a short page."""

METRIC_CURSOR: Final = r"^(own:[0-9]{1,19}|reused:[0-9]{1,19}:[0-9]{1,19})$"
"""A place in a run's metric rows (``Kaon-Next``, ``after``)."""


@dataclass(frozen=True, slots=True)
class MetricCursor:
    """The last row of a page: a metric of the run's own (``step_run_id`` 0), or a value
    that the cached task ``step_run_id`` reused (its source's metric ``metric_id``; 0: every
    value of that task was sent)."""

    reused: bool
    step_run_id: int
    metric_id: int

    @classmethod
    def parse(cls, text: str) -> MetricCursor:
        """The cursor written by :meth:`__str__`; ParameterError (field ``after``) else."""
        kind, _, rest = text.partition(":")
        parts = rest.split(":")
        try:
            if kind == "own" and len(parts) == 1:
                return cls(False, 0, int(parts[0]))
            if kind == "reused" and len(parts) == 2:
                return cls(True, int(parts[0]), int(parts[1]))
        except ValueError:
            pass
        message = f"invalid metric rows cursor {text[:40]!r}: send back a Kaon-Next header"
        raise ParameterError(Problem(message, Location(field="after")))

    def __str__(self) -> str:
        if self.reused:
            return f"reused:{self.step_run_id}:{self.metric_id}"
        return f"own:{self.metric_id}"


def metric_page(
    reads: SQLRunReads,
    run_id: str,
    after: MetricCursor | None,
    limit: int,
    *,
    name: str | None = None,
) -> tuple[list[MetricPoint], MetricCursor | None]:
    """At most ``limit`` metric rows of ``run_id`` after ``after`` (only those called
    ``name``, when given), and the cursor of the next page (None when none remains)."""
    points: list[MetricPoint] = []
    if after is None or not after.reused:
        own = reads.metrics_after(run_id, after.metric_id if after else 0, limit, name=name)
        points += _own_points(reads, run_id, own)
        if len(own) == limit:
            return points, MetricCursor(False, 0, own[-1].id or 0)
        after = MetricCursor(True, 0, 0)
    more, following = _reused_points(reads, run_id, after, limit - len(points), name)
    return points + more, following


def filled_metric_page(
    reads: SQLRunReads,
    run_id: str,
    after: MetricCursor | None,
    limit: int,
    *,
    name: str | None = None,
) -> tuple[list[MetricPoint], MetricCursor | None]:
    """:func:`metric_page`, read again from its cursor while it is short and more may
    remain, looking at :data:`FILLING_TASKS` cached tasks at most: a page is full unless
    the run holds no more (or more cached tasks that reported nothing than that)."""
    points, following = metric_page(reads, run_id, after, limit, name=name)
    for _ in range(FILLING_TASKS // CACHED_TASKS_A_PAGE - 1):
        if following is None or len(points) >= limit:
            break
        more, following = metric_page(reads, run_id, following, limit - len(points), name=name)
        points += more
    return points, following


def _own_points(reads: SQLRunReads, run_id: str, own: list[MetricRecord]) -> list[MetricPoint]:
    paths = reads.paths(run_id, [m.step_run_id for m in own])
    frames = reads.step_runs_at(run_id, {frame_path(p) for p in paths.values()} - {""})
    points = []
    for m in own:
        path = paths.get(m.step_run_id, f"#{m.step_run_id}")
        group, index, label = place(path, frames)
        points.append(MetricPoint(run_id, path, group, index, label, m.name, m.value, m.step, m.at))
    return points


def _reused_points(
    reads: SQLRunReads, run_id: str, after: MetricCursor, limit: int, name: str | None
) -> tuple[list[MetricPoint], MetricCursor | None]:
    """The values cached tasks reused, from ``after`` on: at most ``limit``, from at most
    :data:`CACHED_TASKS_A_PAGE` tasks."""
    if limit <= 0:
        return [], after
    start = max(after.step_run_id - 1, 0) if after.metric_id else after.step_run_id
    tasks = reads.cached_tasks_after(run_id, start, CACHED_TASKS_A_PAGE)
    frames = reads.step_runs_at(run_id, {frame_path(path) for _, path, _ in tasks} - {""})
    sources: dict[str, Any] = {}
    for source_run in {source.partition(":")[0] for _, _, source in tasks}:
        wanted = {s.partition(":")[2] for _, _, s in tasks if s.partition(":")[0] == source_run}
        sources[source_run] = reads.step_runs_at(source_run, wanted)
    points: list[MetricPoint] = []
    for task_id, path, source in tasks:
        source_run, _, source_path = source.partition(":")
        found = sources[source_run].get(source_path)
        if found is None:  # the run it reused was deleted since
            continue
        since = after.metric_id if task_id == after.step_run_id else 0
        room = limit - len(points)
        values = reads.metrics_after(source_run, since, room, step_run_id=found.id, name=name)
        group, index, label = place(path, frames)
        for m in values:
            point = MetricPoint(
                run_id, path, group, index, label, m.name, m.value, m.step, m.at, source
            )
            points.append(point)
        if len(points) == limit:
            return points, MetricCursor(True, task_id, values[-1].id or 0)
    if len(tasks) == CACHED_TASKS_A_PAGE:  # more tasks remain: the next page starts after
        return points, MetricCursor(True, tasks[-1][0], 0)
    return points, None


def metric_row(point: MetricPoint) -> dict[str, Any]:
    """A metric point as the row ``metric-rows`` and ``RunHandle.metrics`` show."""
    return {
        "path": point.path,
        "group": point.group,
        "item_index": point.item_index,
        "item": point.item,
        "name": point.name,
        "value": point.value,
        "step": point.step,
        "at": point.at,
        "reused_from": point.reused_from,
    }

"""Experiment comparison: runs side by side, and the data of metric plots.

A metric is identified by the step path that reported it and its name; its value in a run is
the last one reported. A path inside a foreach (or loop) also belongs to a *group*, the path
with its innermost index replaced by ``[*]``, and names an item (index and label), so that
per-item metrics can be lined up across runs and plotted across items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kaon.errors import (
    ConfigurationError,
    InvalidActionError,
    Location,
    NotFoundError,
    ParameterError,
    Problem,
)
from kaon.model.status import StepStatus
from kaon.service._metric_points import MetricPoint, place
from kaon.service.experiment_views import (
    CompareRunView,
    CompareView,
    MetricGroupRow,
    MetricRow,
    ParamRow,
    PlotSeries,
    PlotView,
    StepRow,
)
from kaon.service.limits import COMPARE_ROWS, MAX_COMPARE_ROWS
from kaon.store.base import MetricRecord, StateStore, StepRunRecord

MAX_SERIES = 12
BY = ("run", "item", "step")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def metric_points(
    store: StateStore, run_id: str, rows: list[StepRunRecord] | None = None
) -> list[MetricPoint]:
    """Every metric value of a run, in the order reported. A cached step reported nothing
    itself: it gets the values of the execution it reused (``reused_from`` names it).
    ``rows``: the run's step runs (every level), when the caller has read them."""
    if rows is None:
        rows = store.step_runs(run_id, all_levels=True)
    by_id = {r.id: r for r in rows}
    by_path = {r.path: r for r in rows}
    points: list[MetricPoint] = []
    for m in store.metrics(run_id):
        row = by_id.get(m.step_run_id)
        path = row.path if row is not None else f"#{m.step_run_id}"
        group, index, label = place(path, by_path)
        points.append(MetricPoint(run_id, path, group, index, label, m.name, m.value, m.step, m.at))
    sources: dict[str, tuple[dict[str, int], dict[int, list[MetricRecord]]]] = {}
    for row in rows:
        if row.status is not StepStatus.CACHED or not row.cached_from:
            continue
        source_run, _, source_path = row.cached_from.partition(":")
        if source_run not in sources:
            sources[source_run] = _metrics_by_path(store, source_run)
        ids, metrics = sources[source_run]
        group, index, label = place(row.path, by_path)
        for m in metrics.get(ids.get(source_path, -1), []):
            points.append(
                MetricPoint(
                    run_id,
                    row.path,
                    group,
                    index,
                    label,
                    m.name,
                    m.value,
                    m.step,
                    m.at,
                    reused_from=row.cached_from,
                )
            )
    return points


def _metrics_by_path(
    store: StateStore, run_id: str
) -> tuple[dict[str, int], dict[int, list[MetricRecord]]]:
    try:
        ids = {r.path: r.id for r in store.step_runs(run_id, all_levels=True)}
        metrics: dict[int, list[MetricRecord]] = {}
        for m in store.metrics(run_id):
            metrics.setdefault(m.step_run_id, []).append(m)
    except NotFoundError:
        return {}, {}
    return ids, metrics


def require_two(distinct: Sequence[str]) -> None:
    """Raise ParameterError (field ``run``) unless ``distinct`` (the runs given, resolved
    where the caller can) holds two runs at least: the one refusal of a comparison of fewer,
    locally, by the API and before a client's request."""
    if len(set(distinct)) < 2:
        named = "one" if distinct else "none"  # the same words whoever resolved the prefixes
        message = f"compare needs at least two different runs, got {named}"
        raise ParameterError(Problem(message, Location(field="run")))


def require_rows(limit: int) -> None:
    """Raise ParameterError (field ``limit``) unless a comparison may list ``limit`` rows:
    locally, and in the remote client before its request, in the same words."""
    if not 1 <= limit <= MAX_COMPARE_ROWS:
        message = f"limit must be from 1 to {MAX_COMPARE_ROWS:,}, got {limit}"
        raise ParameterError(Problem(message, Location(field="limit")))


def compare(store: StateStore, run_ids: Sequence[str], *, limit: int = COMPARE_ROWS) -> CompareView:
    """Parameters, last metric values and step statuses of ``run_ids`` side by side.

    Each metric is also pooled over a foreach's items (``groups``: mean, count, min, max per
    run, one row per group and name whatever the number of items); the rows per step path
    are the first ``limit`` metric rows and the first ``limit`` step rows, those that differ
    first, with their totals: a comparison of two sweeps of 10,000 items answered 20,000
    rows (4 MB). Raises ParameterError (field ``run``, as the API's ``GET /compare``
    answers it) for fewer than two distinct runs, or for ``limit`` out of 1..100,000.
    """
    ids = list(dict.fromkeys(run_ids))
    require_two(ids)
    require_rows(limit)
    records = [store.get_run(i) for i in ids]
    view = CompareView(
        runs=[
            CompareRunView(
                id=r.id, workflow=r.workflow, status=r.status.value, created_at=r.created_at
            )
            for r in records
        ]
    )
    names = list(dict.fromkeys(n for r in records for n in r.params))
    for name in names:
        values = {r.id: r.params.get(name) for r in records}
        present = {_canonical(r.params[name]) if name in r.params else "\0" for r in records}
        view.params.append(ParamRow(name=name, values=values, differs=len(present) > 1))
    _compare_in_database(store, ids, limit, view)
    return view


def _compare_in_database(store: StateStore, ids: list[str], limit: int, view: CompareView) -> None:
    """The steps, metrics and pooled groups of :func:`compare`, computed by the database
    (:mod:`kaon.store.comparison`): the process reads the pages it answers, not every step
    run and metric value of the runs (two sweeps of 10,000 items: 6.6 s and 80 MB; the
    contract test checks it against that reading, ``tests/contract/_compare_reference.py``).
    Raises ConfigurationError for a store without SQL (there is none today)."""
    from kaon.store.comparison import SQLComparison
    from kaon.store.sql import SQLStore

    if not isinstance(store, SQLStore):
        raise ConfigurationError(f"compare needs a SQL store, not {type(store).__name__}")
    comparison = SQLComparison(store)
    steps, view.steps_total, view.steps_differing = comparison.steps(ids, limit)
    view.steps = [
        StepRow(
            path=step.path,
            statuses={run_id: step.statuses.get(run_id) for run_id in ids},
            differs=step.differs,
        )
        for step in steps
    ]
    metrics, view.metrics_total = comparison.metrics(ids, limit)
    for metric in metrics:
        values: dict[str, float | None] = {run_id: metric.values.get(run_id) for run_id in ids}
        view.metrics.append(
            MetricRow(
                path=metric.path,
                name=metric.name,
                group=metric.group,
                item_index=metric.item_index,
                item=metric.item,
                values=values,
                differs=len(set(values.values())) > 1,
            )
        )
    for pooled in comparison.pooled(ids):
        means = {
            r: (pooled.total[r] / pooled.count[r] if pooled.count.get(r) else None) for r in ids
        }
        view.groups.append(
            MetricGroupRow(
                group=pooled.group,
                name=pooled.name,
                mean=means,
                count={r: pooled.count.get(r, 0) for r in ids},
                min={r: pooled.low.get(r) for r in ids},
                max={r: pooled.high.get(r) for r in ids},
                differs=len(set(means.values())) > 1,
            )
        )


# -- plots ---------------------------------------------------------------------------------------


def _matches(point: MetricPoint, step: str | None) -> bool:
    if step is None:
        return True
    return step in (point.path, point.group, point.path.rsplit(".", 1)[-1])


def plot_data(
    store: StateStore,
    run_ids: Sequence[str],
    metric: str,
    *,
    by: str | None = None,
    step: str | None = None,
) -> PlotView:
    """The series of a plot of ``metric`` across runs, foreach items, or ``step`` (epochs).

    ``step`` keeps only the values of one step (a path, a group such as
    ``segments[*].train``, or a step id). ``by`` defaults to ``run`` for several runs, else
    ``item`` when the metric is reported inside a foreach, else ``step``. Raises
    NotFoundError when no such metric was reported, InvalidActionError for a ``by`` that
    does not fit the data.
    """
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        raise InvalidActionError("plot needs at least one run")
    everything = [p for run_id in ids for p in metric_points(store, run_id)]
    points = [p for p in everything if p.name == metric and _matches(p, step)]
    if not points:
        known = ", ".join(sorted({p.name for p in everything})) or "none"
        where = f" by step {step!r}" if step else ""
        raise NotFoundError(
            f"no metric {metric!r}{where} in run(s) {', '.join(ids)} (reported: {known})"
        )
    if by is None:
        by = _default_by(ids, points)
    if by not in BY:
        raise InvalidActionError(f"--by must be one of {', '.join(BY)}, not {by!r}")
    short = _short_ids(ids)
    if by == "run":
        series, x_label = _by_run(ids, points, short), "run"
    elif by == "item":
        series = _by_item(ids, points, short)
        groups = {p.group for p in points if p.item_index is not None}
        x_label = f"item of {groups.pop()}" if len(groups) == 1 else "item"
    else:
        series, x_label = _by_step(ids, points, short), "step"
    title = f"{metric} by {by}" + (f" ({step})" if step else "")
    if len(series) > MAX_SERIES:
        title += f" (first {MAX_SERIES} of {len(series)} series)"
        series = series[:MAX_SERIES]
    return PlotView(metric=metric, by=by, runs=ids, title=title, x_label=x_label, series=series)


def _default_by(ids: list[str], points: list[MetricPoint]) -> str:
    if len(ids) > 1:
        return "run"
    if any(p.item_index is not None for p in points):
        return "item"
    return "step"


def _short_ids(ids: list[str]) -> dict[str, str]:
    """Run ids without the part every id shares in front (their dates, usually)."""
    if len(ids) < 2:
        return {i: i for i in ids}
    common = 0
    for chars in zip(*ids, strict=False):
        if len(set(chars)) > 1:
            break
        common += 1
    cut = ids[0].rfind("-", 0, common + 1) + 1
    return {i: i[cut:] or i for i in ids}


def _last_values(points: list[MetricPoint]) -> dict[tuple[str, str], MetricPoint]:
    last: dict[tuple[str, str], MetricPoint] = {}
    for point in points:
        last[(point.run_id, point.path)] = point
    return last


def _by_run(ids: list[str], points: list[MetricPoint], short: dict[str, str]) -> list[PlotSeries]:
    last = _last_values(points)
    first = {p.path: p for p in reversed(points)}
    paths = sorted(first, key=lambda path: (first[path].group, first[path].item_index or 0, path))
    keyed: dict[str, list[tuple[str, float]]] = {}
    label: dict[str, str] = {}
    if len(paths) <= MAX_SERIES:
        for path in paths:
            keyed[path] = [(r, p.value) for (r, q), p in last.items() if q == path]
            item = first[path]
            shown = _item_label(item) if item.item_index is not None else ""
            label[path] = f"{path} ({shown})" if shown and shown != str(item.item_index) else path
    else:  # many items: one series per group, the mean over its items
        for group in dict.fromkeys(p.group for p in points):
            values = [
                (
                    run_id,
                    [p.value for (r, _), p in last.items() if r == run_id and p.group == group],
                )
                for run_id in ids
            ]
            keyed[group] = [(r, sum(v) / len(v)) for r, v in values if v]
            label[group] = f"{group} (mean over items)"
    series = []
    for name, pairs in keyed.items():
        in_order = sorted(pairs, key=lambda pair: ids.index(pair[0]))
        series.append(
            PlotSeries(
                label=label[name] if len(keyed) > 1 else "",
                x=[short[r] for r, _ in in_order],
                y=[v for _, v in in_order],
            )
        )
    return series


def _by_item(ids: list[str], points: list[MetricPoint], short: dict[str, str]) -> list[PlotSeries]:
    items = [p for p in points if p.item_index is not None]
    if not items:
        raise InvalidActionError(
            "this metric is not reported inside a foreach or loop: plot it --by run or --by step"
        )
    last = _last_values(items)
    groups = list(dict.fromkeys(p.group for p in items))
    series = []
    for run_id in ids:
        for group in groups:
            chosen = sorted(
                (p for (r, _), p in last.items() if r == run_id and p.group == group),
                key=lambda p: p.item_index or 0,
            )
            if not chosen:
                continue
            parts = [short[run_id]] if len(ids) > 1 else []
            parts += [group] if len(groups) > 1 else []
            series.append(
                PlotSeries(
                    label=" ".join(parts),
                    x=[_item_label(p) for p in chosen],
                    y=[p.value for p in chosen],
                )
            )
    return series


def _item_label(point: MetricPoint) -> str:
    item = point.item
    if isinstance(item, str | int | float) and not isinstance(item, bool) and len(str(item)) <= 24:
        return str(item)
    return str(point.item_index)


def _by_step(ids: list[str], points: list[MetricPoint], short: dict[str, str]) -> list[PlotSeries]:
    series: dict[tuple[str, str], PlotSeries] = {}
    paths = {p.path for p in points}
    for point in points:
        key = (point.run_id, point.path)
        if key not in series:
            parts = [short[point.run_id]] if len(ids) > 1 else []
            parts += [point.path] if len(paths) > 1 else []
            series[key] = PlotSeries(label=" ".join(parts), x=[], y=[])
        current = series[key]
        current.x.append(point.step if point.step is not None else len(current.x))
        current.y.append(point.value)
    return list(series.values())

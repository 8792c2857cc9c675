"""What ``compare`` answered when it read every step run and metric value of the runs into
the process: the reference :mod:`kaon.service._compare`'s database computation
(:mod:`kaon.store.comparison`) is checked against (``test_compare_contract.py``)."""

from __future__ import annotations

import re

from kaon.service._compare import metric_points
from kaon.service._metric_points import MetricPoint
from kaon.service.experiment_views import CompareView, MetricGroupRow, MetricRow, StepRow
from kaon.store.base import StateStore, StepRunRecord

_ANY_INDEX = re.compile(r"\[[0-9]+\]")
_FRAME_KINDS = ("item", "iteration")


def compare_in_memory(store: StateStore, ids: list[str], limit: int, view: CompareView) -> None:
    """The steps, metrics and pooled groups of :func:`compare` from every step run and
    metric value of the runs, read into this process (what compare did before the database
    computed it)."""
    rows = {run_id: store.step_runs(run_id, all_levels=True) for run_id in ids}  # once each
    steps = _step_rows(rows, ids)
    steps.sort(key=lambda row: not row.differs)  # those that differ first, in path order
    view.steps, view.steps_total = steps[:limit], len(steps)
    view.steps_differing = sum(1 for row in steps if row.differs)
    metrics = _metric_rows(store, ids, rows)
    view.metrics, view.metrics_total = metrics[:limit], len(metrics)
    view.groups = _group_rows(metrics, ids)


def _step_rows(rows: dict[str, list[StepRunRecord]], ids: list[str]) -> list[StepRow]:
    statuses: dict[str, dict[str, str | None]] = {}
    for run_id in ids:
        for row in rows[run_id]:
            if row.kind not in _FRAME_KINDS:
                statuses.setdefault(row.path, {})[run_id] = row.status.value
    result = []
    for path, by_run in statuses.items():
        values = {run_id: by_run.get(run_id) for run_id in ids}
        result.append(StepRow(path=path, statuses=values, differs=len(set(values.values())) > 1))
    return result


def _metric_rows(
    store: StateStore, ids: list[str], rows: dict[str, list[StepRunRecord]]
) -> list[MetricRow]:
    last: dict[tuple[str, str], dict[str, float]] = {}
    placed: dict[tuple[str, str], MetricPoint] = {}
    for run_id in ids:
        for point in metric_points(store, run_id, rows[run_id]):
            key = (point.path, point.name)
            last.setdefault(key, {})[run_id] = point.value
            placed.setdefault(key, point)
    groups: dict[str, int] = {}
    for point in placed.values():
        groups.setdefault(point.group, len(groups))
    order = sorted(
        placed,
        key=lambda k: (groups[placed[k].group], placed[k].name, placed[k].item_index or 0, k[0]),
    )
    result = []
    for key in order:
        point = placed[key]
        values: dict[str, float | None] = {run_id: last[key].get(run_id) for run_id in ids}
        result.append(
            MetricRow(
                path=point.path,
                name=point.name,
                group=point.group,
                item_index=point.item_index,
                item=point.item,
                values=values,
                differs=len(set(values.values())) > 1,
            )
        )
    return result


def _group_rows(metrics: list[MetricRow], ids: list[str]) -> list[MetricGroupRow]:
    """Each metric pooled over the items of its step, at every level of nesting
    (``outer[*].inner[*].train``), per run."""
    pooled: dict[tuple[str, str], dict[str, list[float]]] = {}
    for row in metrics:  # in group order already
        group = _ANY_INDEX.sub("[*]", row.path)  # nested items too: outer[*].inner[*].train
        of_group = pooled.setdefault((group, row.name), {run_id: [] for run_id in ids})
        for run_id, value in row.values.items():
            if value is not None:
                of_group[run_id].append(value)
    result = []
    for (group, name), values in pooled.items():
        means = {r: (sum(v) / len(v) if v else None) for r, v in values.items()}
        result.append(
            MetricGroupRow(
                group=group,
                name=name,
                mean=means,
                count={r: len(v) for r, v in values.items()},
                min={r: (min(v) if v else None) for r, v in values.items()},
                max={r: (max(v) if v else None) for r, v in values.items()},
                differs=len(set(means.values())) > 1,
            )
        )
    return result

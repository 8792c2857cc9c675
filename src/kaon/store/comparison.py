"""Runs side by side, computed in the database: what ``compare`` answers costs its page.

Two sweeps of 10,000 items each have tens of thousands of step runs and metric values; the
comparison answers a page of rows per step path, a page of metric rows and one pooled row
per metric and group. :class:`SQLComparison` asks the database for exactly those (GROUP BY
and window functions over the runs' rows, statements in :mod:`kaon.store._queries`), so
the process never holds the runs' rows. :mod:`kaon.service._compare` turns them into views.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kaon.store._queries import SEPARATOR
from kaon.store.sql import SQLStore


@dataclass(slots=True)
class ComparedStep:
    """One step path: its status in each run that has it, and whether they differ (a run
    lacking it counts as a difference)."""

    path: str
    statuses: dict[str, str]
    differs: bool


@dataclass(slots=True)
class ComparedMetric:
    """One (path, name): the last value each run reported for it, placed in its foreach
    item (``group``: the path with its innermost index made ``[*]``)."""

    path: str
    name: str
    group: str
    item_index: int | None
    item: Any
    values: dict[str, float]


@dataclass(slots=True)
class PooledMetric:
    """A metric pooled over the items of its step at every level of nesting, per run."""

    group: str
    name: str
    total: dict[str, float] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)


class SQLComparison:
    """Comparisons of runs over a :class:`SQLStore`. Every method takes the runs' ids (two
    or more, distinct, existing: the caller checks) in the order the comparison lists
    them, and raises :class:`~kaon.errors.StoreError` when the database fails."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def _params(self, run_ids: Sequence[str]) -> dict[str, Any]:
        joined = SEPARATOR + SEPARATOR.join(run_ids) + SEPARATOR
        return {"ids": list(run_ids), "joined": joined}

    def steps(self, run_ids: Sequence[str], limit: int) -> tuple[list[ComparedStep], int, int]:
        """The first ``limit`` step paths (frames left out), those that differ first, then
        in the order first seen (run by run, by id); the number of paths; of those that
        differ."""
        key = ("compare_steps", self.store.dialect)
        rows = self.store.query(key, n=len(run_ids), limit=limit, **self._params(run_ids))
        found: dict[str, ComparedStep] = {}
        total = differing = 0
        for row in rows:
            total, differing = int(row["total"]), int(row["differing"] or 0)
            step = found.get(row["path"])
            if step is None:
                step = found[row["path"]] = ComparedStep(row["path"], {}, bool(row["differs"]))
            step.statuses[row["run_id"]] = row["status"]
        return list(found.values()), total, differing

    def metrics(self, run_ids: Sequence[str], limit: int) -> tuple[list[ComparedMetric], int]:
        """The first ``limit`` metric rows (per path and name: each run's last value) in the
        comparison's order (the group first reported first, then name, item index, path),
        and the number of rows."""
        key = ("compare_metric_page", self.store.dialect)
        rows = self.store.query(key, limit=limit, **self._params(run_ids))
        found: dict[int, ComparedMetric] = {}
        total = 0
        for row in rows:
            total = int(row["total"])
            metric = found.get(row["ord"])
            if metric is None:
                index = row["frame_index"]
                metric = found[row["ord"]] = ComparedMetric(
                    row["path"],
                    row["name"],
                    row["inner"],
                    None if index is None else int(index),
                    row["item"],
                    {},
                )
            metric.values[row["run_id"]] = float(row["value"])
        return [found[o] for o in sorted(found)], total

    def pooled(self, run_ids: Sequence[str]) -> list[PooledMetric]:
        """Each metric pooled over the items of its step (its path with every index made
        ``[*]``), per run: sum, count, min and max of the last values; in the order of
        their first rows in :meth:`metrics`."""
        key = ("compare_metric_groups", self.store.dialect)
        pooled: dict[tuple[str, str], PooledMetric] = {}
        for row in self.store.query(key, **self._params(run_ids)):
            at = (row["grp"], row["name"])
            group = pooled.setdefault(at, PooledMetric(row["grp"], row["name"]))
            run_id = row["run_id"]
            group.total[run_id] = float(row["total"])
            group.count[run_id] = int(row["n"])
            group.low[run_id] = float(row["low"])
            group.high[run_id] = float(row["high"])
        return list(pooled.values())

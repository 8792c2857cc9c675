"""Where a reported metric value sits: its run, step path, group and item.

Shared by experiment comparison (:mod:`kaon.service._compare`) and the pages of a run's
metric values (:mod:`kaon.service._metric_pages`); kept apart from the comparison's views so
that reading a run's metrics (``kaon run``'s end-of-run report, its log window) does not build
them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kaon.store.base import StepRunRecord

_LAST_INDEX = re.compile(r"(.*)\[([0-9]+)\]([^\[\]]*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One reported metric value, placed in its run, step path and item."""

    run_id: str
    path: str
    group: str
    item_index: int | None
    item: Any
    name: str
    value: float
    step: int | None
    at: float
    reused_from: str | None = None


def frame_path(path: str) -> str:
    """The path of the innermost frame (foreach item, loop iteration) holding ``path``, or
    ``""`` outside frames: the row :func:`place` reads the item label from."""
    match = _LAST_INDEX.fullmatch(path)
    return "" if match is None else f"{match.group(1)}[{match.group(2)}]"


def place(path: str, rows: dict[str, StepRunRecord]) -> tuple[str, int | None, Any]:
    """``(group, item index, item label)`` of a step path (group == path outside frames)."""
    match = _LAST_INDEX.fullmatch(path)
    if match is None:
        return path, None, None
    head, index, tail = match.group(1), int(match.group(2)), match.group(3)
    frame = rows.get(f"{head}[{index}]")
    label = frame.item if frame is not None and frame.kind == "item" else None
    return f"{head}[*]{tail}", index, label

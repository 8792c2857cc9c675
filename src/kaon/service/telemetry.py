"""Measurements that ``/metrics`` exposes, recorded by any part of the server, in any of its
processes.

A tiny registry without dependencies, so that inner parts (the trigger loop) can record
without importing Prometheus or the API::

    from kaon.service import telemetry
    telemetry.record_trigger_lag("nightly/cron", lag_s)   # due time -> run created

``/metrics`` turns trigger lags into ``kaon_trigger_lag_seconds``, a histogram over every
trigger, and ``kaon_trigger_lag_seconds_max{trigger=...}``, the largest lag since start of
the :data:`WORST_TRIGGERS` triggers that lagged most (a bounded number of series, however
many triggers there are). The engine's turns that did work (applied events, decided,
committed, acted) are timed into ``kaon_engine_turn_seconds``, a histogram
(:func:`record_engine_turn`).

``kaon server`` runs its engine and its trigger loop in processes of their own: each sends
its :func:`snapshot` to the API's process, which :func:`absorb` s it; the readers
(:func:`engine_turns`, :func:`trigger_lags`) add up this process's records and the latest
snapshot of every other part.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from dataclasses import dataclass, field
from typing import TypedDict

TURN_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LAG_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0)
WORST_TRIGGERS = 20  # triggers shown by name in kaon_trigger_lag_seconds_max


@dataclass
class _Histogram:
    """Counts per bucket (not cumulative; the last is +Inf) and the sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def record(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def plus(self, other: tuple[list[int], float]) -> _Histogram:
        counts, total = other
        added = [a + b for a, b in zip(self.counts, counts, strict=True)]
        return _Histogram(self.bounds, added, self.total + total)

    def state(self) -> tuple[list[int], float]:
        return list(self.counts), self.total

    def cumulative(self) -> tuple[list[int], float]:
        return list(itertools.accumulate(self.counts)), self.total


class Snapshot(TypedDict):
    """What one process recorded: turn and lag histograms, and its worst triggers."""

    turns: tuple[list[int], float]
    lags: tuple[list[int], float]
    worst: list[tuple[str, float]]


_lock = threading.Lock()
_turns = _Histogram(TURN_BUCKETS)
_lags = _Histogram(LAG_BUCKETS)
_lag_max: dict[str, float] = {}
_absorbed: dict[str, Snapshot] = {}  # another process's last snapshot, by part


def record_trigger_lag(trigger: str, lag_s: float) -> None:
    """Record that ``trigger`` started a run ``lag_s`` seconds after it was due."""
    with _lock:
        _lags.record(lag_s)
        _lag_max[trigger] = max(lag_s, _lag_max.get(trigger, lag_s))


def record_engine_turn(seconds: float) -> None:
    """Record one engine turn that did work and took ``seconds`` (its wait excluded)."""
    with _lock:
        _turns.record(seconds)


def snapshot() -> Snapshot:
    """What this process recorded, to send to the process that serves ``/metrics``."""
    with _lock:
        worst = heapq.nlargest(WORST_TRIGGERS, _lag_max.items(), key=lambda item: item[1])
        return {"turns": _turns.state(), "lags": _lags.state(), "worst": worst}


def absorb(part: str, found: Snapshot) -> None:
    """Take ``part``'s latest :func:`snapshot` (it replaces the one before)."""
    with _lock:
        _absorbed[part] = found


def engine_turns() -> tuple[list[int], float]:
    """Cumulative counts of turns per bucket of :data:`TURN_BUCKETS` and +Inf, and the sum."""
    with _lock:
        turns = _turns
        for found in _absorbed.values():
            turns = turns.plus(found["turns"])
    return turns.cumulative()


def trigger_lags() -> tuple[tuple[list[int], float], list[tuple[str, float]]]:
    """The histogram of every trigger lag (cumulative counts per bucket of
    :data:`LAG_BUCKETS` and +Inf, and the sum), and the largest lag of the
    :data:`WORST_TRIGGERS` triggers that lagged most, largest first."""
    with _lock:
        lags = _lags
        worst = dict(_lag_max)
        for found in _absorbed.values():
            lags = lags.plus(found["lags"])
            for trigger, lag in found["worst"]:
                worst[trigger] = max(lag, worst.get(trigger, lag))
    top = heapq.nlargest(WORST_TRIGGERS, worst.items(), key=lambda item: item[1])
    return lags.cumulative(), top


def reset() -> None:
    """Forget everything recorded (for tests)."""
    global _turns, _lags
    with _lock:
        _turns = _Histogram(TURN_BUCKETS)
        _lags = _Histogram(LAG_BUCKETS)
        _lag_max.clear()
        _absorbed.clear()

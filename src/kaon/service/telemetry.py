"""In-process measurements that ``/metrics`` exposes, recorded by any part of the server.

A tiny registry without dependencies, so that inner parts (the trigger loop) can record
without importing Prometheus or the API::

    from kaon.service import telemetry
    telemetry.record_trigger_lag("nightly/cron", lag_s)   # due time -> run created

``/metrics`` turns it into ``kaon_trigger_lag_seconds{trigger=...}`` (the last lag seen, a
gauge) and ``kaon_trigger_lag_seconds_max`` (the largest since start). The engine's turns that
did work (applied events, decided, committed, acted) are timed into
``kaon_engine_turn_seconds``, a histogram (:func:`record_engine_turn`).
"""

from __future__ import annotations

import bisect
import itertools
import threading

_lock = threading.Lock()
_trigger_lag: dict[str, float] = {}
_trigger_lag_max: dict[str, float] = {}
TURN_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_turns = [0] * (len(TURN_BUCKETS) + 1)  # per bucket (not cumulative); the last is +Inf
_turn_sum = [0.0]


def record_trigger_lag(trigger: str, lag_s: float) -> None:
    """Record that ``trigger`` started a run ``lag_s`` seconds after it was due."""
    with _lock:
        _trigger_lag[trigger] = lag_s
        _trigger_lag_max[trigger] = max(lag_s, _trigger_lag_max.get(trigger, lag_s))


def trigger_lags() -> tuple[dict[str, float], dict[str, float]]:
    """The last and the largest lag recorded per trigger (copies)."""
    with _lock:
        return dict(_trigger_lag), dict(_trigger_lag_max)


def record_engine_turn(seconds: float) -> None:
    """Record one engine turn that did work and took ``seconds`` (its wait excluded)."""
    index = bisect.bisect_left(TURN_BUCKETS, seconds)
    with _lock:
        _turns[index] += 1
        _turn_sum[0] += seconds


def engine_turns() -> tuple[list[int], float]:
    """Cumulative counts of turns per bucket of :data:`TURN_BUCKETS` and +Inf, and the sum."""
    with _lock:
        counts, total = list(_turns), _turn_sum[0]
    return list(itertools.accumulate(counts)), total


def reset() -> None:
    """Forget everything recorded (for tests)."""
    with _lock:
        _trigger_lag.clear()
        _trigger_lag_max.clear()
        _turns[:] = [0] * len(_turns)
        _turn_sum[0] = 0.0

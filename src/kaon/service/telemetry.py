"""In-process measurements that ``/metrics`` exposes, recorded by any part of the server.

A tiny registry without dependencies, so that inner parts (the trigger loop) can record
without importing Prometheus or the API::

    from kaon.service import telemetry
    telemetry.record_trigger_lag("nightly/cron", lag_s)   # due time -> run created

``/metrics`` turns it into ``kaon_trigger_lag_seconds{trigger=...}`` (the last lag seen, a
gauge) and ``kaon_trigger_lag_seconds_max`` (the largest since start).
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_trigger_lag: dict[str, float] = {}
_trigger_lag_max: dict[str, float] = {}


def record_trigger_lag(trigger: str, lag_s: float) -> None:
    """Record that ``trigger`` started a run ``lag_s`` seconds after it was due."""
    with _lock:
        _trigger_lag[trigger] = lag_s
        _trigger_lag_max[trigger] = max(lag_s, _trigger_lag_max.get(trigger, lag_s))


def trigger_lags() -> tuple[dict[str, float], dict[str, float]]:
    """The last and the largest lag recorded per trigger (copies)."""
    with _lock:
        return dict(_trigger_lag), dict(_trigger_lag_max)


def reset() -> None:
    """Forget everything recorded (for tests)."""
    with _lock:
        _trigger_lag.clear()
        _trigger_lag_max.clear()

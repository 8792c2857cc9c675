"""``/metrics``: Prometheus text exposition of the server's state.

Gathered at scrape time from the store (so it is right across processes and restarts):

* ``kaon_runs{status}`` -- runs by status;
* ``kaon_step_runs{status}`` -- task step runs by status;
* ``kaon_queue_depth`` -- pending runs (created, not yet claimed by an engine);
* ``kaon_step_duration_seconds`` -- histogram of finished attempts' durations;
* ``kaon_trigger_lag_seconds{trigger}`` / ``kaon_trigger_lag_seconds_max{trigger}`` -- from
  :mod:`kaon.service.telemetry` (recorded by the trigger loop);
* ``kaon_api_requests_total{method,status}`` -- requests served by this process.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kaon.service import telemetry
from kaon.store import schema
from kaon.store.sql import SQLStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600)


class _StoreCollector(Collector):
    """Reads counts and the latency histogram from the store on each scrape."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        runs, steps = schema.runs.c, schema.step_runs.c
        with self.store.reading() as conn:
            run_counts = conn.execute(
                sa.select(runs.status, sa.func.count()).group_by(runs.status)
            ).all()
            step_counts = conn.execute(
                sa.select(steps.status, sa.func.count())
                .where(steps.kind == "task")
                .group_by(steps.status)
            ).all()
            buckets, total, count = self._latencies(conn)
        by_run = GaugeMetricFamily("kaon_runs", "Runs by status.", labels=["status"])
        for status, n in run_counts:
            by_run.add_metric([str(status)], float(n))
        yield by_run
        by_step = GaugeMetricFamily(
            "kaon_step_runs", "Task step runs by status.", labels=["status"]
        )
        for status, n in step_counts:
            by_step.add_metric([str(status)], float(n))
        yield by_step
        pending = sum(n for status, n in run_counts if status == "pending")
        yield GaugeMetricFamily(
            "kaon_queue_depth", "Pending runs waiting for an engine.", value=float(pending)
        )
        yield HistogramMetricFamily(
            "kaon_step_duration_seconds",
            "Durations of finished step attempts.",
            buckets=[*buckets, ("+Inf", float(count))],
            sum_value=total,
        )
        yield from _trigger_lag()

    def _latencies(self, conn: sa.Connection) -> tuple[list[tuple[str, float]], float, int]:
        a = schema.attempts.c
        duration = a.ended_at - a.started_at
        columns = [
            sa.func.sum(sa.case((duration <= bound, 1), else_=0)) for bound in LATENCY_BUCKETS
        ]
        stmt = sa.select(sa.func.count(), sa.func.sum(duration), *columns).where(
            a.ended_at.is_not(None), a.started_at.is_not(None)
        )
        row = conn.execute(stmt).one()
        count = int(row[0] or 0)
        buckets = [
            (_bound(bound), float(row[2 + i] or 0)) for i, bound in enumerate(LATENCY_BUCKETS)
        ]
        return buckets, float(row[1] or 0.0), count


def _bound(value: float) -> str:
    return repr(float(value))


def _trigger_lag() -> Iterator[Metric]:
    last, largest = telemetry.trigger_lags()
    gauge = GaugeMetricFamily(
        "kaon_trigger_lag_seconds", "Last lag from due time to run start.", labels=["trigger"]
    )
    for trigger, value in sorted(last.items()):
        gauge.add_metric([trigger], value)
    yield gauge
    peak = GaugeMetricFamily(
        "kaon_trigger_lag_seconds_max", "Largest trigger lag since start.", labels=["trigger"]
    )
    for trigger, value in sorted(largest.items()):
        peak.add_metric([trigger], value)
    yield peak


class ServerMetrics:
    """The server's Prometheus registry (one per app)."""

    def __init__(self, store: SQLStore) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StoreCollector(store))
        self.requests = Counter(
            "kaon_api_requests",
            "HTTP requests served, by method and status.",
            ["method", "status"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The Prometheus text of every metric now."""
        return generate_latest(self.registry)

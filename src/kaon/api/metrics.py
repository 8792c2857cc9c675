"""``/metrics``: Prometheus text exposition of the server's state.

Gathered at scrape time from the store (so it is right across processes and restarts):

* ``kaon_store_up`` -- 1 when the scrape could read the store; 0 when it could not (the
  database down or migrating), and the series below read from it are left out, while the
  others are served as usual;
* ``kaon_runs{status}`` -- runs by status;
* ``kaon_step_runs{status}`` -- task step runs by status;
* ``kaon_queue_depth`` -- pending runs (created, not yet claimed by an engine);
* ``kaon_step_duration_seconds`` -- histogram of finished attempts' durations;
* ``kaon_pool_slots_limit{pool}`` / ``kaon_pool_slots_used{pool}`` and
  ``kaon_permit_limit{tag}`` / ``kaon_permit_used{tag}`` -- pools and tag permits (every
  engine's holds, see :mod:`kaon.engine.tenancy`);
* ``kaon_trigger_lag_seconds`` -- histogram of trigger lags (due time to run created), and
  ``kaon_trigger_lag_seconds_max{trigger}`` for the 20 triggers that lagged most -- from
  :mod:`kaon.service.telemetry` (recorded by the trigger loop, in its own process);
* ``kaon_engine_turn_seconds`` -- histogram of this server's engine turns that did work (its
  engine process reports them to the API's);
* ``kaon_api_requests_total{method,status}`` -- requests served by this process;
* ``kaon_api_request_duration_seconds{method,route}`` -- histogram of request latency, by
  route template (``/runs/{run_id}``), to the response's last byte;
* ``kaon_build_info{version,python}`` -- always 1, labelled with what is running;
* ``process_*`` (CPU seconds, resident memory, open file descriptors, start time),
  ``python_info`` and ``python_gc_*`` -- the standard process collectors.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection

from kaon._version import __version__ as kaon_version
from kaon.errors import StoreError
from kaon.service import telemetry
from kaon.store import stats
from kaon.store.sql import SQLStore
from kaon.store.stats import DurationSums

log = logging.getLogger("kaon.api")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600)


# Attempts that ended longer ago than this are settled: their sums are kept, not re-read.
SETTLE_S = 120.0


class _StoreCollector(Collector):
    """Reads counts and the latency histogram from the store on each scrape.

    Counts are grouped index scans. The histogram of settled attempts (ended more than
    :data:`SETTLE_S` ago) is summed once and kept; each scrape adds what settled since and
    reads the recent ones: a scrape's cost follows the recent activity, not the history.
    """

    def __init__(self, store: SQLStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._settled = DurationSums(LATENCY_BUCKETS)
        self._settled_until: float | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        try:
            found = list(self._from_store())
        except StoreError as error:
            # The store down (or migrating) leaves its series out, not the whole page: the
            # HTTP, process, trigger and engine series are what an operator reads then.
            log.warning("/metrics without the store's series: %s", error)
            found = []
        yield GaugeMetricFamily(
            "kaon_store_up",
            "1 when this scrape could read the state store, else 0 (its series are left out).",
            value=1.0 if found else 0.0,
        )
        yield from found
        yield from _trigger_lag()
        yield _engine_turns()

    def _from_store(self) -> Iterator[Metric]:
        """The series read from the store (raises StoreError)."""
        with self.store.reading() as conn:  # one connection for every query of a scrape
            run_counts, step_counts = stats.status_counts(conn)
            durations = self._durations(conn)
        by_run = GaugeMetricFamily("kaon_runs", "Runs by status.", labels=["status"])
        for status, n in run_counts:
            by_run.add_metric([status], float(n))
        yield by_run
        by_step = GaugeMetricFamily(
            "kaon_step_runs", "Task step runs by status.", labels=["status"]
        )
        for status, n in step_counts:
            by_step.add_metric([status], float(n))
        yield by_step
        pending = sum(n for status, n in run_counts if status == "pending")
        yield GaugeMetricFamily(
            "kaon_queue_depth", "Pending runs waiting for an engine.", value=float(pending)
        )
        buckets = [(_bound(b), n) for b, n in zip(LATENCY_BUCKETS, durations.buckets, strict=True)]
        yield HistogramMetricFamily(
            "kaon_step_duration_seconds",
            "Durations of finished step attempts.",
            buckets=[*buckets, ("+Inf", float(durations.count))],
            sum_value=durations.total,
        )
        yield from self._pools()

    def _pools(self) -> Iterator[Metric]:
        """Slots and permits: limits and what live holds use (every engine's)."""
        used = {(u.kind, u.name): u.count for u in self.store.hold_usage()}
        names = ["pool"]
        limit = GaugeMetricFamily("kaon_pool_slots_limit", "Slots of each pool.", labels=names)
        taken = GaugeMetricFamily(
            "kaon_pool_slots_used", "Slots of each pool held by running attempts.", labels=names
        )
        for pool in self.store.pools():
            limit.add_metric([pool.name], float(pool.slots))
            taken.add_metric([pool.name], float(used.get(("pool", pool.name), 0)))
        yield limit
        yield taken
        tags = ["tag"]
        permit_limit = GaugeMetricFamily(
            "kaon_permit_limit", "Attempts each tag permit allows at once.", labels=tags
        )
        permit_used = GaugeMetricFamily(
            "kaon_permit_used", "Running attempts carrying each permitted tag.", labels=tags
        )
        for permit in self.store.permits():
            permit_limit.add_metric([permit.tag], float(permit.max))
            permit_used.add_metric([permit.tag], float(used.get(("tag", permit.tag), 0)))
        yield permit_limit
        yield permit_used

    def _durations(self, conn: Connection) -> DurationSums:
        settle = self.clock() - SETTLE_S
        with self._lock:
            if self._settled_until is None or settle > self._settled_until:
                newly = stats.attempt_durations(conn, LATENCY_BUCKETS, self._settled_until, settle)
                self._settled = self._settled.add(newly)
                self._settled_until = settle
            settled, until = self._settled, self._settled_until
        return settled.add(stats.attempt_durations(conn, LATENCY_BUCKETS, until, None))


def _bound(value: float) -> str:
    return repr(float(value))


def _engine_turns() -> Metric:
    counts, total = telemetry.engine_turns()
    bounds = [_bound(b) for b in telemetry.TURN_BUCKETS] + ["+Inf"]
    return HistogramMetricFamily(
        "kaon_engine_turn_seconds",
        "Engine turns that did work (apply, decide, commit, act), wait excluded.",
        buckets=[(b, float(n)) for b, n in zip(bounds, counts, strict=True)],
        sum_value=total,
    )


def _trigger_lag() -> Iterator[Metric]:
    (counts, total), worst = telemetry.trigger_lags()
    bounds = [_bound(b) for b in telemetry.LAG_BUCKETS] + ["+Inf"]
    yield HistogramMetricFamily(
        "kaon_trigger_lag_seconds",
        "Lag from a trigger's due time to its run's creation, over every trigger.",
        buckets=[(b, float(n)) for b, n in zip(bounds, counts, strict=True)],
        sum_value=total,
    )
    peak = GaugeMetricFamily(
        "kaon_trigger_lag_seconds_max",
        f"Largest lag since start of the {telemetry.WORST_TRIGGERS} triggers that lagged most.",
        labels=["trigger"],
    )
    for trigger, value in worst:
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
        self.latency = Histogram(
            "kaon_api_request_duration_seconds",
            "HTTP request latency to the response's last byte, by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=REQUEST_BUCKETS,
        )
        build = Gauge(
            "kaon_build_info",
            "Always 1: the Kaon version and Python implementation serving.",
            ["version", "python"],
            registry=self.registry,
        )
        build.labels(kaon_version, platform.python_version()).set(1)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)

    def exposition(self) -> bytes:
        """The Prometheus text of every metric now."""
        return generate_latest(self.registry)

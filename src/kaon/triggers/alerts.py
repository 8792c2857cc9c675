"""Alerts: webhooks when a run fails, succeeds, runs too long, or misses its deadline.

A workflow's ``alerts`` property configures them (no new version to change it)::

    {"on_failure": ["https://hooks.example/kaon"],   # run failed
     "on_success": ["https://..."],                  # run succeeded
     "max_duration_s": 3600,                         # a run still going after an hour
     "deadline": "07:30 Europe/Paris",               # no successful run by 07:30 that day
     "on_late": ["https://..."]}                     # where the last two go (default: on_failure)

A run's duration is the time since it started less the time it spent paused at breakpoints
(held for a person, from its ``run`` events): a run held at a breakpoint over lunch is not
"too long". A deadline counts from when it was set (the workflow's last change): the first
checked is the first to come after that. Every deadline since the last one checked is
checked, so one that passed while no server ran is alerted when one returns (the last
:data:`MAX_MISSED_DEADLINES` of them); the last one checked is kept in the trigger state.

:meth:`AlertService.scan` turns what happened into delivery rows (one per alert and URL,
never twice); :meth:`AlertService.deliver_due` POSTs them as JSON, retrying with
exponential backoff on errors and non-2xx answers. Each delivery's outcome is kept in the
``alert_deliveries`` table and written as an ``alert`` event of the run.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

from kaon.model.properties import parse_deadline
from kaon.model.status import RunStatus, paused_seconds
from kaon.store import schema
from kaon.store.base import EventRecord, RunRecord, StateStore, WriteBatch
from kaon.store.sql import SQLStore
from kaon.store.triggers import AlertDeliveryRecord, TriggerStore
from kaon.triggers.pass_failures import PassFailures
from kaon.triggers.strategies import workflow_properties

if TYPE_CHECKING:
    from kaon.store.registry import WorkflowRecord

log = logging.getLogger("kaon.alerts")

_CURSOR_KEY = "alerts:event_cursor"
_DEADLINE_KEY = "alerts:deadline:{workflow}"
MAX_MISSED_DEADLINES = 7
PER_URL_PASS = 20
"""The most deliveries to one URL a delivery pass takes (the oldest due)."""
"""The most deadlines of one workflow checked at once, after a long downtime (the latest)."""
Properties = Callable[[StateStore, str], dict[str, Any]]


def _urls(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def deadlines_between(at: dt.time, zone: dt.tzinfo, after: float, until: float) -> list[float]:
    """The daily deadlines at local time ``at`` in ``zone`` that fall in ``(after, until]``,
    oldest first (the last :data:`MAX_MISSED_DEADLINES` days at most)."""
    last = dt.datetime.fromtimestamp(until, zone).date()
    first = max(
        dt.datetime.fromtimestamp(after, zone).date(),
        last - dt.timedelta(days=MAX_MISSED_DEADLINES),
    )
    found: list[float] = []
    day = first
    while day <= last:
        deadline = dt.datetime.combine(day, at, tzinfo=zone).timestamp()
        if after < deadline <= until:
            found.append(deadline)
        day += dt.timedelta(days=1)
    return found


class AlertService:
    """Finds what to alert about and delivers the webhooks (see the module docs).

    ``max_attempts`` POSTs per delivery, waiting ``backoff_s * 2**(n-1)`` (at most
    ``max_backoff_s``) after the n-th failure. ``properties`` reads a workflow's
    properties (default: the registry). Each attempt first claims its delivery in the
    store for ``claim_s`` seconds, so the delivery threads of several servers on one store
    POST it once; a server that dies during the attempt leaves it to another after that.
    """

    def __init__(
        self,
        store: SQLStore,
        triggers: TriggerStore,
        *,
        properties: Properties = workflow_properties,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        timeout_s: float = 10.0,
        claim_s: float = 120.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.store = store
        self.triggers = triggers
        self.properties = properties
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.claim_s = claim_s
        self._client = client or httpx.Client(timeout=timeout_s)
        self._owns_client = client is None

    def close(self) -> None:
        """Close the HTTP client (if this service made it)."""
        if self._owns_client:
            self._client.close()

    # -- finding alerts ------------------------------------------------------------------

    def scan(self, now: float) -> int:
        """Record deliveries for runs that finished since the last scan, runs over their
        maximum duration, and missed deadlines. Returns how many were recorded."""
        alerts_of = self._alerts_reader()
        added = self._finished_runs(now, alerts_of)
        added += self._long_runs(now, alerts_of)
        added += self._deadlines(now)
        return added

    def scan_finished(self, now: float) -> int:
        """Like :meth:`scan`, for finished runs only (cheap enough for every pass)."""
        return self._finished_runs(now, self._alerts_reader())

    def _alerts_reader(self) -> Callable[[str], dict[str, Any]]:
        cache: dict[str, dict[str, Any]] = {}

        def alerts_of(workflow: str) -> dict[str, Any]:
            if workflow not in cache:
                found = self.properties(self.store, workflow).get("alerts")
                cache[workflow] = dict(found) if isinstance(found, Mapping) else {}
            return cache[workflow]

        return alerts_of

    def _finished_runs(self, now: float, alerts_of: Callable[[str], dict[str, Any]]) -> int:
        state = self.triggers.get_state(_CURSOR_KEY)
        if state is None:  # first scan: alert about what happens from now on
            self.triggers.put_state(_CURSOR_KEY, {"id": self.store.last_event_id()}, now)
            return 0
        cursor = int(state.get("id", 0))
        e = schema.events.c
        stmt = (
            sa.select(e.id, e.run_id, e.data)
            .where(e.id > cursor, e.kind == "run")
            .order_by(e.id)
            .limit(1000)
        )
        with self.store.reading() as conn:
            rows = list(conn.execute(stmt))
        added = 0
        for event_id, run_id, data in rows:
            cursor = max(cursor, int(event_id))
            status = (data or {}).get("status")
            kind = {"failed": "failure", "succeeded": "success"}.get(str(status))
            if kind is None:
                continue
            run = self.store.get_run(run_id)
            urls = _urls(alerts_of(run.workflow).get(f"on_{kind}"))
            # One alert per time the run ended so (a restarted run that fails again alerts
            # again), never two for one ending: its event's id is in the key.
            key = f"{kind}:{run_id}:{event_id}"
            added += self._record(run.workflow, run, kind, key, urls, now)
        if rows:
            self.triggers.put_state(_CURSOR_KEY, {"id": cursor}, now)
        return added

    def _late_urls(self, alerts: Mapping[str, Any]) -> list[str]:
        return _urls(alerts.get("on_late")) or _urls(alerts.get("on_failure"))

    def _long_runs(self, now: float, alerts_of: Callable[[str], dict[str, Any]]) -> int:
        from kaon.store.reads import SQLRunReads

        added = 0
        active = [RunStatus.RUNNING, RunStatus.PAUSED]
        for run in self.store.list_runs(statuses=active, limit=10_000):
            alerts = alerts_of(run.workflow)
            limit = alerts.get("max_duration_s")
            if not isinstance(limit, int | float) or isinstance(limit, bool):
                continue
            began = run.started_at or run.created_at
            if now - began <= limit:
                continue  # not even counting its pauses (most runs: no read)
            changes = SQLRunReads(self.store).run_status_changes(run.id, began)
            if now - began - paused_seconds(changes, began, now) > limit:
                urls = self._late_urls(alerts)
                key = f"duration:{run.id}"
                added += self._record(run.workflow, run, "duration", key, urls, now)
        return added

    def _deadlines(self, now: float) -> int:
        from kaon.store.registry import SQLRegistryStore

        watched: list[tuple[WorkflowRecord, Mapping[str, Any], str, dt.time, dt.tzinfo]] = []
        for workflow in SQLRegistryStore(self.store).list_workflows(limit=10_000):
            alerts = (workflow.properties or {}).get("alerts")
            if not isinstance(alerts, Mapping) or not isinstance(alerts.get("deadline"), str):
                continue
            try:
                at, zone = parse_deadline(alerts["deadline"])
            except (ValueError, KeyError) as error:
                log.warning("workflow %s: bad alert deadline: %s", workflow.name, error)
                continue
            watched.append((workflow, alerts, alerts["deadline"], at, zone))
        if not watched:
            return 0
        keys = [_DEADLINE_KEY.format(workflow=w.name) for w, *_ in watched]
        states = self.triggers.get_states(keys)
        checked: dict[str, dict[str, Any]] = {}
        added = 0
        for key, (workflow, alerts, text, local_time, area) in zip(keys, watched, strict=True):
            state = states.get(key)
            if state is None or state.get("deadline") != text:  # new, or changed: from now on
                since = min(workflow.updated_at or now, now)
                checked[key] = {"deadline": text, "checked_to": since}
            else:
                since = float(state["checked_to"])
            due = deadlines_between(local_time, area, since, now)
            if not due:
                continue
            checked[key] = {"deadline": text, "checked_to": due[-1]}
            if workflow.active_version is None:
                continue  # deactivated: no run is expected of it, none is late
            for deadline in due[-MAX_MISSED_DEADLINES:]:
                added += self._deadline_missed(workflow.name, alerts, deadline, area, now)
        # After the deliveries: a crash in between records them again, and they are deduped.
        self.triggers.put_states(checked, now)
        return added

    def _deadline_missed(
        self, workflow: str, alerts: Mapping[str, Any], deadline: float, zone: dt.tzinfo, now: float
    ) -> int:
        """Record the alert of ``deadline`` unless a run succeeded that day before it."""
        day = dt.datetime.fromtimestamp(deadline, zone).date()
        day_start = dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp()
        on_time = self.store.last_ended_run(
            workflow, RunStatus.SUCCEEDED, after=day_start, until=deadline
        )
        if on_time is not None:
            return 0
        key = f"deadline:{workflow}:{day.isoformat()}"
        latest = self.store.list_runs(workflow=workflow, limit=1)
        run = latest[0] if latest else None
        return self._record(workflow, run, "deadline", key, self._late_urls(alerts), now)

    def _record(
        self,
        workflow: str,
        run: RunRecord | None,
        kind: str,
        key: str,
        urls: list[str],
        now: float,
    ) -> int:
        payload = {
            "alert": kind,
            "workflow": workflow,
            "run_id": run.id if run else None,
            "status": run.status.value if run else None,
            "error": run.error if run else None,
            "created_at": run.created_at if run else None,
            "started_at": run.started_at if run else None,
            "ended_at": run.ended_at if run else None,
            "at": now,
        }
        added = 0
        for url in urls:
            record = AlertDeliveryRecord(
                workflow=workflow,
                kind=kind,
                dedupe_key=key,
                url=url,
                payload=payload,
                run_id=run.id if run else None,
                next_attempt_at=now,
                created_at=now,
            )
            added += int(self.triggers.add_delivery(record))
        return added

    # -- delivering ----------------------------------------------------------------------

    def deliver_due(self, now: float | None = None) -> int:
        """POST the deliveries due now once (those another sender has not taken first);
        returns how many succeeded.

        One webhook never holds up the others: a pass lists at most :data:`PER_URL_PASS`
        deliveries of each URL, and once an attempt to a URL fails (it hangs until the
        timeout, refuses, answers 500) the pass leaves that URL's other deliveries for the
        next pass, untouched (their attempts and backoff unchanged). A webhook that hangs
        thus costs a pass one timeout, not one per alert of a storm."""
        at = time.time() if now is None else now
        delivered = 0
        failing: set[str] = set()
        for record in self.triggers.due_deliveries(at, per_url=PER_URL_PASS):
            if record.url in failing:
                continue
            # The claim runs from now, not from the pass's start: the attempts before this
            # one may have taken longer than a claim lasts (a slow webhook), and a claim
            # that has run out already lets another replica POST it too.
            until = max(at, time.time()) + self.claim_s
            if self.triggers.claim_delivery(record, until=until):
                if self._attempt(record):
                    delivered += 1
                else:
                    failing.add(record.url)
        return delivered

    def _attempt(self, record: AlertDeliveryRecord) -> bool:
        assert record.id is not None
        code: int | None = None
        hopeless = False
        try:
            request = self._client.build_request("POST", record.url, json=record.payload)
            response = self._client.send(request)
            code = response.status_code
            error = None if 200 <= code < 300 else f"HTTP {code}"
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            # A URL no attempt can send to (kept before its properties were checked as
            # now): failed for good at once, never a retry.
            error, hopeless = f"{type(exc).__name__}: {exc}", True
        except Exception as exc:  # one failed attempt, never the end of the pass
            # httpx.HTTPError, and what else sending raises (UnicodeError for a host name
            # IDNA refuses): the delivery fails this attempt and the pass goes on.
            error = f"{type(exc).__name__}: {exc}"
        attempts = record.attempts + 1
        now = time.time()
        if error is None:
            self.triggers.update_delivery(
                record.id,
                status="delivered",
                attempts=attempts,
                response_code=code,
                last_error=None,
                delivered_at=now,
            )
            self._event(record, "delivered", attempts, code, None, now)
            return True
        if hopeless or attempts >= self.max_attempts:
            self.triggers.update_delivery(
                record.id, status="failed", attempts=attempts, response_code=code, last_error=error
            )
            self._event(record, "failed", attempts, code, error, now)
            log.warning("alert %s to %s failed for good: %s", record.dedupe_key, record.url, error)
            return False
        delay = min(self.backoff_s * 2 ** (attempts - 1), self.max_backoff_s)
        self.triggers.update_delivery(
            record.id,
            attempts=attempts,
            response_code=code,
            last_error=error,
            next_attempt_at=now + delay,
        )
        return False

    def _event(
        self,
        record: AlertDeliveryRecord,
        outcome: str,
        attempts: int,
        code: int | None,
        error: str | None,
        now: float,
    ) -> None:
        if record.run_id is None:
            return
        data = {
            "alert": record.kind,
            "url": record.url,
            "outcome": outcome,
            "attempts": attempts,
            "response_code": code,
            "error": error,
        }
        self.store.write(WriteBatch(events=[EventRecord(record.run_id, "alert", now, data)]))

    def run_forever(self, stop: threading.Event, interval_s: float = 0.5) -> None:
        """Deliver due webhooks until ``stop`` is set (the server runs this in a thread)."""
        failures = PassFailures(log, "alert delivery pass", interval_s)
        while not stop.is_set():
            try:
                self.deliver_due()
            except Exception as error:  # a delivery loop must survive any one failure
                stop.wait(failures.failed(error))
                continue
            failures.succeeded()
            stop.wait(interval_s)

"""The trigger service: one pass (:meth:`TriggerService.tick`) fires whatever is due.

Each pass, for every active workflow (from a :class:`~kaon.triggers.catalog.WorkflowCatalog`):

1. repairs firings claimed but never created (a crash between the two; every 10 s),
2. fires due cron slots (catch-up and jitter per trigger),
3. consumes new signals (a cursor in the trigger store) for signal triggers, matched
   against the registry as read after them (a signal sent right after a push counts),
4. polls data-arrival triggers whose poll interval elapsed,
5. advances running backfills (the sliding window),
6. scans for alerts (finished runs each pass; long runs and deadlines every 5 s),
7. with a retention policy (``kaon server --retention``), deletes a bounded batch of runs
   and one of trigger firings past it every minute (each pass while a backlog drains;
   :mod:`kaon.triggers.retention`);
   with or without one, finishes run deletions whose deleter died midway (repair passes).

The clock is injected: tests pass ``now`` to :meth:`tick` to fire cron slots without
waiting, and a server can read a fake clock from a file (:func:`clock_from_env`).

**Trigger lag** (due time to run created) is reported through ``on_lag(trigger, seconds)``;
the default hook is :func:`kaon.service.telemetry.record_trigger_lag`, which ``/metrics``
exposes as ``kaon_trigger_lag_seconds{trigger="<workflow>/<kind>"}``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaon.errors import ConfigurationError, KaonError, StoreUnavailableError
from kaon.model.triggers import (
    CronTriggerSpec,
    DataTriggerSpec,
    SignalTriggerSpec,
    TriggerSpec,
    trigger_id,
)
from kaon.store.base import StateStore
from kaon.store.sql import SQLStore
from kaon.store.triggers import SQLTriggerStore, TriggerStore
from kaon.triggers import backfill, retention
from kaon.triggers.alerts import AlertService
from kaon.triggers.catalog import (
    ActiveWorkflow,
    LagHook,
    Launch,
    RegistryCatalog,
    WorkflowCatalog,
    launch_all,
    repair,
)
from kaon.triggers.cron import due_slots, jitter, schedule_of, slot_iso
from kaon.triggers.data import find_arrivals
from kaon.triggers.pass_failures import PassFailures
from kaon.triggers.retention import RetentionPolicy
from kaon.triggers.signals import match_signal, trigger_params

log = logging.getLogger("kaon.triggers")

FAKE_CLOCK_ENV = "KAON_FAKE_CLOCK_FILE"
"""Environment variable naming a file whose content (epoch seconds) is the server's clock
for triggers; for tests that fire cron slots without waiting."""

_SIGNAL_CURSOR = "signals:cursor"
_REPAIR_EVERY_S = 10.0
_REPAIR_GRACE_S = 30.0  # a firing claimed this long ago without its run: its server failed
_RETRY_AFTER_S = 1.0  # after this server's own pass failed for a moment: its claims
_SLOW_ALERTS_EVERY_S = 5.0
# Retention (kaon server --retention): a pass deletes a bounded batch of runs this often, and
# again on the next loop pass while the last one deleted some (a backlog drains in batches).
_RETENTION_EVERY_S = 60.0
_RETENTION_BACKLOG_S = 1.0


def clock_from_env() -> Callable[[], float]:
    """``time.time``, or a clock read from the file named by :data:`FAKE_CLOCK_ENV`.

    The file holds a number of epoch seconds; when it is missing or unreadable the real
    time is used.
    """
    path = os.environ.get(FAKE_CLOCK_ENV)
    if not path:
        return time.time
    file = Path(path)

    def read() -> float:
        try:
            return float(file.read_text().strip())
        except (OSError, ValueError):
            return time.time()

    return read


def _record_lag(trigger: str, seconds: float) -> None:
    from kaon.service import telemetry

    telemetry.record_trigger_lag(trigger, seconds)


def _signal_triggers(
    workflows: list[ActiveWorkflow],
) -> list[tuple[ActiveWorkflow, SignalTriggerSpec]]:
    """The signal triggers of ``workflows``, with their workflows."""
    return [
        (workflow, trigger)
        for workflow in workflows
        for trigger in workflow.spec.triggers
        if isinstance(trigger, SignalTriggerSpec)
    ]


def _launch(
    workflow: ActiveWorkflow,
    trigger: CronTriggerSpec | DataTriggerSpec,
    tid: str,
    key: str,
    variables: dict[str, Any],
    labels: dict[str, object],
    due_at: float,
) -> Launch:
    """The launch of one firing of a cron or data trigger, its parameters computed over
    ``variables``. When they fail for this firing (an expression over this slot or path),
    the launch carries the problem: its firing is claimed as dropped with why, and logged,
    once; the trigger's other firings go on (see :func:`~kaon.triggers.catalog.launch_all`)."""
    problem: str | None = None
    try:
        params = trigger_params(trigger.params, variables, trigger.location)
    except KaonError as error:
        params, problem = {}, str(error)
    return Launch(workflow, tid, key, params, labels, due_at, problem)


@dataclass(frozen=True, slots=True)
class Fired:
    """A run a pass created: which trigger, for what, and how late."""

    run_id: str
    workflow: str
    kind: str
    key: str
    lag_s: float


@dataclass(slots=True)
class _Pass:
    """What one pass decided: the runs to launch, then the trigger states to save and the
    cron cursors to keep once those are saved."""

    now: float
    launches: list[Launch] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    cron_last: dict[str, float] = field(default_factory=dict)
    cron_next: dict[str, float] = field(default_factory=dict)


SERVED_KEY = "served:"
"""The trigger state naming the cron triggers a workflow served last (``served:<workflow>``)."""


class TriggerService:
    """Fires the triggers of the catalog's workflows against a SQL store (see module docs).

    ``catalog`` defaults to the registry's active workflows; ``clock`` (the time triggers
    see; ``tick()`` without ``now`` reads it) defaults to :func:`clock_from_env`; ``on_lag``
    receives each run's trigger lag; ``alerts`` is scanned each pass (default: an
    :class:`AlertService` over the store, delivered by :meth:`run_forever`'s second thread;
    pass ``with_alerts=False`` for none). ``settings`` (the server's) gives the executor
    name recorded on the runs.
    """

    def __init__(
        self,
        store: StateStore,
        catalog: WorkflowCatalog | None = None,
        *,
        clock: Callable[[], float] | None = None,
        on_lag: LagHook | None = _record_lag,
        alerts: AlertService | None = None,
        with_alerts: bool = True,
        executor: str = "",
        triggers: TriggerStore | None = None,
        settings: Any = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        if not isinstance(store, SQLStore):
            raise ConfigurationError("the trigger service needs a SQL store")
        self.store = store
        self.triggers = triggers or SQLTriggerStore(store)
        self.catalog: WorkflowCatalog = catalog or RegistryCatalog(store)
        self.clock = clock or clock_from_env()
        self.on_lag = on_lag
        if alerts is None and with_alerts:
            alerts = AlertService(store, self.triggers)
        self.alerts = alerts
        self.executor = executor or str(getattr(settings, "executor", "") or "")
        self._next_cron: dict[str, float] = {}  # when each cron trigger is due next
        self._last_slot: dict[str, float] = {}  # each cron trigger's cursor, as last saved
        self._ids: dict[tuple[str, int], tuple[TriggerSpec, str]] = {}  # see _id
        self._since: dict[str, float] = {}  # when each signal trigger started (recorded)
        self._next_repair = float("-inf")
        self._repair_grace_s = _REPAIR_GRACE_S
        self._next_slow_alerts = float("-inf")
        self._backfill_problems: dict[str, str] = {}  # each stuck backfill's problem, logged
        self.retention = retention
        self._next_retention = float("-inf")

    # -- the loop ------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event, interval_s: float = 0.25) -> None:
        """Call :meth:`tick` every ``interval_s``, or sooner when a cron slot falls due
        before that, until ``stop`` is set (alert webhooks are delivered by a second thread
        meanwhile). A failing pass is logged and the loop goes on."""
        sender = None
        if self.alerts is not None:
            sender = threading.Thread(
                target=self.alerts.run_forever, args=(stop,), name="kaon-alerts", daemon=True
            )
            sender.start()
        failures = PassFailures(log, "trigger pass", interval_s)
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception as error:  # the trigger loop must outlive any one bad pass
                    stop.wait(failures.failed(error))
                    continue
                failures.succeeded()
                stop.wait(self._until_due(interval_s))
        finally:
            if sender is not None:
                sender.join(timeout=15)

    def _until_due(self, interval_s: float) -> float:
        """Seconds to wait before the next pass: ``interval_s``, or until the next cron
        slot if that is sooner (so a slot fires as it falls due, not up to a pass later). A
        slot already overdue (a trigger or a store failing) waits the whole interval."""
        soonest = min(self._next_cron.values(), default=float("inf"))
        delay = soonest - self.clock()
        return min(interval_s, delay) if delay > 0 else interval_s

    def tick(self, now: float | None = None) -> list[Fired]:
        """One pass at time ``now`` (default: the clock). Returns the runs it created.

        Every trigger's due firings are gathered first and launched together (three writes
        whatever their number, see :func:`~kaon.triggers.catalog.launch_all`); the
        triggers' new states (cron cursors, the signal cursor, data polls) are saved after
        the firings are claimed, so a crash in between fires nothing twice and skips none.
        """
        at = self.clock() if now is None else now
        if at >= self._next_repair:
            self._next_repair = at + _REPAIR_EVERY_S
            grace, self._repair_grace_s = self._repair_grace_s, _REPAIR_GRACE_S
            repaired = repair(
                self.store,
                self.triggers,
                self.catalog,
                now=at,
                grace_s=grace,
                executor=self.executor,
                on_lag=self.on_lag,
            )
            if repaired:
                log.info("created the runs of %d firings claimed before", repaired)
            self._finish_deletions()
        workflows = self.catalog.active_workflows()
        self._read_new_cron_states(workflows, at)
        work = _Pass(at)
        for workflow in workflows:
            for trigger in workflow.spec.triggers:
                if not isinstance(trigger, SignalTriggerSpec):
                    self._guarded(workflow, trigger, work)
        self._signals(_signal_triggers(workflows), work)
        fired = self._launch(work)
        fired += self._backfills(at)
        self._scan_alerts(at)
        self._retain(at)
        return fired

    def _guarded(self, workflow: ActiveWorkflow, trigger: TriggerSpec, work: _Pass) -> None:
        try:
            if isinstance(trigger, CronTriggerSpec):
                self._cron(workflow, trigger, work)
            elif isinstance(trigger, DataTriggerSpec):
                self._data(workflow, trigger, work)
        except KaonError as error:
            log.warning("trigger %s of %s failed: %s", trigger.kind, workflow.name, error)
        except Exception:  # a defect in one trigger must not stop the others' firings
            log.exception("trigger %s of %s failed", trigger.kind, workflow.name)

    def _launch(self, work: _Pass) -> list[Fired]:
        """Launch the pass's firings, then save the triggers' states (see :meth:`tick`).

        When the store fails for a moment after the firings were claimed, their runs are
        created by a repair one second later (not after the 30 s a crashed server's claims
        wait), and the pass's error goes up as before."""
        try:
            created = launch_all(
                self.store, self.triggers, work.launches, now=work.now, executor=self.executor
            )
        except StoreUnavailableError:
            self._next_repair = min(self._next_repair, work.now + _RETRY_AFTER_S)
            self._repair_grace_s = _RETRY_AFTER_S / 2
            raise
        self.triggers.put_states(work.states, work.now)
        self._last_slot.update(work.cron_last)
        self._next_cron.update(work.cron_next)
        fired: list[Fired] = []
        for item, run in created:
            lag = max(0.0, self.clock() - item.due_at)
            kind = str(item.labels.get("trigger"))
            if self.on_lag is not None:
                self.on_lag(f"{item.workflow.name}/{kind}", lag)
            fired.append(Fired(run.id, item.workflow.name, kind, item.key, lag))
        return fired

    # -- cron ----------------------------------------------------------------------------

    def _id(self, workflow: str, trigger: TriggerSpec) -> str:
        """``trigger_id`` of a catalog's trigger, computed once per trigger object (the
        catalog keeps its specs: a pass over thousands of triggers hashes none)."""
        key = (workflow, id(trigger))
        known = self._ids.get(key)
        if known is None or known[0] is not trigger:
            known = (trigger, trigger_id(workflow, trigger))
            self._ids[key] = known
        return known[1]

    def _read_new_cron_states(self, workflows: list[ActiveWorkflow], now: float) -> None:
        """For the cron triggers this service has not seen yet: read their states in one
        query, and record the new ones as starting now in one write (they fire from now on),
        so that a start with thousands of workflows costs two statements, not thousands."""
        serving = 0  # cron triggers served now
        new: dict[str, tuple[str, CronTriggerSpec, str]] = {}
        for workflow in workflows:
            for trigger in workflow.spec.triggers:
                if isinstance(trigger, CronTriggerSpec):
                    serving += 1
                    tid = self._id(workflow.name, trigger)
                    if tid not in self._last_slot:
                        new[f"cron:{tid}"] = (tid, trigger, workflow.name)
        if len(self._last_slot) > serving - len(new):  # some no longer served (rare)
            # A workflow with new triggers too gets its served set below, after it is read.
            changing = {name for _, _, name in new.values()}
            self._forget_unserved(self._cron_ids(workflows), now, keep=changing)
        if not new:
            return
        changed = {name for _, _, name in new.values()}
        served = self._cron_ids([w for w in workflows if w.name in changed])
        keys = [*new, *(f"{SERVED_KEY}{name}" for name in changed)]
        found = self.triggers.get_states(keys)
        first = {key: {"last_slot": now} for key in new if key not in found}
        restarted: dict[str, dict[str, Any]] = {}
        for key, (tid, trigger, name) in new.items():
            state = found.get(key)
            before = found.get(f"{SERVED_KEY}{name}")
            # A trigger its workflow did not serve just before (a rollback to a version with
            # another schedule, a trigger deactivated and back) starts from now: the slots in
            # between belonged to another schedule. One it served catches up after downtime.
            unserved = before is not None and tid not in before.get("tids", ())
            if state is None or unserved:  # first seen: fire from now on
                if state is not None:
                    restarted[key] = {"last_slot": now}
                self._last_slot[tid] = now
                try:
                    self._next_cron[tid] = self._next_due(tid, trigger, now)
                except KaonError as error:  # a schedule with no slot: the others go on
                    log.warning("trigger cron of %s failed: %s", name, error)
                    self._next_cron[tid] = float("inf")
            else:  # due from its saved cursor (catch-up after downtime)
                self._last_slot[tid] = float(state["last_slot"])
        self.triggers.init_states(first, now)  # another service may have moved them on
        sets = {f"{SERVED_KEY}{name}": {"tids": sorted(served[name])} for name in changed}
        self.triggers.put_states({**restarted, **sets}, now)

    def _cron_ids(self, workflows: list[ActiveWorkflow]) -> dict[str, set[str]]:
        """The ids of each workflow's cron triggers, by workflow name."""
        return {
            w.name: {self._id(w.name, t) for t in w.spec.triggers if isinstance(t, CronTriggerSpec)}
            for w in workflows
        }

    def _forget_unserved(
        self,
        served: dict[str, set[str]],
        now: float,
        *,
        keep: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Drop the in-memory cursors of cron triggers no longer served (their workflow was
        deactivated, or its active version has other ones), and record what each such
        workflow serves now: a trigger back later (reactivated, or added back by another
        version) then starts from its return, not from its old cursor (no burst of the
        slots it did not serve). The served sets of the workflows in ``keep`` are left to the
        caller (it reads them first)."""
        serving = {tid for tids in served.values() for tid in tids}
        dropped = [t for t in self._last_slot if t not in serving]
        names: set[str] = set()
        for tid in dropped:
            del self._last_slot[tid]
            self._next_cron.pop(tid, None)
            names.add(tid.rsplit(":", 2)[0])  # <workflow>:cron:<digest>
        names -= keep
        if names:
            sets = {f"{SERVED_KEY}{name}": {"tids": sorted(served.get(name, ()))} for name in names}
            self.triggers.put_states(sets, now)

    def _cron(self, workflow: ActiveWorkflow, trigger: CronTriggerSpec, work: _Pass) -> None:
        tid = self._id(workflow.name, trigger)
        now = work.now
        if now < self._next_cron.get(tid, float("-inf")):
            return  # nothing due before the next slot we computed
        last = self._last_slot.get(tid)
        if last is None:  # not read by _read_new_cron_states (a catalog that changed)
            state = self.triggers.get_state(f"cron:{tid}")
            last = float(state["last_slot"]) if state else now
        try:
            slots, cursor = due_slots(trigger, tid, last, now)
        except ConfigurationError:  # a schedule with no slot: said once, not every pass
            self._next_cron[tid] = float("inf")
            raise
        for slot in slots:
            iso = slot_iso(slot, trigger.timezone)
            labels: dict[str, object] = {"trigger": "cron", "slot": iso}
            due = slot + jitter(tid, slot, trigger.jitter_s)
            work.launches.append(_launch(workflow, trigger, tid, iso, {"slot": iso}, labels, due))
        if cursor != last:
            work.states[f"cron:{tid}"] = {"last_slot": cursor}
        work.cron_last[tid] = cursor
        work.cron_next[tid] = self._next_due(tid, trigger, cursor)

    @staticmethod
    def _next_due(tid: str, trigger: CronTriggerSpec, after: float) -> float:
        slot = schedule_of(trigger).next_slot(after)
        return slot + jitter(tid, slot, trigger.jitter_s)

    # -- signals -------------------------------------------------------------------------

    def _signals(
        self, triggers: list[tuple[ActiveWorkflow, SignalTriggerSpec]], work: _Pass
    ) -> None:
        # Every pass registers the triggers it sees, signals or not: a trigger counts the
        # signals received from its start on, never from the first pass that had signals.
        since = self._signals_since(triggers, work.now)
        state = self.triggers.get_state(_SIGNAL_CURSOR) or {"id": 0}
        cursor = int(state.get("id", 0))
        signals = self.store.signals(after_id=cursor, limit=1000)
        if not signals:
            return
        # The pass's copy of the registry may be older than these signals (it is re-read
        # every second), and the cursor moves past them for good: they are matched against
        # the registry read after them, so a signal sent right after a push (or a
        # deactivation) meets the workflow as it is then.
        triggers = _signal_triggers(self.catalog.active_workflows(fresh=True))
        since = self._signals_since(triggers, work.now)
        for signal in signals:
            assert signal.id is not None
            cursor = max(cursor, signal.id)
            for workflow, trigger in triggers:
                tid = self._id(workflow.name, trigger)
                if signal.name != trigger.signal or signal.at < since[tid]:
                    continue
                if not signal.reaches(workflow.owner_group):
                    continue  # the sender may not operate this workflow
                try:
                    found = match_signal(trigger, workflow.spec, signal)
                except KaonError as error:
                    log.warning("signal %s for %s: %s", signal.id, workflow.name, error)
                    continue
                if found is not None:
                    labels: dict[str, object] = {
                        "trigger": "signal",
                        "signal": signal.name,
                        "signal_id": signal.id,
                    }
                    launch = Launch(
                        workflow, tid, found.dedupe_key, found.params, labels, signal.at
                    )
                    work.launches.append(launch)
        work.states[_SIGNAL_CURSOR] = {"id": cursor}

    def _signals_since(
        self, triggers: list[tuple[ActiveWorkflow, SignalTriggerSpec]], now: float
    ) -> dict[str, float]:
        """When each trigger started counting signals (see :meth:`_first_seen`)."""
        return {
            self._id(w.name, t): self._first_seen(self._id(w.name, t), now, w.since)
            for w, t in triggers
        }

    def _first_seen(self, tid: str, now: float, pushed_at: float | None) -> float:
        """When a trigger started counting signals: when the version that brought it was
        pushed (a signal sent right after the push counts, even when this pass is the first
        to see the trigger), or when the service first saw it if that was earlier (or when
        the catalog does not say). Recorded once, so later versions keep it."""
        known = self._since.get(tid)
        if known is not None:
            return known
        key = f"since:{tid}"
        state = self.triggers.get_state(key)
        if state is None:
            start = now if pushed_at is None else min(now, pushed_at)
            self.triggers.put_state(key, {"at": start}, now)
        else:
            start = float(state["at"])
        self._since[tid] = start
        return start

    # -- data ----------------------------------------------------------------------------

    def _data(self, workflow: ActiveWorkflow, trigger: DataTriggerSpec, work: _Pass) -> None:
        tid = trigger_id(workflow.name, trigger)
        key = f"data:{tid}"
        now = work.now
        state = self.triggers.get_state(key) or {}
        if now < float(state.get("next_poll", float("-inf"))):
            return
        work.states[key] = {"next_poll": now + trigger.poll_s}
        for arrival in find_arrivals(trigger, now):
            variables = {"path": arrival.path, "date": arrival.date}
            labels: dict[str, object] = {"trigger": "data", "path": arrival.path}
            launch = _launch(workflow, trigger, tid, arrival.path, variables, labels, now)
            work.launches.append(launch)

    # -- backfills and alerts ------------------------------------------------------------

    def _backfills(self, now: float) -> list[Fired]:
        fired: list[Fired] = []
        for record in self.triggers.list_backfills(statuses=[backfill.RUNNING]):
            try:
                workflow = self.catalog.get(record.workflow)
                started = backfill.advance(
                    self.store, self.triggers, record, workflow, now=now, executor=self.executor
                )
            except KaonError as error:
                # Said once per problem, not on every pass (4 a second) while it lasts.
                if self._backfill_problems.get(record.id) != str(error):
                    self._backfill_problems[record.id] = str(error)
                    log.warning("backfill %s waits: %s", record.id, error)
                continue
            if self._backfill_problems.pop(record.id, None) is not None:
                log.info("backfill %s goes on", record.id)
            fired += [Fired(r, record.workflow, "backfill", record.id, 0.0) for r in started]
        return fired

    def _finish_deletions(self) -> None:
        """Finish run deletions whose deleter died midway (every repair pass, with or
        without a retention policy: a ``DELETE /runs/{id}`` killed midway is finished too)."""
        try:
            retention.finish_abandoned(self.store)
        except KaonError as error:
            log.warning("finishing interrupted run deletions failed: %s", error)

    def _retain(self, now: float) -> None:
        """Delete a bounded batch of runs past the server's retention, every
        :data:`_RETENTION_EVERY_S` (or sooner while a backlog remains)."""
        if self.retention is None or now < self._next_retention:
            return
        try:
            outcome = retention.apply(self.store, self.retention)
        except KaonError as error:
            log.warning("retention pass failed: %s", error)
            outcome = None
        try:  # firings are stamped by this service's clock: aged by it too
            firings = retention.expire_firings(self.triggers, self.retention, now=now)
        except KaonError as error:
            log.warning("retention pass over trigger firings failed: %s", error)
            firings = 0
        backlog = outcome is not None and bool(outcome.deleted)
        backlog = backlog or firings >= self.retention.firing_batch
        self._next_retention = now + (_RETENTION_BACKLOG_S if backlog else _RETENTION_EVERY_S)

    def _scan_alerts(self, now: float) -> None:
        if self.alerts is None:
            return
        try:
            if now >= self._next_slow_alerts:
                self._next_slow_alerts = now + _SLOW_ALERTS_EVERY_S
                self.alerts.scan(now)
            else:
                self.alerts.scan_finished(now)
        except KaonError as error:
            log.warning("alert scan failed: %s", error)

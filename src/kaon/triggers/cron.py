"""Cron schedules in a time zone: slots, catch-up after downtime, deterministic jitter.

Slots are computed on the *wall clock* of the trigger's time zone with croniter and then
mapped to instants, which makes daylight-saving changes behave as people expect:

* a wall-clock time skipped when clocks spring forward (02:30 on the last Sunday of March
  in Europe/Paris) fires once, shifted forward by the gap (03:30 CEST);
* a wall-clock time that happens twice when clocks fall back fires once, at its first
  occurrence, unless the expression's hour field is a wildcard (``*/15 * * * *``,
  ``0 * * * *``): then it fires at both, so an hourly job still runs every hour.

All times are epoch seconds; slots are returned as floats, oldest first.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Iterator
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from kaon.errors import ConfigurationError
from kaon.model.triggers import CatchUp, CronTriggerSpec, cron_problem

_MAX_SHIFT_S = 3 * 3600.0  # more than any DST shift: bounds how far naive order can differ
MAX_SLOTS = 100_000  # the most slots one call enumerates (a guard against '* * * * * *')
_NEXT_CACHED = 64  # next_slot answers kept per schedule

UTC = dt.UTC


@lru_cache(maxsize=256)
def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``. Raises ConfigurationError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as error:
        raise ConfigurationError(f"unknown time zone {name!r}") from error


class CronSchedule:
    """The slots of one cron expression in one time zone."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        problem = cron_problem(expression)  # as a workflow's trigger is checked
        if problem is not None:
            raise ConfigurationError(problem)
        self.expression = expression
        self.timezone = timezone
        self.zone = time_zone(timezone)
        self._repeat_folds = "*" in expression.split()[1]  # the hour field
        # Parsed once: each walk starts from a copy (parsing costs far more than a step).
        self._parsed = croniter(expression, dt.datetime(2000, 1, 1))
        # Recent next_slot answers: the triggers sharing this schedule ask for the same
        # instants (their last slot, the start of a pass), and a walk costs ~0.3 ms.
        self._next: dict[float, float] = {}

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.timezone!r})"

    def _instants(self, naive: dt.datetime) -> list[float]:
        """The instants at which wall-clock time ``naive`` happens (1, or 2 in a fold)."""
        first = naive.replace(tzinfo=self.zone, fold=0)
        second = naive.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.timestamp()]
        exists = first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == naive
        if not exists:  # in a spring-forward gap: shifted forward by the gap
            return [first.timestamp()]
        if self._repeat_folds:
            return sorted({first.timestamp(), second.timestamp()})
        return [min(first.timestamp(), second.timestamp())]

    def _naive(self, at: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(at, self.zone).replace(tzinfo=None)

    def _margin(self, at: float) -> float:
        """How far wall-clock order may differ from time order near ``at``: the size of a
        DST shift within a few hours of it (plus a second), else one second."""
        before = dt.datetime.fromtimestamp(at - _MAX_SHIFT_S, self.zone).utcoffset()
        after = dt.datetime.fromtimestamp(at + _MAX_SHIFT_S, self.zone).utcoffset()
        if before is None or after is None or before == after:
            return 1.0
        return abs((after - before).total_seconds()) + 1.0

    def _walk(self, after: float, margin: float) -> Iterator[float]:
        """Candidate instants from ``margin`` before ``after``, in roughly increasing order
        (never more than a DST shift out of order)."""
        start = self._naive(after - margin)
        walker = copy.copy(self._parsed)
        walker.set_current(start, force=True)
        for _ in range(MAX_SLOTS):
            try:
                naive = walker.get_next(dt.datetime)
            except CroniterBadDateError:  # a date that never comes (February 30th)
                raise ConfigurationError(
                    f"cron expression {self.expression!r} never matches a date"
                ) from None
            yield from self._instants(naive)

    def next_slot(self, after: float) -> float:
        """The first slot strictly after ``after``."""
        found = self._next.get(after)
        if found is None:
            if len(self._next) >= _NEXT_CACHED:
                self._next.clear()
            found = self._next[after] = self._next_slot(after)
        return found

    def _next_slot(self, after: float) -> float:
        margin = self._margin(after)
        best: float | None = None
        for at in self._walk(after, margin):
            if at > after and (best is None or at < best):
                best = at
            if best is not None and at > best + self._margin(best):
                return best
        if best is None:  # pragma: no cover - croniter always yields
            raise ConfigurationError(f"cron expression {self.expression!r} has no next slot")
        return best

    def slots_between(self, start: float, end: float, limit: int = MAX_SLOTS) -> list[float]:
        """Every slot ``s`` with ``start <= s <= end``, oldest first, at most ``limit``."""
        found: set[float] = set()
        tail = self._margin(end)
        for at in self._walk(start - 1e-6, self._margin(start)):
            if start <= at <= end:
                found.add(at)
            if at > end + tail or len(found) >= limit + 4:
                break
        return sorted(found)[:limit]

    def previous_slot(self, at: float) -> float | None:
        """The last slot at or before ``at`` within a year, if any."""
        slots = self.slots_between(at - 366 * 86400.0, at)
        return slots[-1] if slots else None


def schedule_of(trigger: CronTriggerSpec) -> CronSchedule:
    """The schedule of a cron trigger (cached per expression and time zone)."""
    return _schedule(trigger.cron, trigger.timezone)


@lru_cache(maxsize=65_536)  # one per distinct expression: a registry has thousands
def _schedule(expression: str, timezone: str) -> CronSchedule:
    return CronSchedule(expression, timezone)


def jitter(trigger_id: str, slot: float, jitter_s: float) -> float:
    """A deterministic delay in ``[0, jitter_s)`` for one slot of one trigger.

    The same trigger and slot always get the same delay (so every server replica agrees
    and a restart does not move a slot); different slots spread over the range.
    """
    if jitter_s <= 0:
        return 0.0
    digest = hashlib.sha256(f"{trigger_id}|{slot:.3f}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    return fraction * jitter_s


NONE_GRACE_S = 60.0
"""With catch-up ``none``, a slot still fires when found at most this late (a short pause
of the service, a database outage of seconds, is not downtime: every slot of a frequent cron
that fell due meanwhile fires)."""


def due_slots(
    trigger: CronTriggerSpec,
    trigger_id: str,
    last_slot: float,
    now: float,
    *,
    limit: int = 1000,
) -> tuple[list[float], float]:
    """The slots to fire now, and the new ``last_slot`` cursor.

    ``last_slot`` is the last slot already handled (fired or skipped). A slot is due when
    its time plus its jitter has passed. Which of several due slots fire depends on the
    catch-up policy: ``none`` fires only the slots due within :data:`NONE_GRACE_S`, ``latest``
    only the most recent one, ``all`` every one; ``catchup_window_s`` drops slots older
    than that many seconds. At most ``limit`` slots are returned; the cursor then stops at
    the last one returned so the rest come next time.
    """
    schedule = schedule_of(trigger)
    # Slots whose time passed; those whose jitter has not elapsed yet wait.
    candidates = schedule.slots_between(last_slot + 1e-6, now, limit=MAX_SLOTS)
    due: list[float] = []
    for slot in candidates:
        if slot + jitter(trigger_id, slot, trigger.jitter_s) > now:
            break
        due.append(slot)
    if not due:
        return [], last_slot
    cursor = due[-1]
    window = trigger.catchup_window_s
    if window is not None:
        due = [s for s in due if s >= now - window]
    if trigger.catchup is CatchUp.NONE:
        due = [s for s in due if now - s <= NONE_GRACE_S + trigger.jitter_s]
    elif trigger.catchup is CatchUp.LATEST:
        due = due[-1:]
    elif len(due) > limit:
        due = due[:limit]
        cursor = due[-1]
    return due, cursor


def slot_iso(slot: float, timezone: str) -> str:
    """The slot as ISO 8601 in the trigger's time zone (``2024-03-31T06:00:00+02:00``)."""
    return dt.datetime.fromtimestamp(slot, time_zone(timezone)).isoformat()

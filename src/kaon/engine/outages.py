"""The engine's artifact store failing to answer: calls tried again, runs let go and loaded
again later.

An engine reads and writes artifacts for a run while it decides (a foreach's item list, the
list of its results, an input an expression reads). When the artifact store fails transiently
(:class:`~kaon.errors.ArtifactUnavailableError`: a dropped connection, an S3 outage):

- the call is tried again in place after :data:`IN_PLACE_PAUSES_S` (:class:`RetryingArtifacts`),
  which a blip of a second costs nothing else; once a call has failed so, the others fail at
  once for :data:`DOWN_S` (one run's outage does not stall the engine's turn once per run);
- a call that still fails ends the decision: what the turn had decided for that run is
  dropped (results of attempts that ended in this turn too: those attempts run again, as
  after a crash at that instant), and the run is let go and loaded again from the store after
  a pause, as after a state store outage: nothing half decided is ever committed. The pauses
  double from :data:`FIRST_PAUSE_S` up to :data:`LONGEST_PAUSE_S`; after :data:`RETRIES`
  failures in a row (a store down for about two minutes, or a failure that is not transient
  after all) the run is quarantined with the error, for ``kaon restart`` once the store is
  back. A failure more than :data:`FORGET_AFTER_S` after the previous one starts the count
  again.

A step's attempt that failed because the artifact store did not answer (its worker could not
read an input or write an output) is retried under the step's platform budget
(``platform_attempts``, 3 by default) after a pause (:func:`step_retry_pause`): 2 s, then
16 s, then 2 minutes (and 2 minutes before each later one), so that the default budget rides
out a store down for about two and a half minutes (an S3 restart) where retries at once spent
it in a second. The step waits ``retrying`` with its next attempt's time recorded (a durable
timer: an engine that takes the run over keeps it). Other platform failures (a lost worker,
an engine stopped mid-attempt) are retried at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kaon.artifacts.base import ArtifactStore
from kaon.errors import ArtifactUnavailableError
from kaon.model.values import ArtifactRef, ValueRef

IN_PLACE_PAUSES_S = (0.1, 0.4)  # before the second and the third try of a call
DOWN_S = 5.0  # after a call failed every try: how long the others are not tried again
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 30.0
RETRIES = 7  # pauses of 1, 2, 4, 8, 16, 30 and 30 s: about 1.5 minutes
FORGET_AFTER_S = 300.0
STEP_FIRST_PAUSE_S = 2.0  # before a step's first retry after the artifact store failed it
STEP_PAUSE_FACTOR = 8.0
STEP_LONGEST_PAUSE_S = 120.0


def step_retry_pause(platform_failures: int) -> float:
    """The pause before a step attempt runs again after its ``platform_failures``-th
    platform failure (1 for the first), when that failure was the artifact store not
    answering: :data:`STEP_FIRST_PAUSE_S` times :data:`STEP_PAUSE_FACTOR` for each earlier
    one, at most :data:`STEP_LONGEST_PAUSE_S` (2, 16, 120, 120... s)."""
    exponent = max(0, platform_failures - 1)
    if exponent > 16:  # far past the cap (and no float overflow for a huge budget)
        return STEP_LONGEST_PAUSE_S
    return min(STEP_LONGEST_PAUSE_S, STEP_FIRST_PAUSE_S * STEP_PAUSE_FACTOR**exponent)


@dataclass
class _Outage:
    failures: int
    last: float  # when the last failure was met (monotonic seconds)
    until: float  # the run is not loaded again before this


@dataclass
class ArtifactOutages:
    """The runs an engine let go after an artifact store failure (engine thread only)."""

    _runs: dict[str, _Outage] = field(default_factory=dict)

    def failed(self, run_id: str, now: float) -> float | None:
        """Count a failure of ``run_id`` at ``now``: the pause before loading it again, or
        None when it failed :data:`RETRIES` times in a row (it is forgotten here)."""
        outage = self._runs.get(run_id)
        failures = (
            1 if outage is None or now - outage.last > FORGET_AFTER_S else outage.failures + 1
        )
        if failures > RETRIES:
            self._runs.pop(run_id, None)
            return None
        pause = min(LONGEST_PAUSE_S, FIRST_PAUSE_S * 2.0 ** (failures - 1))
        self._runs[run_id] = _Outage(failures, now, now + pause)
        return pause

    def waiting(self, run_id: str, now: float) -> bool:
        """True while ``run_id`` must not be loaded again yet."""
        outage = self._runs.get(run_id)
        return outage is not None and now < outage.until

    def finished(self, run_id: str) -> None:
        """``run_id`` ended: nothing to remember of it."""
        self._runs.pop(run_id, None)


_T = TypeVar("_T")


class RetryingArtifacts(ArtifactStore):
    """The engine's view of an artifact store: each call that meets
    :class:`~kaon.errors.ArtifactUnavailableError` is tried again in place (see the module
    docs). ``put_json_items`` is given an iterable it may iterate again (the engine's result
    spool gives one)."""

    def __init__(self, inner: ArtifactStore) -> None:
        self.inner = inner
        self.url = inner.url
        self._down_until = 0.0

    def _call(self, action: Callable[[], _T]) -> _T:
        pauses = () if time.monotonic() < self._down_until else IN_PLACE_PAUSES_S
        for pause in pauses:
            try:
                return action()
            except ArtifactUnavailableError:
                time.sleep(pause)
        try:
            return action()
        except ArtifactUnavailableError:
            self._down_until = time.monotonic() + DOWN_S
            raise

    def put(self, value: Any, *, name: str = "") -> ValueRef:
        """See :meth:`ArtifactStore.put`."""
        return self._call(lambda: self.inner.put(value, name=name))

    def get(self, ref: ValueRef) -> Any:
        """See :meth:`ArtifactStore.get`."""
        return self._call(lambda: self.inner.get(ref))

    def list_items(self, ref: ValueRef) -> Iterator[Any] | None:
        """See :meth:`ArtifactStore.list_items` (the blob is read by the call)."""
        return self._call(lambda: self.inner.list_items(ref))

    def put_json_items(self, texts: Iterable[bytes], *, name: str = "") -> ValueRef:
        """See :meth:`ArtifactStore.put_json_items`."""
        return self._call(lambda: self.inner.put_json_items(texts, name=name))

    def exists(self, ref: ArtifactRef) -> bool:
        """See :meth:`ArtifactStore.exists`."""
        return self._call(lambda: self.inner.exists(ref))

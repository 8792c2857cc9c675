"""What a run state needs from its engine: the store, artifacts, clock, the turn's write batch,
the outbox of attempts to start or cancel, and the timers."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kaon.artifacts.base import ArtifactStore
from kaon.engine.memo import Fingerprint, Memoizer
from kaon.engine.outages import RetryingArtifacts
from kaon.executors.base import TaskRequest
from kaon.model.events import AttemptKey, ErrorInfo
from kaon.store.base import StateStore, WriteBatch


@dataclass
class Outbox:
    """What the engine must do once the current batch is committed."""

    submit: list[TaskRequest] = field(default_factory=list)
    cancel: list[AttemptKey] = field(default_factory=list)


@dataclass(order=True)
class Timer:
    """A wake-up: a retry to start, an attempt to time out, a wait to give up, a run deadline.

    A timer names what it concerns (the run, the step run's row, the attempt), never the
    in-memory node: a finished frame is not kept alive by a timer still in the heap.
    """

    at: float
    seq: int
    kind: str = field(compare=False)
    run_id: str = field(compare=False)
    row_id: int | None = field(compare=False, default=None)
    key: AttemptKey | None = field(compare=False, default=None)

    @property
    def ident(self) -> TimerId:
        """What the timer is for: one live timer per identity."""
        return (self.kind, self.run_id, self.row_id, self.key)


TimerId = tuple[str, str, int | None, AttemptKey | None]
_COMPACT_MIN = 64  # heap size below which cancelled timers are left to expire


class Timers:
    """The engine's timers: a heap ordered by due time, with cancellation.

    A cancelled timer is dropped from the live set at once; its heap entry is skipped when it
    comes due, and the heap is rebuilt when more than half of it is cancelled, so the heap
    stays proportional to the live timers (attempts in flight, retries and waits pending).
    """

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._live: dict[TimerId, Timer] = {}
        self._seq = 0

    def __len__(self) -> int:
        """The number of live (not cancelled, not fired) timers."""
        return len(self._live)

    def add(
        self,
        at: float,
        kind: str,
        run_id: str,
        row_id: int | None = None,
        key: AttemptKey | None = None,
    ) -> None:
        """Wake the engine at ``at`` for ``kind``; replaces a live timer of the same identity."""
        self._seq += 1
        timer = Timer(at, self._seq, kind, run_id, row_id, key)
        self._live[timer.ident] = timer
        heapq.heappush(self._heap, timer)
        self._compact()

    def cancel(
        self,
        kind: str,
        run_id: str,
        row_id: int | None = None,
        key: AttemptKey | None = None,
    ) -> None:
        """Drop the live timer of that identity, if any."""
        if self._live.pop((kind, run_id, row_id, key), None) is not None:
            self._compact()

    def cancel_run(self, run_id: str) -> None:
        """Drop every live timer of a run (it finished, or the engine let it go)."""
        for ident in [i for i in self._live if i[1] == run_id]:
            del self._live[ident]
        self._compact()

    def next_at(self) -> float | None:
        """When the next live timer is due, or None."""
        self._drop_dead_head()
        return self._heap[0].at if self._heap else None

    def due(self, now: float) -> list[Timer]:
        """Remove and return the live timers due at ``now``, earliest first."""
        fired: list[Timer] = []
        while True:
            self._drop_dead_head()
            if not self._heap or self._heap[0].at > now:
                return fired
            timer = heapq.heappop(self._heap)
            del self._live[timer.ident]
            fired.append(timer)

    def _alive(self, timer: Timer) -> bool:
        return self._live.get(timer.ident) is timer

    def _drop_dead_head(self) -> None:
        heap = self._heap
        while heap and not self._alive(heap[0]):
            heapq.heappop(heap)

    def _compact(self) -> None:
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * len(self._live):
            self._heap = [t for t in self._heap if self._alive(t)]
            heapq.heapify(self._heap)


class EngineContext:
    """What a run state needs from its engine: the store, artifacts, clock, batch and timers."""

    def __init__(
        self,
        store: StateStore,
        artifacts: ArtifactStore,
        clock: Callable[[], float] = time.time,
        fingerprint: Fingerprint | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts = RetryingArtifacts(artifacts)
        self.clock = clock
        self.memo = Memoizer(store, artifacts, fingerprint)
        self.batch = WriteBatch()
        self.outbox = Outbox()
        self.timers = Timers()
        # Takes back an attempt an earlier engine started (see Executor.reattach); the
        # engine sets it once its executor runs. Restoring a run asks it before it records
        # a running attempt as lost.
        self.reattach: Callable[[AttemptKey], bool] = _cannot_reattach
        # Whether steps run in the engine's process (see Executor.in_engine_process): then a
        # step lost again and again before its start was recorded is likely what stops the
        # engine, and restoring a run fails it (kaon.engine.containers.UNSTARTED_LOSS_LIMIT).
        self.steps_in_engine_process = False


def _cannot_reattach(key: AttemptKey) -> bool:
    return False


def error_info(exc: BaseException, *, platform: bool = False) -> ErrorInfo:
    """An ErrorInfo for an error raised while the engine prepared a step."""
    return ErrorInfo(type(exc).__name__, str(exc), platform=platform)


def error_dict(error: ErrorInfo) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": error.error_type,
        "message": error.message,
        "traceback": error.traceback,
        "platform": error.platform,
        "timeout": error.timeout,
    }
    if error.artifact_store:
        data["artifact_store"] = error.artifact_store
    return data

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
from kaon.engine.nodes import Node
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
    """A wake-up: a retry to start, an attempt to time out, a run deadline."""

    at: float
    seq: int
    kind: str = field(compare=False)
    run_id: str = field(compare=False)
    node: Node | None = field(compare=False, default=None)
    key: AttemptKey | None = field(compare=False, default=None)


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
        self.artifacts = artifacts
        self.clock = clock
        self.memo = Memoizer(store, artifacts, fingerprint)
        self.batch = WriteBatch()
        self.outbox = Outbox()
        self.timers: list[Timer] = []
        self._seq = 0
        # Takes back an attempt an earlier engine started (see Executor.reattach); the
        # engine sets it once its executor runs. Restoring a run asks it before it records
        # a running attempt as lost.
        self.reattach: Callable[[AttemptKey], bool] = _cannot_reattach

    def add_timer(
        self,
        at: float,
        kind: str,
        run_id: str,
        node: Node | None = None,
        key: AttemptKey | None = None,
    ) -> None:
        """Wake the engine at ``at`` for ``kind``."""
        self._seq += 1
        heapq.heappush(self.timers, Timer(at, self._seq, kind, run_id, node, key))


def _cannot_reattach(key: AttemptKey) -> bool:
    return False


def error_info(exc: BaseException, *, platform: bool = False) -> ErrorInfo:
    """An ErrorInfo for an error raised while the engine prepared a step."""
    return ErrorInfo(type(exc).__name__, str(exc), platform=platform)


def error_dict(error: ErrorInfo) -> dict[str, Any]:
    return {
        "type": error.error_type,
        "message": error.message,
        "traceback": error.traceback,
        "platform": error.platform,
        "timeout": error.timeout,
    }

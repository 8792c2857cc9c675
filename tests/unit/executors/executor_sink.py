"""The event sink the executor tests hand to an executor: records events, waits for one."""

from __future__ import annotations

import threading
from collections.abc import Callable

from kaon.model.events import ExecutorEvent


class Sink:
    """Collects events (optionally raising on the first, as a failing engine would)."""

    def __init__(self, fail_first: bool = False) -> None:
        self.events: list[ExecutorEvent] = []
        self.fail_first = fail_first
        self.cond = threading.Condition()

    def __call__(self, event: ExecutorEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("the engine tripped")

    def wait(
        self, predicate: Callable[[ExecutorEvent], bool], timeout: float = 15
    ) -> ExecutorEvent:
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(e) for e in self.events), timeout)
            return next(e for e in self.events if predicate(e))

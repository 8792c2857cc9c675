"""The engine's inbox of executor events: one ordered FIFO, a bell, quiet reports, and
turns run by the thread whose attempt ended (``settle``)."""

from __future__ import annotations

import threading
import time

from kaon.executors import base
from kaon.executors.base import EventInbox
from kaon.model.events import StepStarted, StepSucceeded


def _started(n: int) -> StepStarted:
    return StepStarted(("r", n, 1), 0.0, "w")


def test_quiet_and_loud_events_come_out_in_the_order_delivered() -> None:
    inbox = EventInbox()
    inbox.report(_started(1))
    inbox(StepSucceeded(("r", 1, 1), 0.0, {}))
    inbox.report(_started(2))
    assert [(type(e).__name__, e.key[1]) for e in inbox.take()] == [
        ("StepStarted", 1),
        ("StepSucceeded", 1),
        ("StepStarted", 2),
    ]
    assert inbox.take() == [] and not inbox.waiting


def test_wait_returns_at_once_while_events_wait_and_otherwise_sleeps_until_the_bell() -> None:
    inbox = EventInbox()
    inbox.report(_started(1))  # quiet: no bell, but waiting
    started = time.monotonic()
    inbox.wait(5.0)
    assert time.monotonic() - started < 1.0
    inbox.take()
    started = time.monotonic()
    inbox.wait(0.05)  # nothing: the whole timeout
    assert time.monotonic() - started >= 0.04
    threading.Timer(0.05, inbox.ring).start()
    started = time.monotonic()
    inbox.wait(5.0)
    assert time.monotonic() - started < 2.0


def test_settle_runs_the_engines_turn_or_rings_when_the_engine_is_busy() -> None:
    driven: list[str] = []
    free = [True]

    def drive() -> bool:
        if free[0]:
            driven.append(threading.current_thread().name)
        return free[0]

    inbox = EventInbox(drive)
    inbox.settle()
    assert driven == [threading.current_thread().name]
    started = time.monotonic()
    inbox.wait(0.05)  # the turn ran here: no bell
    assert time.monotonic() - started >= 0.04
    free[0] = False
    inbox.settle()
    started = time.monotonic()
    inbox.wait(5.0)  # refused: the bell rang
    assert time.monotonic() - started < 1.0
    assert len(driven) == 1


def test_a_turn_takes_at_most_its_share_of_a_flood() -> None:
    inbox = EventInbox()
    for n in range(base.MAX_EVENTS_PER_TURN + 3):
        inbox(_started(n))
    assert len(inbox.take()) == base.MAX_EVENTS_PER_TURN
    assert [e.key[1] for e in inbox.take()] == [base.MAX_EVENTS_PER_TURN + i for i in range(3)]


def test_events_settled_are_delivered_without_leaving_the_inbox_quiet() -> None:
    """``settle(events)`` (the process reader at a chain step's end) delivers them for the
    turn it runs; nothing waits quietly, so the engine's waits are not capped."""
    taken: list[object] = []
    inbox = EventInbox(lambda: bool(taken.extend(inbox.take())) or True)
    inbox.settle([_started(1), StepSucceeded(("r", 1, 1), 0.0, {})])
    assert [type(e).__name__ for e in taken] == ["StepStarted", "StepSucceeded"]
    assert not inbox.quiet and not inbox.waiting

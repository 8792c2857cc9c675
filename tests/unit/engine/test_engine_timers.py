"""The engine's timers: due order, cancellation, and a heap that does not outgrow them."""

from __future__ import annotations

from kaon.engine.context import Timers


def test_due_in_order_and_cancelled_ones_never_fire() -> None:
    timers = Timers()
    timers.add(3.0, "timeout", "r", key=("r", 1, 1))
    timers.add(1.0, "retry", "r", row_id=2)
    timers.add(2.0, "run_timeout", "r")
    timers.cancel("timeout", "r", key=("r", 1, 1))
    assert len(timers) == 2 and timers.next_at() == 1.0
    assert [t.kind for t in timers.due(10.0)] == ["retry", "run_timeout"]
    assert len(timers) == 0 and timers.next_at() is None


def test_a_new_timer_replaces_one_of_the_same_identity() -> None:
    timers = Timers()
    timers.add(5.0, "retry", "r", row_id=7)
    timers.add(1.0, "retry", "r", row_id=7)
    assert [t.at for t in timers.due(10.0)] == [1.0]


def test_cancel_run_and_the_heap_stays_proportional() -> None:
    timers = Timers()
    for i in range(10_000):
        timers.add(1e9 + i, "timeout", "r", key=("r", i, 1))
        timers.cancel("timeout", "r", key=("r", i, 1))
    timers.add(5.0, "run_timeout", "other")
    timers.add(6.0, "run_timeout", "r")
    assert len(timers._heap) < 200  # cancelled entries are compacted away
    timers.cancel_run("r")
    assert [t.run_id for t in timers.due(1e12)] == ["other"]

"""An attempt's cancel flag: ``is_set`` and ``set`` without a lock, an event made only for a
waiter, and no lost wake-up between the two."""

from __future__ import annotations

import threading
import time

from kaon.executors.base import CancelFlag


def test_a_flag_is_clear_until_set_and_makes_no_event_for_is_set() -> None:
    flag = CancelFlag()
    assert not flag.is_set()
    assert flag._event is None
    flag.set()
    assert flag.is_set() and flag._event is None
    assert flag.wait(0) is True


def test_wait_times_out_while_clear() -> None:
    flag = CancelFlag()
    started = time.monotonic()
    assert flag.wait(0.05) is False
    assert time.monotonic() - started >= 0.04


def test_set_from_another_thread_wakes_a_waiter() -> None:
    flag = CancelFlag()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(flag.wait(10)))
    waiter.start()
    time.sleep(0.05)
    flag.set()
    waiter.join(5)
    assert woke == [True]


def test_no_wake_up_is_lost_when_set_races_the_first_wait() -> None:
    """Whichever runs first, a waiter returns True at once after set(): set() looks for the
    event before the waiter made it, or the waiter sees the flag after making it."""
    for _ in range(300):
        flag = CancelFlag()
        results: list[bool] = []
        waiter = threading.Thread(target=lambda f=flag, r=results: r.append(f.wait(5)))
        setter = threading.Thread(target=flag.set)
        waiter.start()
        setter.start()
        setter.join()
        waiter.join(5)
        assert results == [True]

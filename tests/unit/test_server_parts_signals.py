"""The server's parts seen from its main process (kaon.server_parts.Part)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection

import pytest

from kaon.server_parts import Part, halt_on_signals

FORK = multiprocessing.get_context("fork")


def _quick() -> None:
    """A part that ends at once."""


def _part() -> Part:
    here, there = FORK.Pipe()
    process = FORK.Process(target=_quick)
    process.start()
    there.close()
    return Part("engine", process, here)


def test_a_part_reaped_by_two_threads_at_once_is_seen_ended_by_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The server's watcher reaps a part that ended while its shutdown joins it. Without
    # taking turns, one of two threads waiting on a child at once could find it gone before
    # the other recorded its exit code, take it for running, and "kill" it (6 of 40 here).
    caplog.set_level(logging.WARNING, logger="kaon")
    seen: list[bool] = []
    for _ in range(40):
        part = _part()
        watcher = threading.Thread(target=lambda p=part: seen.append(p.reap(5)))
        watcher.start()
        part.join(timeout=30)
        watcher.join()
        part.close()
        assert part.process.exitcode == 0
    assert seen == [True] * 40
    assert "did not stop" not in caplog.text


def test_a_part_that_does_not_end_is_killed() -> None:
    here, there = FORK.Pipe()
    process = FORK.Process(target=threading.Event().wait)  # waits forever
    process.start()
    there.close()
    part = Part("triggers", process, here)
    assert part.reap(0.05) is False
    part.join(timeout=0.1)
    part.close()
    assert part.process.exitcode is not None and part.process.exitcode < 0


def _busy_part() -> None:
    """A part whose main thread waits on its stop event without pause (the triggers part
    waits on it between passes): the lock that ``Event.set`` takes is held most of the time."""
    stop = threading.Event()
    halt_on_signals(stop.set)
    while not stop.is_set():
        stop.wait(0)


def test_sigterm_stops_a_part_whose_main_thread_holds_its_stop_events_lock() -> None:
    # Halting inside the signal handler (as before) left 120 of 200 such parts hung for good.
    hung = 0
    for _ in range(30):
        process = FORK.Process(target=_busy_part)
        process.start()
        time.sleep(0.02)
        process.terminate()
        process.join(5)
        if process.is_alive():
            hung += 1
            process.kill()
            process.join()
    assert hung == 0


def _forked_child_status() -> int:
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(3)
        finally:
            os._exit(0)
    time.sleep(0.2)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _part_with_a_forking_step(results: Connection) -> None:
    """A part (the engine's, on the inline executor) where a step's thread forks."""
    halt_on_signals(lambda: None)
    codes: list[int] = []
    step = threading.Thread(target=lambda: codes.append(_forked_child_status()))
    step.start()
    step.join()
    results.send(codes[0])


def test_a_child_forked_in_a_part_dies_of_sigterm() -> None:
    # The part's handler only queues the signal for its halting thread, which a forked child
    # does not have: the child ignored SIGTERM.
    here, there = FORK.Pipe()
    process = FORK.Process(target=_part_with_a_forking_step, args=(there,))
    process.start()
    there.close()
    try:
        assert here.poll(10)
        assert here.recv() == -signal.SIGTERM
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()

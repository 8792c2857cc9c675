"""InlineExecutor specifics beyond the shared contract (tests/contract)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from kaon.errors import SystemFailure
from kaon.executors.base import TaskRequest
from kaon.executors.inline import PREFETCH_PER_THREAD, InlineExecutor
from kaon.model.events import ExecutorEvent, StepStarted, StepSucceeded
from kaon.model.values import Literal

release = threading.Event()


def wait_for_release() -> str:
    release.wait(10)
    return "released"


def request(number: int, function: str = "wait_for_release") -> TaskRequest:
    return TaskRequest(
        key=("r", number, 1),
        step_path=f"s{number}",
        step_type="python",
        config={"function": f"{__name__}:{function}"},
        inputs={},
        params={},
        artifact_url="memory://kaon-inline",
    )


def echo(value: int) -> int:
    return value


def test_default_capacity_is_twice_the_cpus() -> None:
    assert InlineExecutor().capacity == (os.cpu_count() or 1) * 2


def test_submit_before_start_and_double_start_are_refused() -> None:
    executor = InlineExecutor(workers=1)
    with pytest.raises(SystemFailure, match="before start"):
        executor.submit(request(1))
    executor.start(lambda event: None)
    with pytest.raises(SystemFailure, match="already started"):
        executor.start(lambda event: None)
    executor.shutdown()


def test_a_cancelled_running_step_reports_nothing_more() -> None:
    events: list[ExecutorEvent] = []
    started = threading.Event()

    def sink(event: ExecutorEvent) -> None:
        events.append(event)
        if isinstance(event, StepStarted):
            started.set()

    release.clear()
    executor = InlineExecutor(workers=1)
    executor.start(sink)
    executor.submit(request(1))
    assert started.wait(5)
    executor.cancel(("r", 1, 1))
    release.set()
    follow = TaskRequest(
        ("r", 2, 1),
        "s2",
        "python",
        {"function": f"{__name__}:echo"},
        {"value": Literal(7)},
        {},
        "memory://kaon-inline",
    )
    executor.submit(follow)
    deadline = time.monotonic() + 5
    while not any(isinstance(e, StepSucceeded) for e in events) and time.monotonic() < deadline:
        time.sleep(0.01)
    executor.shutdown()
    assert [type(e).__name__ for e in events if e.key == ("r", 1, 1)] == ["StepStarted"]
    assert [e for e in events if isinstance(e, StepSucceeded)] == [
        StepSucceeded(("r", 2, 1), events[-1].at, {"return": Literal(7)})
    ]


def test_shutdown_stops_the_threads() -> None:
    executor = InlineExecutor(workers=3)
    executor.start(lambda event: None)
    threads = list(executor._threads)
    assert len(threads) == 3 and all(t.is_alive() for t in threads)
    executor.shutdown()
    for thread in threads:
        thread.join(2)
    assert not [t for t in threads if t.is_alive()]


def test_a_cancelled_attempt_holds_its_slot_until_its_thread_is_free() -> None:
    """A timed-out (cancelled) attempt whose Python code keeps running still occupies its
    thread: the executor must not report that slot as free to the engine."""
    started = threading.Event()

    def sink(event: ExecutorEvent) -> None:
        if isinstance(event, StepStarted):
            started.set()

    release.clear()
    executor = InlineExecutor(workers=2)
    executor.start(sink)
    try:
        executor.submit(request(1))
        assert started.wait(5)
        executor.cancel(("r", 1, 1))  # what the engine does when the attempt times out
        assert executor.capacity == 1  # the thread is still busy with the cancelled attempt
        assert executor.prefetch == PREFETCH_PER_THREAD  # queued only for the free thread
        release.set()
        deadline = time.monotonic() + 5
        while executor.capacity != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert executor.capacity == 2  # free again once the code returned
    finally:
        release.set()
        executor.shutdown()

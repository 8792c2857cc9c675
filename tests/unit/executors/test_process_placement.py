"""The process executor keeps a chain's two ends on one core (kaon.executors._affinity): while
one attempt is in flight its worker and the reader wait on the sender's core; a step's own
code, and the threads and processes it starts, still see every core; a fan-out unpins both."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from executor_sink import Sink

from kaon.executors import _affinity
from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import ExecutorEvent, StepFailed, StepSucceeded
from kaon.model.values import Literal

STEPS = str(Path(__file__).with_name("placement_steps.py"))
ALL = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

pytestmark = pytest.mark.skipif(
    _affinity.ALL is None, reason="needs Linux thread affinity and two cores or more"
)


def request(number: int, function: str = "cores") -> TaskRequest:
    return TaskRequest(
        ("r", number, 1), f"s{number}", "python", {"file": STEPS, "function": function},
        {}, {}, "memory://kaon-placement",
    )  # fmt: skip


def final(number: int) -> Callable[[ExecutorEvent], bool]:
    return lambda e: isinstance(e, StepSucceeded | StepFailed) and e.key == ("r", number, 1)


def masks(pid: int) -> list[list[int]]:
    """The cores each thread of process ``pid`` may run on."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            found.append(sorted(os.sched_getaffinity(int(tid))))
        except OSError:  # the thread ended meanwhile
            continue
    return found


def reader_mask() -> list[int]:
    [reader] = [t for t in threading.enumerate() if t.name == "kaon-process-reader"]
    assert reader.native_id is not None
    return sorted(os.sched_getaffinity(reader.native_id))


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "the placement did not settle"
        time.sleep(0.01)


def outputs(sink: Sink, number: int) -> dict[str, list[int]]:
    event = sink.wait(final(number))
    assert isinstance(event, StepSucceeded), event
    found = {}
    for name, value in event.outputs.items():  # a dict returned: an output per key
        assert isinstance(value, Literal)
        found[name] = value.value
    return found


class ChainSink(Sink):
    """Submits the next step from the reader's thread when a step ends, as the engine's
    turn does there in a chain (EventInbox.settle), up to step ``last``."""

    def __init__(self, last: int) -> None:
        super().__init__()
        self.executor: ProcessExecutor | None = None
        self.last = last

    def __call__(self, event: ExecutorEvent) -> None:
        super().__call__(event)
        number = event.key[1]
        if isinstance(event, StepSucceeded) and isinstance(number, int) and number < self.last:
            assert self.executor is not None
            self.executor.submit(request(number + 1))


def test_a_chain_waits_on_one_core_and_its_steps_see_every_core() -> None:
    sink = ChainSink(last=3)
    executor = sink.executor = ProcessExecutor(workers=2)
    executor.start(sink)
    try:
        executor.submit(request(1))  # then 2 and 3 from the reader, each alone in flight
        for number in (1, 2, 3):
            # The step's code, a thread and a process it starts: every core, pinned or not.
            assert outputs(sink, number) == {"step": ALL, "thread": ALL, "process": ALL}
        pids = executor.worker_pids()

        def chained() -> bool:
            core = reader_mask()
            pinned = [m for pid in pids for m in masks(pid) if m == core]
            return len(core) == 1 and len(pinned) >= 2  # the worker's inbox and its runner

        eventually(chained)
        # A fan-out: two in flight. Both ends wait on every core again.
        executor.submit_many([request(4), request(5)])
        outputs(sink, 4)
        outputs(sink, 5)
        eventually(lambda: reader_mask() == ALL)
        eventually(lambda: all(masks(p) and all(m == ALL for m in masks(p)) for p in pids))
    finally:
        executor.shutdown()


def test_sends_from_another_thread_pin_nothing() -> None:
    """Steps sent one at a time from the caller's thread (the engine's, in a turn that is
    not a chain's ping-pong) leave the reader and the workers on every core."""
    sink = Sink()
    executor = ProcessExecutor(workers=2)
    executor.start(sink)
    try:
        for number in (1, 2, 3):
            executor.submit(request(number))
            outputs(sink, number)
        time.sleep(0.2)  # a pin would have been applied by now (the reader waits again)
        assert reader_mask() == ALL
        assert all(m == ALL for p in executor.worker_pids() for m in masks(p))
    finally:
        executor.shutdown()


def test_current_cpu_is_one_this_thread_may_run_on() -> None:
    cpu = _affinity.current_cpu()
    assert cpu is not None and cpu in os.sched_getaffinity(0)


def test_a_placement_pins_only_while_told_and_releases() -> None:
    seen: list[list[int]] = []

    def thread() -> None:
        placement = _affinity.Placement()
        placement.wait_on(ALL[0])
        seen.append(sorted(os.sched_getaffinity(0)))
        placement.release()
        seen.append(sorted(os.sched_getaffinity(0)))
        placement.wait_on(None)
        seen.append(sorted(os.sched_getaffinity(0)))

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join()
    assert seen == [[ALL[0]], ALL, ALL]
    assert sorted(os.sched_getaffinity(0)) == ALL  # another thread's pin is its own

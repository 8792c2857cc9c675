"""Batched dispatch in the process executor: several attempts per message and per worker, yet
a step that crashes its worker fails alone and a slow step holds no short one hostage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from kaon.executors.base import TaskRequest
from kaon.executors.process import WORKER_DEPTH, ProcessExecutor
from kaon.model.events import ExecutorEvent, StepFailed, StepStarted, StepSucceeded
from kaon.model.values import Literal

STEPS = str(Path(__file__).parents[2] / "contract" / "_steps.py")


class Sink:
    """Records events; counts the messages they came in (events delivered back to back)."""

    def __init__(self) -> None:
        self.events: list[ExecutorEvent] = []
        self.cond = threading.Condition()

    def __call__(self, event: ExecutorEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, done: Callable[[list[ExecutorEvent]], bool], timeout: float = 20) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: done(self.events), timeout), self.events[-5:]

    def finals(self) -> dict[object, list[ExecutorEvent]]:
        found: dict[object, list[ExecutorEvent]] = {}
        with self.cond:
            for event in self.events:
                if isinstance(event, StepSucceeded | StepFailed):
                    found.setdefault(event.key, []).append(event)
        return found


def request(number: int, function: str, **inputs: object) -> TaskRequest:
    return TaskRequest(
        ("r", number, 1),
        f"s{number}",
        "python",
        {"file": STEPS, "function": function},
        {name: Literal(value) for name, value in inputs.items()},
        {},
        "memory://kaon-batching",
    )


def _all_final(count: int) -> Callable[[list[ExecutorEvent]], bool]:
    return lambda events: sum(isinstance(e, StepSucceeded | StepFailed) for e in events) >= count


def test_attempts_are_prefetched_and_sent_together() -> None:
    sink = Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        assert executor.prefetch == WORKER_DEPTH - 1
        requests = [request(i, "square", x=i) for i in range(1, 41)]
        executor.submit_many(requests)
        sink.wait(_all_final(40))
        finals = sink.finals()
        for r in requests:
            [final] = finals[r.key]
            assert isinstance(final, StepSucceeded)
            assert final.outputs == {"return": Literal(r.key[1] ** 2)}
    finally:
        executor.shutdown()


def test_a_step_that_crashes_its_worker_fails_alone() -> None:
    sink = Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        before = [request(i, "noop") for i in range(1, 6)]
        crash = request(6, "exit_hard", code=3)
        after = [request(i, "noop") for i in range(7, 12)]
        executor.submit_many([*before, crash, *after])  # all in one worker's queue
        sink.wait(_all_final(11), timeout=40)
        time.sleep(0.2)
        finals = sink.finals()
        [lost] = finals[crash.key]
        assert isinstance(lost, StepFailed) and lost.error.error_type == "WorkerLost"
        assert lost.error.platform and "status 3" in lost.error.message
        for r in [*before, *after]:
            assert [type(e) for e in finals[r.key]] == [StepSucceeded], finals[r.key]
    finally:
        executor.shutdown()


def test_a_slow_step_hands_the_attempts_queued_behind_it_back() -> None:
    sink = Sink()
    executor = ProcessExecutor(workers=2)
    executor.start(sink)
    try:
        slow = request(1, "sleep", seconds=3)
        executor.submit(slow)
        sink.wait(lambda evs: any(isinstance(e, StepStarted) and e.key == slow.key for e in evs))
        quick = [request(i, "noop") for i in range(2, 2 + 2 * WORKER_DEPTH - 2)]
        executor.submit_many(quick)  # half of them land behind the slow one
        began = time.monotonic()
        sink.wait(_all_final(len(quick)), timeout=20)
        assert time.monotonic() - began < 2.5  # not after the slow one
        assert slow.key not in sink.finals()
        sink.wait(_all_final(len(quick) + 1), timeout=20)
        assert all(len(v) == 1 for v in sink.finals().values())
    finally:
        executor.shutdown()


def test_cancel_of_an_attempt_queued_in_a_worker_spares_the_running_one() -> None:
    sink = Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        running = request(1, "sleep", seconds=0.03)
        queued = request(2, "noop")
        last = request(3, "noop")
        executor.submit_many([running, queued, last])
        executor.cancel(queued.key)
        sink.wait(_all_final(2))
        time.sleep(0.2)
        finals = sink.finals()
        assert queued.key not in finals
        assert [type(e) for e in finals[running.key]] == [StepSucceeded]
        assert [type(e) for e in finals[last.key]] == [StepSucceeded]
        starts = [e for e in sink.events if isinstance(e, StepStarted) and e.key == running.key]
        assert len(starts) == 1  # its worker was not killed
    finally:
        executor.shutdown()

"""The worker side of the ``ray`` executor's batched dispatch (no Ray needed): a batch of
attempts runs in order in one task; a long attempt hands the others back and streams alone."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kaon.executors import _ray_attempt
from kaon.executors._ray_attempt import run_batch
from kaon.executors.base import TaskRequest
from kaon.model.events import AttemptKey, ExecutorEvent, StepFailed, StepStarted, StepSucceeded


def quick(x: int) -> int:
    return x + 1


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def broken() -> None:
    raise ValueError("broken")


def request(number: int, function: str, **inputs: Any) -> TaskRequest:
    from kaon.model.values import Literal

    return TaskRequest(
        key=("r", number, 1),
        step_path=f"s{number}",
        step_type="python",
        config={"function": f"{__name__}:{function}"},
        inputs={name: Literal(value) for name, value in inputs.items()},
        params={},
        artifact_url="memory://kaon-ray-batch",
    )


class Relay:
    """Records what a batch sends to the supervisor while it runs."""

    def __init__(self) -> None:
        self.pushed: list[tuple[AttemptKey, list[ExecutorEvent]]] = []
        self.reports: list[tuple[Any, list[AttemptKey], AttemptKey, list[ExecutorEvent]]] = []

    def push(self, key: AttemptKey, events: list[ExecutorEvent]) -> None:
        self.pushed.append((key, events))

    def report(
        self, finished: Any, handback: list[AttemptKey], key: AttemptKey, events: Any
    ) -> None:
        self.reports.append((finished, handback, key, events))


@pytest.fixture(autouse=True)
def warm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports done, and a slack for a loaded machine: "long" is 0.2 s here, not 50 ms."""
    run_batch([request(0, "quick", x=0)], Relay().push, Relay().report)
    monkeypatch.setattr(_ray_attempt, "STREAM_DELAY_S", 0.2)


def test_short_attempts_return_together_in_order_without_a_message() -> None:
    relay = Relay()
    requests = [request(1, "quick", x=1), request(2, "broken"), request(3, "quick", x=3)]
    ended = run_batch(requests, relay.push, relay.report)
    assert [key for key, _ in ended] == [r.key for r in requests]
    assert relay.pushed == [] and relay.reports == []
    for _, events in ended:
        assert isinstance(events[0], StepStarted)
    finals = [events[-1] for _, events in ended]
    assert isinstance(finals[0], StepSucceeded) and isinstance(finals[2], StepSucceeded)
    assert isinstance(finals[1], StepFailed) and "broken" in finals[1].error.message  # alone


def test_a_long_attempt_hands_the_rest_back_and_streams_alone() -> None:
    relay = Relay()
    first, long, behind = (
        request(1, "quick", x=1),
        request(2, "slow", seconds=0.8),
        request(3, "quick", x=2),
    )
    ended = run_batch([first, long, behind], relay.push, relay.report)
    finished, handback, key, events = relay.reports[0]
    assert [k for k, _ in finished] == [first.key]  # ended before: its events kept safe
    assert isinstance(finished[0][1][-1], StepSucceeded)
    assert handback == [behind.key] and key == long.key  # never run here
    assert any(isinstance(e, StepStarted) for e in events)
    assert not any(isinstance(e, StepSucceeded | StepFailed) for e in events)
    assert relay.reports[-1][:3] == ([], [], long.key)  # the barrier before the end
    assert [(k, type(events[-1])) for k, events in ended] == [(long.key, StepSucceeded)]
    assert all(k == long.key for k, _ in relay.pushed)

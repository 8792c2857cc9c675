"""RoutingExecutor: each step type to its executor; cancel follows the attempt; guards."""

from __future__ import annotations

import threading
from typing import Any

from kaon.executors.base import TaskRequest
from kaon.executors.inline import InlineExecutor
from kaon.executors.routing import RoutingExecutor
from kaon.model.events import ExecutorEvent, StepFailed, StepStarted, StepSucceeded

gate = threading.Event()


def thread_name() -> str:
    return threading.current_thread().name


def blocked() -> str:
    gate.wait(10)
    return "late"


def _request(number: int, step_type: str, config: dict[str, Any]) -> TaskRequest:
    return TaskRequest(("r", number, 1), f"s{number}", step_type, config, {}, {}, "memory://x")


def test_routes_cancels_and_guards() -> None:
    default, other = InlineExecutor(workers=1), InlineExecutor(workers=2)
    routing = RoutingExecutor(
        default, {"shell": other}, guard=lambda r: "no" if r.config.get("refuse") else None
    )
    assert routing.capacity == 3
    events: list[ExecutorEvent] = []
    finals = threading.Semaphore(0)

    def sink(event: ExecutorEvent) -> None:
        events.append(event)
        if isinstance(event, StepSucceeded | StepFailed):
            finals.release()

    routing.start(sink)
    gate.clear()
    try:
        routing.submit(_request(1, "python", {"function": f"{__name__}:thread_name"}))
        routing.submit(_request(2, "shell", {"command": "echo hi"}))
        routing.submit(_request(3, "shell", {"command": "echo hi", "refuse": True}))
        for _ in range(3):
            assert finals.acquire(timeout=10)
        by_key = {e.key[1]: e for e in events if isinstance(e, StepSucceeded | StepFailed)}
        assert isinstance(by_key[1], StepSucceeded)
        assert by_key[1].outputs["return"].value.startswith("kaon-inline")  # type: ignore[union-attr]
        assert isinstance(by_key[2], StepSucceeded)
        assert isinstance(by_key[3], StepFailed) and by_key[3].error.message == "no"
        started = threading.Event()
        routing.submit(_request(4, "python", {"function": f"{__name__}:blocked"}))
        while not any(isinstance(e, StepStarted) and e.key[1] == 4 for e in events):
            started.wait(0.01)
        routing.cancel(("r", 4, 1))
        assert default.capacity == 0  # the default executor got the cancel: slot still busy
    finally:
        gate.set()
        routing.shutdown()

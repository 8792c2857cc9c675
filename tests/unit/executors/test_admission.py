"""Admission by resources: the host budget, and the process executor honouring it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from kaon.executors.admission import HostBudget
from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import ExecutorEvent, StepFailed, StepStarted, StepSucceeded
from kaon.model.values import Literal

STEPS = str(Path(__file__).resolve().parents[2] / "contract" / "_steps.py")


def test_budget_fits_takes_and_gives_back() -> None:
    budget = HostBudget(cpus=4, memory=1000, gpus=0, custom={"licence": 1})
    assert budget.refusal({"cpus": 5}) is not None
    assert "1 licence" not in (budget.refusal({"custom": {"licence": 1}}) or "")
    assert "asks for 1 gpus" in (budget.refusal({"gpus": 1}) or "")
    assert "asks for 2 disk" in (budget.refusal({"custom": {"disk": 2}}) or "")
    big = HostBudget(cpus=4, memory=25 * 2**30, gpus=0)
    # Memory in GiB: it read "asks for 1.07374e+11 memory, and this host offers 2.68435e+10".
    said = big.refusal({"memory": 100 * 2**30}) or ""
    assert "asks for 100.0 GiB memory, and this host offers 25.0 GiB" in said, said
    budget.take({"cpus": 3, "memory": 600})
    assert budget.fits({"cpus": 1, "memory": 400})
    assert not budget.fits({"cpus": 2})
    assert not budget.fits({"memory": 401})
    budget.give_back({"cpus": 3, "memory": 600})
    assert budget.fits({"cpus": 4, "memory": 1000, "custom": {"licence": 1}})


class _Sink:
    def __init__(self) -> None:
        self.events: list[ExecutorEvent] = []
        self.cond = threading.Condition()

    def __call__(self, event: ExecutorEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def final(self, key: Any) -> ExecutorEvent:
        def found() -> ExecutorEvent | None:
            ends = (e for e in self.events if isinstance(e, StepSucceeded | StepFailed))
            return next((e for e in ends if e.key == key), None)

        with self.cond:
            assert self.cond.wait_for(lambda: found() is not None, 30)
            result = found()
            assert result is not None
            return result

    def span(self, key: Any) -> tuple[float, float]:
        end = self.final(key).at
        start = next(e.at for e in self.events if e.key == key and isinstance(e, StepStarted))
        return start, end


def _sleep(number: int, resources: dict[str, Any], seconds: float = 0.4) -> TaskRequest:
    return TaskRequest(
        key=("run", number, 1),
        step_path=f"s{number}",
        step_type="python",
        config={"file": STEPS, "function": "sleep"},
        inputs={"seconds": Literal(seconds)},
        params={},
        artifact_url="/tmp/kaon-admission-artifacts",
        resources=resources,
    )


def test_process_executor_admits_by_cpus_and_memory() -> None:
    sink = _Sink()
    executor = ProcessExecutor(workers=2, budget=HostBudget(cpus=2, memory=1000))
    executor.start(sink)
    try:
        big = [_sleep(1, {"cpus": 2}), _sleep(2, {"cpus": 1.5})]  # cannot share the host
        small = [_sleep(3, {"cpus": 1, "memory": 500}), _sleep(4, {"cpus": 1, "memory": 500})]
        too_big = _sleep(5, {"memory": 2000})
        for request in [*big, too_big]:
            executor.submit(request)
        refused = sink.final(too_big.key)
        assert isinstance(refused, StepFailed) and refused.error.error_type == "Unschedulable"
        assert not refused.error.platform and "asks for 2.0 KiB memory" in refused.error.message
        (a0, a1), (b0, b1) = (sink.span(r.key) for r in big)
        assert a1 <= b0 or b1 <= a0, "two attempts holding 3.5 of 2 CPUs ran together"
        for request in small:
            executor.submit(request)
        (c0, c1), (d0, d1) = (sink.span(r.key) for r in small)
        assert c0 < d1 and d0 < c1, "two attempts that fit together did not overlap"
        assert all(isinstance(sink.final(r.key), StepSucceeded) for r in [*big, *small])
    finally:
        executor.shutdown()

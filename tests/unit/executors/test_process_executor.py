"""ProcessExecutor specifics beyond the shared contract (tests/contract)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from kaon.errors import SystemFailure
from kaon.executors import process
from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor, _exit_description
from kaon.model.events import ExecutorEvent, LogLine, StepFailed, StepStarted, StepSucceeded
from kaon.model.values import Literal


class Sink:
    def __init__(self, fail_first: bool = False) -> None:
        self.events: list[ExecutorEvent] = []
        self.fail_first = fail_first
        self.cond = threading.Condition()

    def __call__(self, event: ExecutorEvent) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("the engine tripped")

    def wait(
        self, predicate: Callable[[ExecutorEvent], bool], timeout: float = 15
    ) -> ExecutorEvent:
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(e) for e in self.events), timeout)
            return next(e for e in self.events if predicate(e))


def shell(number: int, command: str) -> TaskRequest:
    return TaskRequest(
        ("r", number, 1), f"s{number}", "shell", {"command": command}, {}, {}, "memory://kaon-p"
    )


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def executor(sink: Sink) -> Iterator[ProcessExecutor]:
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    yield executor
    executor.shutdown()


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (3, "exited with status 3"),
        (-9, "was killed by SIGKILL (out of memory?)"),
        (-11, "was killed by SIGSEGV"),
        (None, "stopped responding"),
    ],
)
def test_exit_descriptions(code: int | None, text: str) -> None:
    assert _exit_description(code) == text


def test_a_worker_killed_from_outside_is_lost_and_replaced(
    executor: ProcessExecutor, sink: Sink
) -> None:
    [pid] = executor.worker_pids()
    executor.submit(shell(1, "sleep 30"))
    sink.wait(lambda e: isinstance(e, StepStarted))
    os.kill(pid, signal.SIGKILL)
    failed = sink.wait(lambda e: isinstance(e, StepFailed))
    assert isinstance(failed, StepFailed)
    assert failed.error.error_type == "WorkerLost" and failed.error.platform
    assert f"worker process {pid} was killed by SIGKILL" in failed.error.message
    executor.submit(shell(2, "true"))
    assert isinstance(sink.wait(lambda e: isinstance(e, StepSucceeded)), StepSucceeded)
    assert executor.worker_pids() != [pid]


def test_an_unpicklable_request_fails_without_a_worker(
    executor: ProcessExecutor, sink: Sink
) -> None:
    bad = TaskRequest(("r", 1, 1), "s", "python", {"f": lambda: 1}, {}, {}, "memory://kaon-p")
    executor.submit(bad)
    failed = sink.wait(lambda e: isinstance(e, StepFailed))
    assert isinstance(failed, StepFailed) and not failed.error.platform
    assert "cannot be sent to a worker" in failed.error.message


def test_a_failing_sink_does_not_stop_the_reader(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink(fail_first=True)
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        executor.submit(shell(1, "echo '::kaon::output x=1'"))
        done = sink.wait(lambda e: isinstance(e, StepSucceeded))
        assert isinstance(done, StepSucceeded) and done.outputs == {"x": Literal(1)}
    finally:
        executor.shutdown()
    assert "event sink failed" in caplog.text


def test_shutdown_kills_busy_workers_and_their_commands(sink: Sink) -> None:
    executor = ProcessExecutor(workers=2)
    executor.start(sink)
    pids = executor.worker_pids()
    executor.submit(shell(1, 'echo "pid $$"; exec sleep 30'))
    line = sink.wait(lambda e: getattr(e, "text", "").startswith("pid "))
    assert isinstance(line, LogLine)
    shell_pid = int(line.text.split()[1])
    begin = time.monotonic()
    executor.shutdown()
    assert time.monotonic() - begin < 4
    for pid in [*pids, shell_pid]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    with pytest.raises(SystemFailure, match="after shutdown"):
        executor.submit(shell(2, "true"))


def test_workers_that_cannot_start_fail_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "_WORKER_CODE", "import os; os._exit(5)")
    executor = ProcessExecutor(workers=1, start_timeout_s=20)
    begin = time.monotonic()
    with pytest.raises(SystemFailure, match="exited with status 5 before it was ready"):
        executor.start(Sink())
    assert time.monotonic() - begin < 15

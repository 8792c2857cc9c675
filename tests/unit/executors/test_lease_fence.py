"""Self-fencing workers (kaon.executors._lease_fence): a process executor's attempt stops when
the engine's lease deadline passes, whether or not the engine is heard from again, and even
when the worker was frozen past it (SIGSTOP ... SIGCONT)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from executor_sink import Sink

from kaon.executors._lease_fence import LeaseDeadline
from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor
from kaon.model.events import StepFailed, StepSucceeded
from kaon.model.values import Literal

STEPS = Path(__file__).with_name("fence_steps.py")


def ticking(number: int, ledger: Path, seconds: float) -> TaskRequest:
    return TaskRequest(
        ("r", number, 1),
        f"tick{number}",
        "python",
        {"file": str(STEPS), "function": "tick"},
        {"path": Literal(str(ledger)), "seconds": Literal(seconds)},
        {},
        "memory://kaon-fence",
    )


def ticks(ledger: Path) -> list[float]:
    if not ledger.exists():
        return []
    return [float(line) for line in ledger.read_text().split()]


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def executor(sink: Sink) -> Iterator[ProcessExecutor]:
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    yield executor
    executor.shutdown()


def test_the_shared_deadline_is_read_by_another_mapping() -> None:
    written = LeaseDeadline()
    read = LeaseDeadline(written.fd)
    assert read.get() is None and not read.expired()
    written.set(time.monotonic() - 1)
    assert read.expired()
    written.set(time.monotonic() + 60)
    assert not read.expired()
    read.close()
    written.close()


def test_an_attempt_stops_when_the_deadline_passes_unheard(
    executor: ProcessExecutor, sink: Sink, tmp_path: Path
) -> None:
    ledger = tmp_path / "ticks"
    executor.fence(time.monotonic() + 0.6)
    executor.submit(ticking(1, ledger, seconds=20))
    failed = sink.wait(lambda e: isinstance(e, StepFailed), timeout=10)
    stopped_at = time.monotonic()
    assert isinstance(failed, StepFailed) and failed.error.platform
    assert "lease on the run ran out" in failed.error.message
    last = max(ticks(ledger))
    time.sleep(0.3)
    assert max(ticks(ledger)) == last  # nothing ticks after the stop
    assert stopped_at < time.monotonic() + 5


def test_renewals_keep_an_attempt_running(
    executor: ProcessExecutor, sink: Sink, tmp_path: Path
) -> None:
    ledger = tmp_path / "ticks"
    executor.submit(ticking(1, ledger, seconds=1.2))
    for _ in range(12):  # the engine renews: the deadline keeps moving
        executor.fence(time.monotonic() + 0.4)
        time.sleep(0.1)
    executor.fence(None)
    assert isinstance(
        sink.wait(lambda e: e.key[1] == 1 and isinstance(e, StepSucceeded | StepFailed)),
        StepSucceeded,
    )


def test_an_attempt_received_after_the_deadline_is_not_started(
    executor: ProcessExecutor, sink: Sink, tmp_path: Path
) -> None:
    ledger = tmp_path / "ticks"
    executor.fence(time.monotonic() - 0.01)
    executor.submit(ticking(1, ledger, seconds=1))
    failed = sink.wait(lambda e: isinstance(e, StepFailed))
    assert isinstance(failed, StepFailed) and failed.error.error_type == "LeaseExpired"
    assert failed.error.platform and ticks(ledger) == []


def test_a_worker_frozen_past_the_deadline_does_nothing_after_it_thaws(
    executor: ProcessExecutor, sink: Sink, tmp_path: Path
) -> None:
    ledger = tmp_path / "ticks"
    executor.fence(time.monotonic() + 30)
    executor.submit(ticking(1, ledger, seconds=20))
    deadline = time.monotonic() + 10
    while len(ticks(ledger)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    # The engine's last renewal: then it freezes with its worker and nothing moves the
    # deadline again (the watchdog has armed the kernel's timer for it before the freeze).
    executor.fence(time.monotonic() + 0.3)
    time.sleep(0.1)
    worker = psutil.Process(executor.worker_pids()[0])
    frozen_at = time.time()
    worker.send_signal(signal.SIGSTOP)
    time.sleep(0.8)
    worker.send_signal(signal.SIGCONT)
    sink.wait(lambda e: isinstance(e, StepFailed), timeout=10)
    # A tick being written as the stop landed may carry a time just after frozen_at.
    assert [t for t in ticks(ledger) if t > frozen_at + 0.05] == []

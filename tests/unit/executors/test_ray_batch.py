"""The worker side of the ``ray`` executor's batched dispatch (no Ray needed): a batch of
attempts runs in order in one task; a long attempt hands the others back and streams alone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
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


# The child stands for a Ray worker, whose main thread takes ray.cancel's SIGINT as a
# KeyboardInterrupt: it says so itself, since a SIGINT ignored by the process that runs the
# tests (SIG_IGN is inherited through exec, and Python then installs no handler) would leave
# the cancel unheard.
_CHILD = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {folder!r})
from kaon.executors._ray_attempt import run_batch
from kaon.executors.base import TaskRequest
from kaon.model.values import Literal

inputs = {{name: Literal(value) for name, value in {inputs!r}.items()}}
request = TaskRequest(
    key=("r", 1, 1), step_path="s", step_type={step_type!r}, config={config!r},
    inputs=inputs, params={{}}, artifact_url="memory://kaon-ray-die",
)
print(run_batch([request], lambda *a: None, lambda *a: None))
"""

_HOLD = """
import time

def hold(marker: str) -> None:
    from kaon.steptypes.scratch import scratch_folder

    folder = scratch_folder("kaon-test-scratch-")
    with open(marker, "w") as handle:
        handle.write(folder)
    time.sleep(120)  # Python code: only the worker's end stops it
"""

_SLOW_PODMAN = """#!/bin/sh
for a in "$@"; do
  case "$a" in
    run) echo started > {ready}; exec sleep 120;;
    rm) sleep 2; echo "$*" >> {removed}; exit 0;;
  esac
done
"""


def _cancel_child(
    tmp_path: Path, step_type: str, config: dict[str, Any], ready: Path, **inputs: str
) -> None:
    """Run one attempt in a batch in a child process, cancel it as ``ray.cancel`` does (a
    KeyboardInterrupt in the task's thread) once it runs, and wait for the worker's end."""
    script = tmp_path / "child.py"
    script.write_text(
        _CHILD.format(folder=str(tmp_path), config=config, step_type=step_type, inputs=inputs)
    )
    child = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the attempt did not start"
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 1  # ended by the cancel: the step would not stop
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def test_a_cancelled_container_is_removed_when_its_ray_worker_is_ended(tmp_path: Path) -> None:
    """``podman rm`` slower than the cancel's grace (a loaded host): the worker was ended
    with the removal, its child, and the container kept running on the node."""
    ready, removed = tmp_path / "ready", tmp_path / "removed"
    podman = tmp_path / "podman"
    podman.write_text(_SLOW_PODMAN.format(ready=ready, removed=removed))
    podman.chmod(0o755)
    config = {"image": "localhost/kaon-test:1", "command": "sleep 120", "podman": str(podman)}
    _cancel_child(tmp_path, "container", config, ready)
    deadline = time.monotonic() + 30
    while not removed.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert removed.exists(), "the container of the cancelled attempt was never removed"
    assert "--force" in removed.read_text()


def test_a_ray_worker_ended_by_a_cancel_removes_its_scratch_folders(tmp_path: Path) -> None:
    """``os._exit`` skips ``atexit``: the Ray worker left the step types' scratch folders
    (a notebook's work folder, Spark's warehouse) in ``$TMPDIR``."""
    ready = tmp_path / "ready"
    (tmp_path / "holding.py").write_text(_HOLD)
    _cancel_child(tmp_path, "python", {"function": "holding:hold"}, ready, marker=str(ready))
    folder = Path(ready.read_text())
    try:
        assert not folder.exists(), f"{folder} was left behind"
    finally:
        shutil.rmtree(folder, ignore_errors=True)

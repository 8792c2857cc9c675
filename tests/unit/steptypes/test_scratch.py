"""A process's scratch root: what a process killed outright leaves is swept, what a live one
holds is not (:mod:`kaon.steptypes.scratch`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.errors import SystemFailure
from kaon.executors.base import TaskRequest
from kaon.executors.inline import InlineExecutor
from kaon.executors.process import ProcessExecutor
from kaon.executors.runtime import run_task
from kaon.model.events import ExecutorEvent, StepFailed, StepSucceeded
from kaon.model.values import Literal
from kaon.steptypes import scratch

# A process that makes a scratch folder, says where, and waits to be killed.
_OWNER = """
import sys
from kaon.steptypes.scratch import scratch_folder
folder = scratch_folder("test-")
open(folder + "/data.bin", "wb").write(b"x" * 1000)
print(folder, flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary folder of the test's own, for this process and the ones it starts."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    yield folder


def _owner() -> tuple[subprocess.Popen[str], Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", _OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_live_processs_root_is_kept_and_a_killed_ones_swept(tmp: Path) -> None:
    child, folder = _owner()
    root = folder.parent
    try:
        assert root.parent == tmp and root.name.startswith(f"kaon-{child.pid}-")
        _age(root, 3600)  # old: only its lock says its owner lives
        assert scratch.sweep_abandoned() == []
        assert (folder / "data.bin").is_file()
    finally:
        child.kill()
        child.wait()
    assert scratch.sweep_abandoned() == [str(root)]  # its lock went with the process
    assert list(tmp.iterdir()) == []


def test_an_unlocked_root_is_kept_while_recent_unless_its_owner_is_known_dead(tmp: Path) -> None:
    """Its owner may be between making it and locking it: a root is swept once untouched for
    the grace period, or at once when the caller knows its owner died (a lost worker)."""
    child, folder = _owner()
    child.kill()
    child.wait()
    root = folder.parent
    assert scratch.sweep_abandoned() == []  # touched a moment ago
    assert scratch.sweep_abandoned(owner=child.pid + 1) == []  # another process's
    assert scratch.sweep_abandoned(owner=child.pid) == [str(root)]


def test_a_process_sweeps_when_it_makes_its_root_and_leaves_with_it(tmp: Path) -> None:
    abandoned = tmp / "kaon-999999999-abcdefgh"
    (abandoned / "shell-x").mkdir(parents=True)
    _age(abandoned, 3600)
    unrelated = tmp / "kaon-bench-abc"  # not a root: another tool's, or a user's
    unrelated.mkdir()
    _age(unrelated, 3600)
    scratch.remove_scratch_folders()
    try:
        folder = Path(scratch.scratch_folder("test-"))
        assert not abandoned.exists()
        assert unrelated.exists()
        assert folder.parent.parent == tmp
    finally:
        scratch.remove_scratch_folders()
    assert not folder.parent.exists()


def test_an_inline_executor_starting_sweeps_what_a_killed_engine_left(tmp: Path) -> None:
    """An engine killed outright with the inline executor leaves its own root; the next
    engine sweeps it as its executor starts, though its steps may never make a root."""
    abandoned = tmp / "kaon-999999998-abcdefgh"
    (abandoned / "log-x").mkdir(parents=True)
    _age(abandoned, 3600)
    executor = InlineExecutor()
    executor.start(_Sink())
    try:
        assert not abandoned.exists()
    finally:
        executor.shutdown()


_KILLED = """
import os, signal
from kaon.steptypes.scratch import scratch_folder

def f(marker):
    folder = scratch_folder("test-")
    open(folder + "/data.bin", "wb").write(b"x" * 1000)
    open(marker, "w").write(folder)
    os.kill(os.getpid(), signal.SIGKILL)  # the out-of-memory killer, say
"""


class _Sink:
    def __init__(self) -> None:
        self.events: list[ExecutorEvent] = []

    def __call__(self, event: ExecutorEvent) -> None:
        self.events.append(event)


def test_a_worker_killed_outright_leaves_no_scratch_folder(tmp: Path, tmp_path: Path) -> None:
    module = tmp_path / "killed_flow.py"
    module.write_text(_KILLED)
    marker = tmp_path / "marker"
    sink = _Sink()
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        executor.submit(
            TaskRequest(
                ("r", 1, 1),
                "s",
                "python",
                {"file": str(module), "function": "f"},
                {"marker": Literal(str(marker))},
                {},
                "memory://kaon-scratch-killed",
            )
        )
        deadline = time.monotonic() + 60
        while not any(isinstance(e, (StepFailed, StepSucceeded)) for e in sink.events):
            assert time.monotonic() < deadline, "the step never ended"
            time.sleep(0.02)
        failed = next(e for e in sink.events if isinstance(e, StepFailed))
        assert failed.error.error_type == "WorkerLost"
        assert f"killed by signal {signal.SIGKILL.value}" in failed.error.message
        folder = Path(marker.read_text())
        assert folder.parent.parent == tmp
        assert not folder.parent.exists(), "the killed worker's scratch root was left"
    finally:
        executor.shutdown()


def test_a_temporary_folder_that_cannot_be_used_is_a_platform_failure_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TMPDIR full or not writable is the machine's fault, not the step's: it failed a shell
    step with a bare ``OSError: [Errno 28] No space left on device: '/tmp/x/kaon-1-ab/shell-cd'``
    counted against the step's own retries. Now it is a platform failure (the platform
    budget retries it) saying which folder and what to do."""
    missing = tmp_path / "missing"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))
    scratch.remove_scratch_folders()
    with pytest.raises(SystemFailure, match=f"temporary folder {missing} .*TMPDIR"):
        scratch.scratch_folder("test-")
    events: list[ExecutorEvent] = []
    request = TaskRequest(
        ("r", 1, 1), "s", "shell", {"command": "echo hi"}, {}, {}, "memory://kaon-scratch-full"
    )
    run_task(request, events.append)
    failed = next(e for e in events if isinstance(e, StepFailed))
    assert failed.error.platform, failed.error
    assert f"temporary folder {missing}" in failed.error.message
    assert "No such file or directory" in failed.error.message

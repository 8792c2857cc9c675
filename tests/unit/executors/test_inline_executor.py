"""InlineExecutor specifics beyond the shared contract (tests/contract)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
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


def _run_one_by_one(executor: InlineExecutor, count: int) -> list[StepStarted]:
    """Submit ``count`` quick attempts, each once the one before it finished (a chain)."""
    started: list[StepStarted] = []
    done = threading.Semaphore(0)

    def sink(event: ExecutorEvent) -> None:
        if isinstance(event, StepStarted):
            started.append(event)
        elif isinstance(event, StepSucceeded):
            done.release()

    executor.start(sink)
    try:
        for number in range(count):
            executor.submit(request(number, "echo_none"))
            assert done.acquire(timeout=5)
    finally:
        executor.shutdown()
    return started


def echo_none() -> None:
    return None


def test_a_chain_of_attempts_runs_on_the_thread_that_became_idle_last() -> None:
    """The hand-off wakes one thread, the most recently idle one: a chain of steps stays on
    one thread instead of waking the idle threads in turn (a shared queue did)."""
    started = _run_one_by_one(InlineExecutor(workers=4), 20)
    assert len(started) == 20
    assert len({event.worker for event in started[1:]}) == 1


def test_attempts_beyond_the_idle_threads_wait_in_order_and_all_run() -> None:
    release.clear()
    events: list[ExecutorEvent] = []
    lock = threading.Lock()

    def sink(event: ExecutorEvent) -> None:
        with lock:
            events.append(event)

    executor = InlineExecutor(workers=2)
    executor.start(sink)
    try:
        for number in range(2):
            executor.submit(request(number))  # both threads wait for the release
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if sum(isinstance(e, StepStarted) for e in events) == 2:
                    break
            time.sleep(0.01)
        for number in range(2, 8):
            executor.submit(request(number, "echo_none"))  # queued: no thread is idle
        executor.cancel(("r", 5, 1))  # cancelled while queued: never starts
        release.set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if sum(isinstance(e, StepSucceeded) for e in events) == 7:
                    break
            time.sleep(0.01)
    finally:
        release.set()
        executor.shutdown()
    starts = [e.key[1] for e in events if isinstance(e, StepStarted)]
    assert sorted(starts[:2]) == [0, 1]
    assert starts[2:] == [2, 3, 4, 6, 7]  # the backlog in submission order, without 5
    assert sorted(e.key[1] for e in events if isinstance(e, StepSucceeded)) == [0, 1, 2, 3, 4, 6, 7]


def test_shutdown_wakes_idle_threads_and_drops_queued_attempts() -> None:
    release.clear()
    events: list[ExecutorEvent] = []
    executor = InlineExecutor(workers=1)
    executor.start(events.append)
    threads = list(executor._threads)
    executor.submit(request(1))  # the only thread waits for the release
    executor.submit(request(2, "echo_none"))  # queued behind it
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    executor.shutdown()
    release.set()
    for thread in threads:
        thread.join(2)
    assert not [t for t in threads if t.is_alive()]
    assert [e.key[1] for e in events] == [1]  # attempt 2 never started; 1 reported nothing more


def test_a_burst_wakes_every_idle_thread_it_needs() -> None:
    """A burst wakes one idle thread, which wakes the next while attempts wait: attempts that
    block must still all run at once (none waits behind another's thread)."""
    release.clear()
    started: list[StepStarted] = []
    lock = threading.Lock()

    def sink(event: ExecutorEvent) -> None:
        if isinstance(event, StepStarted):
            with lock:
                started.append(event)

    executor = InlineExecutor(workers=4)
    executor.start(sink)
    try:
        time.sleep(0.05)  # every thread idle
        for number in range(4):
            executor.submit(request(number))
        deadline = time.monotonic() + 5
        while len(started) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len({event.worker for event in started}) == 4
    finally:
        release.set()
        executor.shutdown()


_ENGINE = """
import sys, time
from kaon.executors.base import TaskRequest
from kaon.executors.inline import InlineExecutor

step_type, config, started = sys.argv[1], eval(sys.argv[2]), sys.argv[3]
executor = InlineExecutor(workers=1)
executor.start(lambda event: None)
key = ("r", 1, 1)
executor.submit(TaskRequest(key=key, step_path="s", step_type=step_type, config=config,
                            inputs={}, params={}, artifact_url="memory://kaon-inline-stop"))
deadline = time.monotonic() + 30
while not open(started).read() and time.monotonic() < deadline:
    time.sleep(0.02)
executor.cancel(key)  # kaon kill: the engine cancels its attempts, shuts down and exits
executor.shutdown()
"""

_PODMAN = """#!/bin/sh
for a in "$@"; do
  case "$a" in
    run) echo $$ > {started}; exec sleep 120;;
    rm) echo "$*" >> {removed}; exit 0;;
  esac
done
"""


def _long_command(step_type: str, tmp_path: Path, started: Path, removed: Path) -> dict[str, Any]:
    """A step config whose command writes its PID to ``started`` and runs for 2 minutes (a
    container's: a fake ``podman`` that logs each ``rm`` to ``removed``; an R script's: R's)."""
    started.write_text("")
    if step_type == "shell":
        return {"command": f"echo $$ > {started}; exec sleep 120"}
    if step_type == "notebook":  # a cell holding the GIL: the kernel's parent poller never runs
        import nbformat

        code = f"import os, re\nopen({str(started)!r}, 'w').write(str(os.getpid()))\n"
        code += "re.match(r'(a+)+$', 'a' * 60 + 'b')"
        document = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nbformat.write(document, str(tmp_path / "hold.ipynb"))  # type: ignore[no-untyped-call]
        return {"file": "hold.ipynb", "base_dir": str(tmp_path), "html": False}
    if step_type == "r":
        return {"code": f'writeLines(as.character(Sys.getpid()), "{started}"); Sys.sleep(120)'}
    podman = tmp_path / "podman"
    podman.write_text(_PODMAN.format(started=started, removed=removed))
    podman.chmod(0o755)
    return {"image": "localhost/kaon-test:1", "command": "true", "podman": str(podman)}


def _engine(
    program: str, step_type: str, config: dict[str, Any], started: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``program`` (an engine's process running one step of ``step_type``) to its end.
    Its output goes to a file, not a pipe: a command that outlived it would hold the pipe."""
    output = started.with_name("engine-output")
    with output.open("w") as sink:
        engine = subprocess.run(
            [sys.executable, "-c", program, step_type, repr(config), str(started)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
    engine.stderr = output.read_text()
    return engine


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie (dead, waiting for this container's init to reap
    it, which may take seconds) is not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("step_type", ["shell", "container"])
def test_an_engine_that_exits_after_a_kill_leaves_no_command_running(
    tmp_path: Path, step_type: str
) -> None:
    """``kaon kill`` of a run on the inline executor (and of a container step, which a
    sandboxed ``kaon run`` or server runs on inline threads): the engine's process exited
    before the step's thread, told to stop, killed its command (a session of its own) or
    removed its container; both ran on, orphaned."""
    started, removed = tmp_path / "started", tmp_path / "removed"
    config = _long_command(step_type, tmp_path, started, removed)
    engine = _engine(_ENGINE, step_type, config, started)
    assert engine.returncode == 0, engine.stderr
    pid = int(started.read_text())
    try:
        deadline = time.monotonic() + 10  # reaped at once, later on a loaded machine
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "the step's command outlived the engine's process"
        if step_type == "container":
            assert removed.exists(), "the container was never removed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


_KILLED_ENGINE = """
import os, signal, sys, time
from kaon.executors.base import TaskRequest
from kaon.executors.inline import InlineExecutor

step_type, config, started = sys.argv[1], eval(sys.argv[2]), sys.argv[3]
executor = InlineExecutor(workers=1)
executor.start(lambda event: None)
executor.submit(TaskRequest(key=("r", 1, 1), step_path="s", step_type=step_type, config=config,
                            inputs={}, params={}, artifact_url="memory://kaon-inline-kill"))
deadline = time.monotonic() + 30
while not open(started).read() and time.monotonic() < deadline:
    time.sleep(0.02)
os.kill(os.getpid(), signal.SIGKILL)  # kill -9 of the engine: no clean-up of its own
"""


@pytest.mark.parametrize("step_type", ["shell", "container", "notebook"])
def test_an_engine_killed_by_sigkill_leaves_no_command_running(
    tmp_path: Path, step_type: str
) -> None:
    """``kill -9`` of ``kaon run -e inline`` (or of a sandboxed run's engine, which runs
    container steps on inline threads): the step's command, in a session of its own, and its
    container, under Podman's monitor, ran on; a resume started a second copy. So did a
    notebook's kernel (a session of its own too) busy in a cell that holds the interpreter's
    lock: ipykernel's poller, which ends a kernel whose parent died, never got to run."""
    started, removed = tmp_path / "started", tmp_path / "removed"
    config = _long_command(step_type, tmp_path, started, removed)
    engine = _engine(_KILLED_ENGINE, step_type, config, started)
    assert engine.returncode == -signal.SIGKILL, engine.stderr
    pid = int(started.read_text())
    try:
        deadline = time.monotonic() + 10
        while (_alive(pid) or (step_type == "container" and not removed.exists())) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert not _alive(pid), "the step's command outlived the killed engine"
        if step_type == "container":
            assert "rm" in removed.read_text(), "the container was never removed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


_KILLED_BEFORE_THE_REAPER_HEARS = """
import os, signal, sys, time
from kaon.executors.base import TaskRequest
from kaon.executors.inline import InlineExecutor
from kaon.steptypes._observers import observers

step_type, config, started = sys.argv[1], eval(sys.argv[2]), sys.argv[3]
executor = InlineExecutor(workers=1)
executor.start(lambda event: None)
told = observers.group


def killed_before_the_reaper_hears(pgid, running):
    # A kill -9 of the engine between the command's start and its report to the reaper: the
    # command is given every chance to run (its PID in started) before the engine dies.
    with open(started + ".group", "w") as handle:
        handle.write(str(pgid))
    deadline = time.monotonic() + 2
    while not open(started).read() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGKILL)


observers.group = killed_before_the_reaper_hears
executor.submit(TaskRequest(key=("r", 1, 1), step_path="s", step_type=step_type, config=config,
                            inputs={}, params={}, artifact_url="memory://kaon-inline-kill"))
time.sleep(30)
"""


def _group_alive(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    found = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
    return found


@pytest.mark.parametrize("step_type", ["shell", "container", "r"])
def test_an_engine_killed_before_its_reaper_hears_of_a_command_leaves_it_not_running(
    tmp_path: Path, step_type: str
) -> None:
    """The shell step told the reaper of its command's process group only after ``Popen``
    returned: an engine killed by ``kill -9`` in between left a command (already running the
    user's code) that the reaper never heard of, and ``kaon resume`` started a second copy
    (the sigkill test above failed so once in CI, under load). The engine here dies inside
    that window, the command given every chance to start first: nothing of its process group
    may run on."""
    started, removed = tmp_path / "started", tmp_path / "removed"
    config = _long_command(step_type, tmp_path, started, removed)
    engine = _engine(_KILLED_BEFORE_THE_REAPER_HEARS, step_type, config, started)
    assert engine.returncode == -signal.SIGKILL, engine.stderr
    pgid = int((tmp_path / "started.group").read_text())
    try:
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group_alive(pgid), "the step's command outlived the killed engine"
        time.sleep(0.2)  # a command held back until the reaper heard of it never starts
        assert not started.read_text(), "the step's command ran after its engine was killed"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def test_the_reaper_runs_before_the_first_command_starts() -> None:
    """The reaper used to start with its first command's report, after the command: a
    ``kill -9`` of the engine in the tens of milliseconds its interpreter took to start left
    that command running (the sigkill test above failed so, now and then, in CI). It starts
    when such a step is submitted, before any thread can start the command."""
    release.clear()
    executor = InlineExecutor(workers=1)
    executor.start(lambda event: None)
    try:
        executor.submit(request(1))  # holds the only thread: the command below waits
        command = TaskRequest(
            ("r", 2, 1), "s2", "shell", {"command": "true"}, {}, {}, "memory://kaon-inline"
        )
        executor.submit(command)
        reaper = executor._reaper
        assert reaper is not None and reaper._process is not None
        assert reaper._process.poll() is None
    finally:
        release.set()
        executor.shutdown()

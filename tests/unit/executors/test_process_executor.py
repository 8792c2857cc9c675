"""ProcessExecutor specifics beyond the shared contract (tests/contract)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from executor_sink import Sink

from kaon.errors import InvalidActionError, SystemFailure
from kaon.executors import process
from kaon.executors.base import TaskRequest
from kaon.executors.process import ProcessExecutor, _exit_description
from kaon.model.events import LogLine, StepFailed, StepSucceeded
from kaon.model.values import Literal


def shell(number: int, command: str) -> TaskRequest:
    return TaskRequest(
        ("r", number, 1), f"s{number}", "shell", {"command": command}, {}, {}, "memory://kaon-p"
    )


def gone(pid: int, timeout: float = 3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)  # do not leave it behind
    return False


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
        (-9, "was killed by signal 9 (SIGKILL)"),
        (-11, "was killed by signal 11 (SIGSEGV)"),
        (None, "stopped responding"),
    ],
)
def test_exit_descriptions(code: int | None, text: str) -> None:
    assert _exit_description(code) == text


def test_a_worker_killed_from_outside_is_lost_and_replaced(
    executor: ProcessExecutor, sink: Sink
) -> None:
    [pid] = executor.worker_pids()
    executor.submit(shell(1, 'echo "pid $$"; exec sleep 30'))
    line = sink.wait(lambda e: isinstance(e, LogLine))
    assert isinstance(line, LogLine)
    shell_pid = int(line.text.split()[1])
    os.kill(pid, signal.SIGKILL)
    failed = sink.wait(lambda e: isinstance(e, StepFailed))
    assert gone(shell_pid)  # the worker could not kill its command: the parent did
    assert isinstance(failed, StepFailed)
    assert failed.error.error_type == "WorkerLost" and failed.error.platform
    assert f"worker process {pid} was killed by signal 9 (SIGKILL)" in failed.error.message
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
    assert all(gone(pid, timeout=0.5) for pid in [*pids, shell_pid])
    with pytest.raises(SystemFailure, match="after shutdown"):
        executor.submit(shell(2, "true"))


def test_workers_that_cannot_start_fail_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "_WORKER_CODE", "import os; os._exit(5)")
    executor = ProcessExecutor(workers=1, start_timeout_s=20)
    begin = time.monotonic()
    with pytest.raises(SystemFailure, match="exited with status 5 before it was ready"):
        executor.start(Sink())
    assert time.monotonic() - begin < 15


def test_no_process_pool_inside_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from kaon.executors import _worker

    monkeypatch.setattr(_worker, "RUNNING_IN_WORKER", True)
    with pytest.raises(InvalidActionError, match="cannot start inside a Kaon worker"):
        ProcessExecutor(workers=1).start(Sink())


def test_a_step_module_that_starts_a_pool_fails_cleanly(tmp_path: Path, sink: Sink) -> None:
    module = tmp_path / "recursive_flow.py"
    module.write_text(
        "from kaon.executors import create_executor\n"
        "create_executor('process', workers=1).start(lambda e: None)\n"
        "def f():\n    return 1\n"
    )
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        executor.submit(
            TaskRequest(
                ("r", 1, 1),
                "s",
                "python",
                {"file": str(module), "function": "f"},
                {},
                {},
                "memory://kaon-p",
            )
        )
        failed = sink.wait(lambda e: isinstance(e, StepFailed))
    finally:
        executor.shutdown()
    assert isinstance(failed, StepFailed) and not failed.error.platform
    assert "cannot start inside a Kaon worker" in failed.error.message


def test_without_waiting_start_returns_before_workers_are_ready(sink: Sink) -> None:
    executor = ProcessExecutor(workers=1, wait_ready=False)
    try:
        executor.start(sink)
        assert not executor._ready.is_set()  # spawned, not yet up: the engine goes on
        executor.submit(shell(1, "echo hi"))
        done = sink.wait(lambda e: isinstance(e, StepSucceeded | StepFailed))
        assert isinstance(done, StepSucceeded)
    finally:
        executor.shutdown()


def test_without_waiting_workers_are_started_as_attempts_need_them(sink: Sink) -> None:
    """A pool started without waiting begins with one worker; a second attempt running at
    the same time starts a second, up to ``workers``; one at a time never does."""
    executor = ProcessExecutor(workers=3, wait_ready=False)
    try:
        executor.start(sink)
        assert len(executor.worker_pids()) == 1
        for number in (1, 2):  # one after the other: one worker is enough
            executor.submit(shell(number, "true"))
            sink.wait(lambda e, n=number: isinstance(e, StepSucceeded) and e.key[1] == n)
        assert len(executor.worker_pids()) == 1
        executor.submit_many([shell(n, "sleep 0.3") for n in (3, 4, 5, 6)])
        assert len(executor.worker_pids()) == 3  # one per attempt, at most three
        for number in (3, 4, 5, 6):
            done = sink.wait(lambda e, n=number: isinstance(e, StepSucceeded) and e.key[1] == n)
            assert isinstance(done, StepSucceeded)
    finally:
        executor.shutdown()


def test_a_warmed_worker_boots_before_start_and_is_the_one_start_uses(sink: Sink) -> None:
    """``warm`` spawns the first worker before ``start`` (``kaon run`` loads the workflow
    meanwhile); ``start`` adopts it instead of spawning another, and it runs attempts."""
    executor = ProcessExecutor(workers=2, wait_ready=False)
    try:
        executor.warm()
        executor.warm()  # idempotent: still one
        warmed = executor.worker_pids()
        assert len(warmed) == 1
        executor.start(sink)
        assert executor.worker_pids() == warmed
        executor.submit(shell(1, "echo hi"))
        done = sink.wait(lambda e: isinstance(e, StepSucceeded | StepFailed))
        assert isinstance(done, StepSucceeded)
        assert executor.worker_pids() == warmed
    finally:
        executor.shutdown()


def test_shutdown_stops_a_warmed_worker_that_never_started() -> None:
    """A run that is never executed (its workflow failed to load) leaves no process behind."""
    executor = ProcessExecutor(workers=1, wait_ready=False)
    executor.warm()
    (pid,) = executor.worker_pids()
    executor.shutdown()
    with pytest.raises(ChildProcessError):  # reaped: no longer this process's child
        os.waitpid(pid, os.WNOHANG)


def test_waiting_for_the_pool_starts_every_worker(sink: Sink) -> None:
    executor = ProcessExecutor(workers=2)
    try:
        executor.start(sink)
        assert len(executor.worker_pids()) == 2
    finally:
        executor.shutdown()


def test_without_waiting_workers_that_cannot_start_fail_the_attempts(
    monkeypatch: pytest.MonkeyPatch, sink: Sink
) -> None:
    monkeypatch.setattr(process, "_WORKER_CODE", "import os; os._exit(5)")
    executor = ProcessExecutor(workers=1, wait_ready=False)
    try:
        executor.start(sink)
        executor.submit(shell(1, "echo hi"))
        failed = sink.wait(lambda e: isinstance(e, StepFailed))
        assert isinstance(failed, StepFailed)
        assert failed.error.platform
        assert "exited with status 5" in failed.error.message
    finally:
        executor.shutdown()


def test_without_waiting_workers_not_ready_in_time_fail_the_attempts(
    monkeypatch: pytest.MonkeyPatch, sink: Sink
) -> None:
    monkeypatch.setattr(process, "_WORKER_CODE", "import time; time.sleep(30)")
    executor = ProcessExecutor(workers=1, start_timeout_s=0.3, wait_ready=False)
    try:
        executor.start(sink)
        executor.submit(shell(1, "echo hi"))
        failed = sink.wait(lambda e: isinstance(e, StepFailed))
        assert isinstance(failed, StepFailed)
        assert failed.error.platform
        assert "not ready within 0.3 s" in failed.error.message
    finally:
        executor.shutdown()


def test_a_workers_scratch_folders_are_removed_when_it_exits(tmp_path: Path, sink: Sink) -> None:
    """The worker leaves with os._exit, which skips atexit: it removes the step types'
    scratch folders (notebook work folders, the Spark session's) itself."""
    module = tmp_path / "scratch_flow.py"
    module.write_text(
        "from kaon.steptypes.scratch import scratch_folder\n"
        "def f():\n"
        "    folder = scratch_folder('kaon-test-')\n"
        "    open(folder + '/kept.txt', 'w').close()\n"
        "    return folder\n"
    )
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        executor.submit(
            TaskRequest(
                ("r", 1, 1),
                "s",
                "python",
                {"file": str(module), "function": "f"},
                {},
                {},
                "memory://kaon-p",
            )
        )
        done = sink.wait(lambda e: isinstance(e, (StepSucceeded, StepFailed)))
        assert isinstance(done, StepSucceeded), done
        output = done.outputs["return"]
        assert isinstance(output, Literal)
        folder = Path(str(output.value))
        assert (folder / "kept.txt").is_file()  # kept while the worker lives
    finally:
        executor.shutdown()
    assert not folder.exists()


def test_the_reader_keeps_its_selector_while_the_pool_stays_the_same(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader thread watches the workers through one selector, made anew only when a
    worker starts or goes: not once per message (a chain's step is one message). Workers
    started later, and a worker that died, are still seen."""
    made: list[int] = []
    make = ProcessExecutor._selector

    def counting(self: ProcessExecutor, pool: list[process._Worker]) -> object:
        made.append(len(pool))
        return make(self, pool)

    monkeypatch.setattr(ProcessExecutor, "_selector", counting)
    executor = ProcessExecutor(workers=2, wait_ready=False)
    try:
        executor.start(sink)
        for number in range(1, 31):  # a chain: one message per step, one worker
            executor.submit(shell(number, "true"))
            sink.wait(lambda e, n=number: isinstance(e, StepSucceeded) and e.key[1] == n)
        assert len(made) <= 3, made
        executor.submit_many([shell(n, "sleep 0.2") for n in (31, 32)])  # a second worker
        for number in (31, 32):
            sink.wait(lambda e, n=number: isinstance(e, StepSucceeded) and e.key[1] == n)
        assert max(made) == 2
        [first, *_] = executor.worker_pids()
        executor.submit(shell(33, "sleep 30"))
        time.sleep(0.2)
        for pid in executor.worker_pids():
            os.kill(pid, signal.SIGKILL)
        failed = sink.wait(lambda e: isinstance(e, StepFailed))
        assert isinstance(failed, StepFailed) and failed.error.error_type == "WorkerLost"
        assert first not in executor.worker_pids()
    finally:
        executor.shutdown()


def test_a_sandbox_that_cannot_start_fails_the_attempts_not_the_reader(
    monkeypatch: pytest.MonkeyPatch, sink: Sink
) -> None:
    """A worker whose sandbox dies at once (``bwrap: setting up uid map: Permission
    denied`` on hosts that restrict user namespaces) is gone before its first message: the
    executor counts it as a start failure and fails the attempts; its reader thread does not
    die on the broken pipe (which left the run ``running`` for ever)."""

    class DeadSandbox:
        def argv(self, command: list[str], *, cwd: str | None = None) -> list[str]:
            return ["/bin/sh", "-c", "echo 'bwrap: setting up uid map: denied' >&2; exit 1"]

        def environment(self) -> dict[str, str]:
            return dict(os.environ)

    real = process.subprocess.Popen

    def started_and_gone(*args: object, **kwargs: object) -> object:
        proc = real(*args, **kwargs)  # type: ignore[call-overload]
        if kwargs.get("process_group") == 0:  # a worker, not the reaper beside them
            proc.wait()  # the worker is dead before the executor writes to it
        return proc

    monkeypatch.setattr(process.subprocess, "Popen", started_and_gone)
    executor = ProcessExecutor(workers=1, wait_ready=False, sandbox=DeadSandbox())  # type: ignore[arg-type]
    try:
        executor.start(sink)
        executor.submit(shell(1, "echo hi"))
        failed = sink.wait(lambda e: isinstance(e, StepFailed), timeout=30)
        assert isinstance(failed, StepFailed) and failed.error.platform
        assert "exited with status 1" in failed.error.message
    finally:
        monkeypatch.setattr(process.subprocess, "Popen", real)
        executor.shutdown()


def test_what_a_python_step_writes_below_sys_stdout_is_its_log(tmp_path: Path, sink: Sink) -> None:
    """A child process's output, ``os.write(1, ...)`` and ``sys.stdout.buffer`` went to the
    terminal raw (escape sequences and all) and not to the step's log; each line is now the
    attempt's, before its end, and none of it reaches the next attempt."""
    module = tmp_path / "noisy.py"
    module.write_text(
        "import os, subprocess, sys\n"
        "def loud(tag):\n"
        "    subprocess.run(['echo', f'child {tag}'], check=True)\n"
        "    subprocess.run(f'echo err {tag} >&2', shell=True, check=True)\n"
        "    os.write(1, f'fd {tag} \\x1b]0;title\\x07'.encode() + b'\\xff\\n')\n"
        "    sys.stdout.buffer.write(b'buffer ' + tag.encode() + b'\\n')\n"
        "    os.write(1, b'tail ' + tag.encode())\n"
        "    return tag\n"
    )
    executor = ProcessExecutor(workers=1)
    executor.start(sink)
    try:
        for number, tag in ((1, "one"), (2, "two")):
            executor.submit(
                TaskRequest(
                    ("r", number, 1),
                    f"s{number}",
                    "python",
                    {"file": str(module), "function": "loud"},
                    {"tag": Literal(tag)},
                    {},
                    "memory://kaon-p",
                )
            )
            sink.wait(lambda e, n=number: isinstance(e, StepSucceeded) and e.key[1] == n)
    finally:
        executor.shutdown()
    for number, tag in ((1, "one"), (2, "two")):
        lines = [
            (e.stream, e.text) for e in sink.events if isinstance(e, LogLine) and e.key[1] == number
        ]
        assert ("stdout", f"child {tag}") in lines
        assert ("stderr", f"err {tag}") in lines
        assert ("stdout", f"fd {tag} \x1b]0;title\x07\\xff") in lines
        assert ("stdout", f"buffer {tag}") in lines
        assert ("stdout", f"tail {tag}") in lines  # a partial last line: at the end
        assert all(tag in text for _stream, text in lines), lines
        ended = next(
            i
            for i, e in enumerate(sink.events)
            if isinstance(e, StepSucceeded) and e.key[1] == number
        )
        last_line = max(
            i for i, e in enumerate(sink.events) if isinstance(e, LogLine) and e.key[1] == number
        )
        assert last_line < ended

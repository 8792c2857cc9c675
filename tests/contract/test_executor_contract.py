"""The contract every executor passes: one suite, one subclass per executor.

Step functions live in ``_steps.py`` next to this file and are loaded by file path, so that
worker processes load them the same way the engine's workers would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from kaon.artifacts import open_artifact_store
from kaon.executors import create_executor
from kaon.executors.base import Executor, TaskRequest
from kaon.executors.sandbox import SandboxSpec
from kaon.model.events import (
    AttemptKey,
    ExecutorEvent,
    LogLine,
    MetricReported,
    ProgressReported,
    StepFailed,
    StepStarted,
    StepSucceeded,
)
from kaon.model.values import ArtifactRef, Literal, ValueRef

STEPS = str(Path(__file__).with_name("_steps.py").resolve())
WAIT_S = 20.0


class Recorder:
    """An event sink that remembers every event and lets a test wait for some."""

    def __init__(self) -> None:
        self.events: list[ExecutorEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: ExecutorEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[list[ExecutorEvent]], bool], timeout: float = WAIT_S
    ) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.events), timeout):
                raise AssertionError(f"timed out; events so far: {self.events[-10:]}")

    def final(self, key: AttemptKey, timeout: float = WAIT_S) -> StepSucceeded | StepFailed:
        self.wait_for(lambda evs: any(_is_final(e) and e.key == key for e in evs), timeout)
        return next(e for e in self.of(key) if isinstance(e, StepSucceeded | StepFailed))

    def of(self, key: AttemptKey) -> list[ExecutorEvent]:
        with self._cond:
            return [e for e in self.events if e.key == key]


def _is_final(event: ExecutorEvent) -> bool:
    return isinstance(event, StepSucceeded | StepFailed)


_counter = iter(range(1, 10**9))


def python_request(
    artifact_url: str,
    function: str,
    inputs: Mapping[str, ValueRef] | None = None,
    **fields: Any,
) -> TaskRequest:
    return TaskRequest(
        key=("run-1", next(_counter), fields.pop("attempt", 1)),
        step_path=fields.pop("step_path", function),
        step_type="python",
        config={"file": STEPS, "function": function},
        inputs=dict(inputs or {}),
        params=fields.pop("params", {}),
        artifact_url=artifact_url,
        **fields,
    )


def shell_request(artifact_url: str, command: str, **fields: Any) -> TaskRequest:
    return TaskRequest(
        key=("run-1", next(_counter), 1),
        step_path=fields.pop("step_path", "shell"),
        step_type="shell",
        config={"command": command, **fields.pop("config", {})},
        inputs=fields.pop("inputs", {}),
        params=fields.pop("params", {}),
        artifact_url=artifact_url,
        **fields,
    )


def _pid_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if not _pid_gone(p)]
        time.sleep(0.05)
    return alive


def _pid_of(event: StepStarted) -> int:
    return int(event.worker.split(":")[1])


class ExecutorContract:
    """Tests every executor must pass. Subclasses set ``executor_name``."""

    executor_name: ClassVar[str]
    workers: ClassVar[int] = 2

    @pytest.fixture
    def artifact_url(self, tmp_path: Path) -> str:
        return str(tmp_path / "artifacts")

    @pytest.fixture(scope="class")
    @classmethod
    def pool(cls) -> Iterator[tuple[Executor, Recorder]]:
        """One started executor per class: the tests also show that it survives them all.

        Every request has a fresh key, so tests sharing the recorder do not see each other.
        """
        recorder = Recorder()
        executor = create_executor(cls.executor_name, workers=cls.workers)
        executor.start(recorder)
        yield executor, recorder
        executor.shutdown()

    @pytest.fixture
    def recorder(self, pool: tuple[Executor, Recorder]) -> Recorder:
        return pool[1]

    @pytest.fixture
    def executor(self, pool: tuple[Executor, Recorder]) -> Executor:
        return pool[0]

    def run(
        self, executor: Executor, recorder: Recorder, request: TaskRequest
    ) -> StepSucceeded | StepFailed:
        executor.submit(request)
        return recorder.final(request.key)

    # -- the lease fence ---------------------------------------------------------------------

    fences: ClassVar[bool] = True  # False where attempts run in the engine's own process

    def test_no_attempt_starts_after_the_lease_deadline(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        executor.fence(time.monotonic() - 0.01)  # the engine stopped renewing its leases
        try:
            final = self.run(
                executor, recorder, python_request(artifact_url, "square", {"x": Literal(3)})
            )
        finally:
            executor.fence(None)
        if not self.fences:
            assert isinstance(final, StepSucceeded)  # it stops with the engine's process
            return
        assert isinstance(final, StepFailed) and final.error.platform, final
        assert final.error.error_type == "LeaseExpired"

    # -- python steps ----------------------------------------------------------------------

    def test_mapping_becomes_named_outputs(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        request = python_request(artifact_url, "add", {"a": Literal(2), "b": Literal(5)})
        final = self.run(executor, recorder, request)
        assert isinstance(final, StepSucceeded), final
        assert final.outputs == {"sum": Literal(7), "product": Literal(10)}
        started = [e for e in recorder.of(request.key) if isinstance(e, StepStarted)]
        assert len(started) == 1 and started[0].worker
        assert recorder.of(request.key)[0] == started[0]

    def test_scalar_becomes_return_output(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        final = self.run(
            executor, recorder, python_request(artifact_url, "square", {"x": Literal(9)})
        )
        assert isinstance(final, StepSucceeded)
        assert final.outputs == {"return": Literal(81)}

    def test_artifact_inputs_are_resolved(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        ref = open_artifact_store(artifact_url).put({3, 1, 2}, name="numbers")
        assert isinstance(ref, ArtifactRef)
        final = self.run(
            executor, recorder, python_request(artifact_url, "describe", {"value": ref})
        )
        assert isinstance(final, StepSucceeded), final
        assert final.outputs == {"type": Literal("set"), "items": Literal([1, 2, 3])}

    def test_large_output_goes_to_the_artifact_store(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        big = list(range(20_000))
        ref = open_artifact_store(artifact_url).put(big, name="big")
        final = self.run(
            executor, recorder, python_request(artifact_url, "describe", {"value": ref})
        )
        assert isinstance(final, StepSucceeded), final
        items = final.outputs["items"]
        assert isinstance(items, ArtifactRef)
        assert open_artifact_store(artifact_url).get(items) == big

    def test_missing_artifact_is_a_platform_failure(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        missing = ArtifactRef("0" * 64, "pickle", 10)
        final = self.run(
            executor, recorder, python_request(artifact_url, "describe", {"value": missing})
        )
        assert isinstance(final, StepFailed)
        assert final.error.platform
        assert "value" in final.error.message

    def test_user_exception_is_reported_with_traceback(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        request = python_request(artifact_url, "fail", {"message": Literal("bad input")})
        final = self.run(executor, recorder, request)
        assert isinstance(final, StepFailed)
        error = final.error
        assert (error.error_type, error.message, error.platform) == (
            "ValueError",
            "bad input",
            False,
        )
        assert "_check" in error.traceback and "_steps.py" in error.traceback
        assert "kaon/executors" not in error.traceback

    def test_user_exception_class_is_qualified(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        final = self.run(executor, recorder, python_request(artifact_url, "fail_custom"))
        assert isinstance(final, StepFailed)
        assert final.error.error_type.endswith(".DataError")
        assert final.error.message == "rows are missing"

    def test_unstorable_output_is_a_user_error_naming_it(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        final = self.run(executor, recorder, python_request(artifact_url, "unstorable"))
        assert isinstance(final, StepFailed)
        assert not final.error.platform
        assert "'lock'" in final.error.message

    def test_prints_become_log_lines(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        request = python_request(artifact_url, "chatty")
        assert isinstance(self.run(executor, recorder, request), StepSucceeded)
        lines = [(e.stream, e.text) for e in recorder.of(request.key) if isinstance(e, LogLine)]
        assert lines == [
            ("stdout", "first line"),
            ("stdout", "partial joined"),
            ("stderr", "to stderr"),
            ("stdout", "no newline at the end"),
        ]

    def test_context_reports_metrics_progress_and_logs(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        request = python_request(artifact_url, "report")
        assert isinstance(self.run(executor, recorder, request), StepSucceeded)
        events = recorder.of(request.key)
        metrics = [(e.name, e.value, e.step) for e in events if isinstance(e, MetricReported)]
        progress = [(e.fraction, e.message) for e in events if isinstance(e, ProgressReported)]
        logs = [(e.stream, e.text) for e in events if isinstance(e, LogLine)]
        assert metrics == [("loss", 0.25, 3)]
        assert progress == [(0.5, "halfway")]
        assert logs == [("log", "hello from the step")]

    def test_context_exposes_run_facts(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        request = python_request(
            artifact_url,
            "facts",
            attempt=2,
            step_path="regions[1].train",
            workflow="flow",
            item={"region": "eu"},
            index=1,
            iteration=4,
            params={"k": 3},
        )
        final = self.run(executor, recorder, request)
        assert isinstance(final, StepSucceeded), final
        values = {
            name: ref.value for name, ref in final.outputs.items() if isinstance(ref, Literal)
        }
        assert values == {
            "run_id": "run-1",
            "attempt": 2,
            "step": "regions[1].train",
            "workflow": "flow",
            "item": {"region": "eu"},
            "index": 1,
            "iteration": 4,
            "params": {"k": 3},
        }

    # -- shell steps -----------------------------------------------------------------------

    def test_shell_protocol_and_output_file(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        command = textwrap.dedent(
            """\
            echo hello
            echo "::kaon::metric loss=0.5 2"
            echo "::kaon::progress 0.75 almost there"
            echo '::kaon::output n=42'
            echo oops >&2
            echo '{"extra": [1, 2]}' > "$KAON_OUTPUT"
            """
        )
        request = shell_request(artifact_url, command)
        final = self.run(executor, recorder, request)
        assert isinstance(final, StepSucceeded), final
        assert final.outputs == {"n": Literal(42), "extra": Literal([1, 2])}
        events = recorder.of(request.key)
        assert [(e.stream, e.text) for e in events if isinstance(e, LogLine)] in (
            [("stdout", "hello"), ("stderr", "oops")],
            [("stderr", "oops"), ("stdout", "hello")],
        )
        assert [(e.name, e.value, e.step) for e in events if isinstance(e, MetricReported)] == [
            ("loss", 0.5, 2)
        ]
        assert [(e.fraction, e.message) for e in events if isinstance(e, ProgressReported)] == [
            (0.75, "almost there")
        ]

    def test_shell_sees_run_facts_as_environment(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        command = (
            'printf \'{"run":"%s","step":"%s","attempt":%s,"workflow":"%s","item":%s,'
            '"index":"%s","params":%s,"name":"%s","config":%s,"custom":"%s"}\' '
            '"$KAON_RUN_ID" "$KAON_STEP" "$KAON_ATTEMPT" "$KAON_WORKFLOW" "$KAON_ITEM" '
            '"$KAON_INDEX" "$KAON_PARAMS" "$KAON_INPUT_NAME" "$KAON_INPUT_CONFIG" "$CUSTOM" '
            '> "$KAON_OUTPUT"'
        )
        request = shell_request(
            artifact_url,
            command,
            step_path="loop.s",
            workflow="wf",
            item=[1, "a"],
            index=0,
            params={"p": True},
            config={"env": {"CUSTOM": "yes"}},
            inputs={"name": Literal("plain text"), "config": Literal({"depth": 3})},
        )
        final = self.run(executor, recorder, request)
        assert isinstance(final, StepSucceeded), final
        assert {k: v.value for k, v in final.outputs.items() if isinstance(v, Literal)} == {
            "run": "run-1",
            "step": "loop.s",
            "attempt": 1,
            "workflow": "wf",
            "item": [1, "a"],
            "index": "0",
            "params": {"p": True},
            "name": "plain text",
            "config": {"depth": 3},
            "custom": "yes",
        }

    def test_shell_failure_reports_status_and_stderr(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        final = self.run(
            executor, recorder, shell_request(artifact_url, "echo 'disk full' >&2; exit 3")
        )
        assert isinstance(final, StepFailed)
        assert final.error.error_type == "ShellError"
        assert "status 3" in final.error.message and "disk full" in final.error.message
        assert not final.error.platform

    def test_shell_pipefail(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        final = self.run(executor, recorder, shell_request(artifact_url, "false | cat"))
        assert isinstance(final, StepFailed)
        assert "status 1" in final.error.message

    def test_shell_timeout(self, executor: Executor, recorder: Recorder, artifact_url: str) -> None:
        begin = time.monotonic()
        final = self.run(executor, recorder, shell_request(artifact_url, "sleep 30", timeout_s=0.3))
        assert isinstance(final, StepFailed)
        assert final.error.error_type == "Timeout" and final.error.timeout
        assert time.monotonic() - begin < 10

    def test_cancel_kills_a_running_shell_command(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        request = shell_request(artifact_url, 'echo "pid $$"; exec sleep 60')
        executor.submit(request)
        recorder.wait_for(
            lambda evs: any(isinstance(e, LogLine) and e.key == request.key for e in evs)
        )
        line = next(e for e in recorder.of(request.key) if isinstance(e, LogLine))
        shell_pid = int(line.text.split()[1])
        executor.cancel(request.key)
        assert _wait_gone([shell_pid], 5) == []
        time.sleep(0.3)
        assert not any(_is_final(e) for e in recorder.of(request.key))

    def test_cancel_of_a_queued_task_means_it_never_runs(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        blockers = [
            python_request(artifact_url, "sleep", {"seconds": Literal(0.5)})
            for _ in range(executor.capacity)
        ]
        for blocker in blockers:
            executor.submit(blocker)
        queued = python_request(artifact_url, "noop")
        executor.submit(queued)
        executor.cancel(queued.key)
        for blocker in blockers:
            assert isinstance(recorder.final(blocker.key), StepSucceeded)
        time.sleep(0.2)
        assert recorder.of(queued.key) == []

    # -- load --------------------------------------------------------------------------------

    def test_many_concurrent_tasks_complete_exactly_once(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        requests = [python_request(artifact_url, "square", {"x": Literal(i)}) for i in range(200)]
        for request in requests:
            executor.submit(request)
        keys = {request.key for request in requests}  # earlier tests' events share the recorder
        recorder.wait_for(lambda evs: sum(1 for e in evs if _is_final(e) and e.key in keys) >= 200)
        time.sleep(0.1)
        for i, request in enumerate(requests):
            events = recorder.of(request.key)
            finals = [e for e in events if _is_final(e)]
            assert finals == [StepSucceeded(request.key, finals[0].at, {"return": Literal(i * i)})]
            assert sum(isinstance(e, StepStarted) for e in events) == 1

    def test_capacity_is_honoured(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        assert executor.capacity == self.workers
        requests = [
            python_request(artifact_url, "sleep", {"seconds": Literal(0.2)}) for _ in range(6)
        ]
        for request in requests:
            executor.submit(request)
        spans = []
        for request in requests:
            final = recorder.final(request.key)
            assert isinstance(final, StepSucceeded)
            started = next(e for e in recorder.of(request.key) if isinstance(e, StepStarted))
            spans.append((started.at, final.at))
        moments = sorted({start + 0.01 for start, _ in spans})
        overlap = max(sum(1 for s, e in spans if s <= m < e) for m in moments)
        assert overlap == self.workers


class TestInlineExecutor(ExecutorContract):
    executor_name = "inline"
    fences = False


class TestProcessExecutor(ExecutorContract):
    executor_name = "process"

    def test_worker_crash_is_a_platform_failure_and_the_pool_recovers(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        final = self.run(
            executor, recorder, python_request(artifact_url, "exit_hard", {"code": Literal(3)})
        )
        assert isinstance(final, StepFailed)
        assert final.error.error_type == "WorkerLost" and final.error.platform
        assert "status 3" in final.error.message
        for _ in range(4):
            assert isinstance(
                self.run(executor, recorder, python_request(artifact_url, "noop")), StepSucceeded
            )

    def test_cancel_kills_a_running_python_step(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        request = python_request(artifact_url, "sleep", {"seconds": Literal(60)})
        executor.submit(request)
        recorder.wait_for(
            lambda evs: any(isinstance(e, StepStarted) and e.key == request.key for e in evs)
        )
        started = next(e for e in recorder.of(request.key) if isinstance(e, StepStarted))
        executor.cancel(request.key)
        assert _wait_gone([_pid_of(started)], 3) == []
        assert isinstance(
            self.run(executor, recorder, python_request(artifact_url, "noop")), StepSucceeded
        )
        assert not any(_is_final(e) for e in recorder.of(request.key))

    def test_workers_stay_warm(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        pids = set()
        for _ in range(10):
            final = self.run(executor, recorder, python_request(artifact_url, "pid"))
            assert isinstance(final, StepSucceeded)
            ref = final.outputs["return"]
            assert isinstance(ref, Literal)
            pids.add(ref.value)
        assert pids <= set(executor.worker_pids())  # type: ignore[attr-defined]

    def test_workers_die_with_a_killed_parent(self, tmp_path: Path) -> None:
        script = tmp_path / "parent.py"
        script.write_text(_PARENT_SCRIPT.format(steps=STEPS, artifacts=str(tmp_path / "art")))
        parent = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
        )
        try:
            assert parent.stdout is not None
            report = json.loads(parent.stdout.readline())
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait()
        finally:
            if parent.poll() is None:
                parent.kill()
        pids = [*report["workers"], report["shell"]]
        assert len(pids) == 3
        alive = _wait_gone(pids, 3)
        for pid in alive:  # do not leave them behind when the test fails
            os.kill(pid, signal.SIGKILL)
        assert alive == []


_PARENT_SCRIPT = """
import json, sys, threading
from kaon.executors import create_executor
from kaon.executors.base import TaskRequest
from kaon.model.events import LogLine, StepStarted
from kaon.model.values import Literal

started, shell_pid = set(), []
done = threading.Event()

def sink(event):
    if isinstance(event, StepStarted):
        started.add(event.key)
    if isinstance(event, LogLine) and event.text.startswith("pid "):
        shell_pid.append(int(event.text.split()[1]))
    if len(started) == 2 and shell_pid:
        done.set()

executor = create_executor("process", workers=2)
executor.start(sink)
common = dict(params={{}}, artifact_url={artifacts!r})
executor.submit(TaskRequest(key=("r", 1, 1), step_path="py", step_type="python",
    config={{"file": {steps!r}, "function": "sleep"}}, inputs={{"seconds": Literal(60)}}, **common))
executor.submit(TaskRequest(key=("r", 2, 1), step_path="sh", step_type="shell",
    config={{"command": 'echo "pid $$"; exec sleep 60'}}, inputs={{}}, **common))
done.wait(20)
print(json.dumps({{"workers": executor.worker_pids(), "shell": shell_pid[0]}}), flush=True)
threading.Event().wait(120)
"""


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
class TestSandboxedProcessExecutor(ExecutorContract):
    """The process executor with its workers in the step sandbox: steps behave the same."""

    executor_name = "process"
    root: ClassVar[Path]

    @pytest.fixture(scope="class")
    @classmethod
    def pool(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Executor, Recorder]]:
        cls.root = tmp_path_factory.mktemp("sandboxed")
        recorder = Recorder()
        sandbox = SandboxSpec(writable=(str(cls.root),))
        executor = create_executor(cls.executor_name, workers=cls.workers, sandbox=sandbox)
        executor.start(recorder)
        yield executor, recorder
        executor.shutdown()

    @pytest.fixture
    def artifact_url(self, pool: tuple[Executor, Recorder]) -> str:
        return tempfile.mkdtemp(dir=self.root)  # the only writable folder outside /tmp

    @pytest.mark.parametrize(
        ("step", "inputs", "said"),
        [
            ("exit_hard", {"code": Literal(3)}, "exited with status 3 "),
            ("segfault", {}, "was killed by signal 11 (SIGSEGV)"),
        ],
        ids=["exit", "segfault"],
    )
    def test_a_crashed_worker_is_described_as_it_ended(
        self,
        executor: Executor,
        recorder: Recorder,
        artifact_url: str,
        step: str,
        inputs: Any,
        said: str,
    ) -> None:
        """How a sandboxed worker ended, not how bubblewrap reports it or how the parent
        ended bubblewrap: ``os._exit(3)`` often read "was killed by signal 9 (SIGKILL)" (the
        parent killed bwrap before it passed the status on: a race, hence the repeats), a
        segfault "exited with status 139" (bwrap's 128 + signal)."""
        for _ in range(5):
            final = self.run(executor, recorder, python_request(artifact_url, step, inputs))
            assert isinstance(final, StepFailed)
            assert final.error.error_type == "WorkerLost" and final.error.platform
            assert said in final.error.message
        assert isinstance(
            self.run(executor, recorder, python_request(artifact_url, "noop")), StepSucceeded
        )

    def test_cancel_kills_a_running_shell_command(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        beat = os.path.join(artifact_url, "beat")  # PIDs inside the sandbox are its own
        request = shell_request(
            artifact_url, f'echo started; while true; do date +%s%N > "{beat}"; sleep 0.05; done'
        )
        executor.submit(request)
        recorder.wait_for(
            lambda evs: any(isinstance(e, LogLine) and e.key == request.key for e in evs)
        )
        deadline = time.monotonic() + WAIT_S  # under load the loop may not have beaten yet
        while not os.path.exists(beat) and time.monotonic() < deadline:
            time.sleep(0.02)
        executor.cancel(request.key)
        time.sleep(0.5)
        last = Path(beat).read_text()
        time.sleep(0.5)
        assert Path(beat).read_text() == last  # the loop is dead
        assert not any(_is_final(e) for e in recorder.of(request.key))

"""run_task, the one code path inside every executor's worker."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import ArtifactError, StepError, StepTimeout, SystemFailure
from kaon.executors.base import TaskRequest
from kaon.executors.runtime import error_info, error_type_name, install_output_capture, run_task
from kaon.model.events import (
    ExecutorEvent,
    LogLine,
    StepFailed,
    StepStarted,
    StepSucceeded,
)
from kaon.model.values import ArtifactRef, Literal, ValueRef


class CustomError(Exception):
    pass


def returns(value: Any) -> Any:
    return value


def raises_custom() -> None:
    raise CustomError("custom")


def exits() -> None:
    sys.exit(2)


def prints_from_a_thread() -> str:
    thread = threading.Thread(target=print, args=("from another thread",))
    thread.start()
    thread.join()
    print("x" * 10_000, end="")
    return "ok"


def request(
    function: str, inputs: dict[str, ValueRef] | None = None, url: str = "memory://kaon-runtime"
) -> TaskRequest:
    return TaskRequest(
        key=("r", 1, 1),
        step_path="s",
        step_type="python",
        config={"function": f"{__name__}:{function}"},
        inputs=inputs or {},
        params={},
        artifact_url=url,
    )


def run(req: TaskRequest) -> list[ExecutorEvent]:
    events: list[ExecutorEvent] = []
    run_task(req, events.append)
    return events


def test_success_reports_started_then_succeeded() -> None:
    events = run(request("returns", {"value": Literal({"a": 1, "b": [2]})}))
    assert isinstance(events[0], StepStarted)
    assert events[0].worker.endswith(f":{threading.current_thread().name}")
    assert events[1:] == [
        StepSucceeded(("r", 1, 1), events[1].at, {"a": Literal(1), "b": Literal([2])})
    ]


@pytest.mark.parametrize(
    ("value", "outputs"),
    [
        (None, {"return": Literal(None)}),
        ({}, {}),
        ("text", {"return": Literal("text")}),
        (3.5, {"return": Literal(3.5)}),
    ],
)
def test_return_values_become_outputs(value: Any, outputs: dict[str, ValueRef]) -> None:
    final = run(request("returns", {"value": Literal(value)}))[-1]
    assert isinstance(final, StepSucceeded)
    assert final.outputs == outputs


def test_a_mapping_with_other_keys_is_one_stored_value() -> None:
    final = run(request("returns", {"value": Literal({1: "a"})}))[-1]
    assert isinstance(final, StepSucceeded)
    assert list(final.outputs) == ["return"]
    assert isinstance(final.outputs["return"], ArtifactRef)


def test_custom_errors_are_qualified_and_kaon_frames_dropped() -> None:
    final = run(request("raises_custom"))[-1]
    assert isinstance(final, StepFailed)
    assert final.error.error_type == f"{__name__}.CustomError"
    assert final.error.message == "custom" and not final.error.platform
    assert final.error.traceback.startswith("Traceback")
    assert "raises_custom" in final.error.traceback
    assert "kaon/executors" not in final.error.traceback


def test_system_exit_in_a_step_is_reported_not_raised() -> None:
    final = run(request("exits"))[-1]
    assert isinstance(final, StepFailed)
    assert final.error.error_type == "SystemExit" and final.error.message == "2"


def test_unknown_step_type_fails_the_attempt() -> None:
    req = request("returns")
    bad = TaskRequest(req.key, "s", "sparkle", {}, {}, {}, req.artifact_url)
    final = run(bad)[-1]
    assert isinstance(final, StepFailed)
    assert "unknown step type 'sparkle'" in final.error.message


def test_missing_blob_is_a_platform_failure_naming_the_input(tmp_path: Path) -> None:
    ref = ArtifactRef("f" * 64, "pickle", 3)
    final = run(request("returns", {"value": ref}, url=str(tmp_path)))[-1]
    assert isinstance(final, StepFailed)
    assert final.error.platform
    assert "input 'value' of step s" in final.error.message


def test_unserializable_output_is_a_user_error_naming_it() -> None:
    lock_req = TaskRequest(
        ("r", 1, 1), "s", "python", {"function": "threading:Lock"}, {}, {}, "memory://kaon-rt"
    )
    final = run(lock_req)[-1]
    assert isinstance(final, StepFailed)
    assert not final.error.platform
    assert "output 'return' of step s cannot be stored" in final.error.message


def test_a_failing_sink_never_escapes() -> None:
    def sink(event: ExecutorEvent) -> None:
        raise OSError("pipe closed")

    run_task(request("returns", {"value": Literal(1)}), sink)


def test_only_the_step_thread_is_captured_and_long_lines_are_split(
    capfd: pytest.CaptureFixture[str],
) -> None:
    events = run(request("prints_from_a_thread"))
    lines = [e for e in events if isinstance(e, LogLine)]
    assert [len(e.text) for e in lines] == [10_000]
    assert "from another thread" in capfd.readouterr().out
    print("outside a step")
    assert "outside a step" in capfd.readouterr().out


def test_capture_installs_once() -> None:
    install_output_capture()
    proxy = sys.stdout
    install_output_capture()
    assert sys.stdout is proxy
    assert proxy.encoding  # attributes of the real stream show through


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("v"), ("ValueError", "v", False, False)),
        (SystemFailure("s"), ("kaon.errors.SystemFailure", "s", True, False)),
        (ArtifactError("a"), ("kaon.errors.ArtifactError", "a", True, False)),
        (StepTimeout("t"), ("kaon.errors.StepTimeout", "t", False, True)),
        (StepError("Timeout", "late"), ("Timeout", "late", False, True)),
        (StepError("ShellError", "rc 1", "tb"), ("ShellError", "rc 1", False, False)),
    ],
)
def test_error_info(exc: BaseException, expected: tuple[str, str, bool, bool]) -> None:
    info = error_info(exc)
    assert (info.error_type, info.message, info.platform, info.timeout) == expected


def raises_step_error() -> None:
    raise StepError("DataError", "rows are missing")


def test_step_error_keeps_its_own_traceback() -> None:
    assert error_info(StepError("X", "m", "remote traceback")).traceback == "remote traceback"
    final = run(request("raises_step_error"))[-1]
    assert isinstance(final, StepFailed)
    assert (final.error.error_type, final.error.message) == ("DataError", "rows are missing")
    assert "raises_step_error" in final.error.traceback


def test_step_type_errors_without_user_frames_have_no_traceback() -> None:
    req = TaskRequest(("r", 1, 1), "s", "shell", {"command": "exit 2"}, {}, {}, "memory://k")
    final = run(req)[-1]
    assert isinstance(final, StepFailed)
    assert final.error.error_type == "ShellError" and final.error.traceback == ""


def test_kaon_failures_keep_the_full_traceback(tmp_path: Path) -> None:
    ref = ArtifactRef("e" * 64, "pickle", 3)
    final = run(request("returns", {"value": ref}, url=str(tmp_path)))[-1]
    assert isinstance(final, StepFailed)
    assert "kaon/executors/runtime.py" in final.error.traceback
    assert error_type_name(KeyError()) == "KeyError"


def test_the_stream_proxy_passes_on_a_stream_that_answers_none() -> None:
    """Ray's workers replace sys.stdout with a stream whose write() returns None: the proxy
    turned that into int(None), a TypeError that killed the Ray worker outside a step."""
    from kaon.executors.runtime import _StreamProxy

    class Quiet:
        def __init__(self) -> None:
            self.got: list[object] = []
            self.buffer = self

        def write(self, data: object) -> None:
            self.got.append(data)

    real = Quiet()
    proxy = _StreamProxy(real, "stdout")
    assert proxy.write("hi\n") == 3
    assert proxy.buffer.write(b"ab") == 2
    assert real.got == ["hi\n", b"ab"]


_WORKFLOW_FILE = """
import enum


class Mode(enum.Enum):
    TRAIN = 1
    EVAL = 2


def check(mode):
    return {"is": mode is Mode.EVAL, "isinstance": isinstance(mode, Mode)}
"""

_FRESH_WORKER = """
import sys
from kaon.executors.base import TaskRequest
from kaon.executors.runtime import run_task
from kaon.model.values import ArtifactRef

file, url, hash_, size = sys.argv[1:]
ref = ArtifactRef(hash_, "pickle", int(size))
request = TaskRequest(
    key=("r", 1, 1), step_path="check", step_type="python",
    config={"file": file, "function": "check"}, inputs={"mode": ref}, params={},
    artifact_url=url,
)
events = []
run_task(request, events.append)
print(events[-1].outputs)
"""


def test_an_input_of_the_steps_own_class_loads_as_that_class(tmp_path: Path) -> None:
    # A step returned an enum member of its workflow file; the step reading it runs in
    # another process (another worker, or the next run with the producer cached): the
    # member arrived as a copy of its class, so `mode is Mode.EVAL` was False there.
    import subprocess

    from kaon.artifacts.fsspec_store import FsspecArtifactStore
    from kaon.steptypes.codeload import load_file_module

    flow = tmp_path / "modes_flow.py"
    flow.write_text(_WORKFLOW_FILE)
    store = FsspecArtifactStore(str(tmp_path / "store"))
    ref = store.put(load_file_module(str(flow)).Mode.EVAL, name="mode")
    assert isinstance(ref, ArtifactRef) and ref.serializer == "pickle"
    args = [str(flow), str(tmp_path / "store"), ref.hash, str(ref.size)]
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_WORKER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "{'is': Literal(value=True), 'isinstance': Literal(value=True)}"

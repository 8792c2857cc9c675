"""The shell step type, run directly (no executor): protocol, environment, failures."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import Location, StepError
from kaon.model.events import (
    ExecutorEvent,
    LogLine,
    MetricReported,
    ProgressReported,
)
from kaon.steptypes.context import StepContext
from kaon.steptypes.shell import ShellStepType, build_env

HERE = Location("flow.yaml", 3, "steps.s")


class Harness:
    def __init__(self, **extra: Any) -> None:
        self.events: list[ExecutorEvent] = []
        self.ctx = StepContext(
            ("run-9", 4, 2), "s", "wf", {"k": [1]}, self.events.append, extra=dict(extra)
        )

    def run(self, command: str, inputs: dict[str, Any] | None = None, **config: Any) -> Any:
        return ShellStepType().run(self.ctx, {"command": command, **config}, inputs or {})

    def logs(self) -> list[tuple[str, str]]:
        return [(e.stream, e.text) for e in self.events if isinstance(e, LogLine)]


def test_stdout_and_stderr_lines_become_log_lines() -> None:
    harness = Harness()
    assert harness.run("echo one; echo two; echo three >&2") is None
    logs = harness.logs()
    assert [t for s, t in logs if s == "stdout"] == ["one", "two"]
    assert [t for s, t in logs if s == "stderr"] == ["three"]


def test_protocol_lines_report_and_set_outputs() -> None:
    harness = Harness()
    result = harness.run(
        "echo '::kaon::metric acc=0.9'; echo '::kaon::metric loss=1.5 7';"
        "echo '::kaon::progress 0.25'; echo '::kaon::progress just a message';"
        "echo '::kaon::output model={\"k\": 1}'; echo '::kaon::output path=/tmp/x y'"
    )
    assert result == {"model": {"k": 1}, "path": "/tmp/x y"}
    metrics = [(e.name, e.value, e.step) for e in harness.events if isinstance(e, MetricReported)]
    assert metrics == [("acc", 0.9, None), ("loss", 1.5, 7)]
    progress = [(e.fraction, e.message) for e in harness.events if isinstance(e, ProgressReported)]
    assert progress == [(0.25, ""), (None, "just a message")]
    assert harness.logs() == []


@pytest.mark.parametrize(
    "line", ["::kaon::metric acc", "::kaon::metric acc=high", "::kaon::output =1", "::kaon::dance"]
)
def test_malformed_protocol_lines_are_logged_not_fatal(line: str) -> None:
    harness = Harness()
    assert harness.run(f"echo '{line}'") is None
    assert harness.logs() == [
        ("log", f"kaon: malformed protocol line ({_reason(harness)}): {line}")
    ]


def _reason(harness: Harness) -> str:
    text = harness.logs()[0][1]
    return text[text.index("(") + 1 : text.index("): ")]


def test_output_file_object_merges_and_other_json_is_the_return_value() -> None:
    harness = Harness()
    merged = harness.run("echo '::kaon::output a=1'; echo '{\"b\": 2}' > $KAON_OUTPUT")
    assert merged == {"a": 1, "b": 2}
    assert harness.run("echo '[1, 2]' > $KAON_OUTPUT") == {"return": [1, 2]}


def test_invalid_output_file_is_a_shell_error() -> None:
    with pytest.raises(StepError, match="KAON_OUTPUT does not hold valid JSON"):
        Harness().run("echo 'not json' > $KAON_OUTPUT")


def test_nonzero_exit_raises_with_the_stderr_tail() -> None:
    with pytest.raises(StepError) as info:
        Harness().run("for i in $(seq 1 30); do echo line$i >&2; done; exit 4")
    assert info.value.error_type == "ShellError"
    lines = info.value.message.splitlines()
    assert lines[0] == "command exited with status 4"
    assert lines[1:] == [f"line{i}" for i in range(11, 31)]


def test_killed_command_names_the_signal() -> None:
    with pytest.raises(StepError, match="killed by signal SIGKILL"):
        Harness().run("kill -9 $$")


def test_environment_carries_run_facts_inputs_and_config_env(tmp_path: Path) -> None:
    harness = Harness(env={"FROM_REQUEST": "r"})
    harness.ctx.item = {"a": 1}
    harness.ctx.index = 3
    env = build_env(
        harness.ctx,
        {"env": {"FROM_CONFIG": "c"}},
        {"text": "raw", "n": 5, "my-input": None},
        str(tmp_path / "o"),
    )
    assert env["KAON_RUN_ID"] == "run-9" and env["KAON_STEP"] == "s"
    assert env["KAON_ATTEMPT"] == "2" and env["KAON_WORKFLOW"] == "wf"
    assert env["KAON_ITEM"] == '{"a": 1}' and env["KAON_INDEX"] == "3"
    assert env["KAON_ITERATION"] == "" and env["KAON_PARAMS"] == '{"k": [1]}'
    assert env["KAON_INPUT_TEXT"] == "raw" and env["KAON_INPUT_N"] == "5"
    assert env["KAON_INPUT_MY_INPUT"] == "null"
    assert env["FROM_REQUEST"] == "r" and env["FROM_CONFIG"] == "c"
    assert env["KAON_OUTPUT"] == str(tmp_path / "o")
    assert "PATH" in env


def test_numpy_numbers_arrive_as_json_numbers(tmp_path: Path) -> None:
    # An upstream step's np.int64 arrived as the JSON string "3" (json.dumps' default=str),
    # an np.bool_ as "True": a shell (or R) step read text where it expected a number.
    import numpy as np

    harness = Harness()
    harness.ctx.item = np.int64(4)
    inputs = {"x": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "l": [np.int32(1)]}
    env = build_env(harness.ctx, {}, inputs, str(tmp_path / "o"))
    assert env["KAON_INPUT_X"] == "3" and env["KAON_INPUT_F"] == "0.5"
    assert env["KAON_INPUT_B"] == "true" and env["KAON_INPUT_L"] == "[1]"
    assert env["KAON_ITEM"] == "4"


def test_cwd_and_shell_are_honoured(tmp_path: Path) -> None:
    assert Harness().run('echo "::kaon::output d=$PWD"', cwd=str(tmp_path)) == {"d": str(tmp_path)}
    # /bin/sh may not know pipefail, so it is not asked for: the pipeline's status is cat's.
    assert Harness().run("false | cat", shell="/bin/sh") is None


_SHOW = (
    "import json, os, sys\n"
    "print('::kaon::output seen=' + json.dumps([dict(os.environ), sys.stdin.read(), os.getppid()]))"
)


@pytest.mark.parametrize("env", [{"PLAIN": "1"}, {"A.B": "1", "IFS": ":", "OPTIND": "7"}])
def test_the_gate_passes_the_command_its_environment_and_stdin_as_they_are(
    env: dict[str, str],
) -> None:
    """A command starts held at a gate until its process group is reported (/bin/sh, or
    Python for an environment that sh would not pass on as it is: a name that is not a shell
    identifier, IFS, OPTIND): past it, the command is a child of this process, with an empty
    stdin, every variable as given and its own line numbers."""
    seen = Harness().run(_SHOW, env=env, shell=sys.executable)["seen"]
    environ, stdin, parent = seen
    assert {name: environ.get(name) for name in env} == env
    assert stdin == "" and parent == os.getpid()
    assert Harness().run('true\necho "::kaon::output line=$LINENO"') == {"line": 2}


def test_a_shell_that_does_not_exist_is_a_shell_error() -> None:
    with pytest.raises(StepError, match="status 127") as info:
        Harness().run("true", shell="/nonexistent/bash")
    assert info.value.error_type == "ShellError" and "/nonexistent/bash" in info.value.message


def test_timeout_kills_the_process_group() -> None:
    begin = time.monotonic()
    with pytest.raises(StepError) as info:
        Harness(timeout_s=0.2).run("sleep 30 & sleep 30")
    assert info.value.error_type == "Timeout"
    assert time.monotonic() - begin < 5


def test_cancel_event_stops_the_command() -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    begin = time.monotonic()
    with pytest.raises(StepError) as info:
        Harness(cancel_event=cancel).run("sleep 30")
    assert info.value.error_type == "Cancelled"
    assert time.monotonic() - begin < 5


def test_background_leftovers_die_with_the_step() -> None:
    begin = time.monotonic()
    assert Harness().run("sleep 30 &") is None
    assert time.monotonic() - begin < 5


@pytest.mark.parametrize(
    ("config", "fields"),
    [
        ({}, ["steps.s.config.command"]),
        ({"command": "  "}, ["steps.s.config.command"]),
        ({"command": "ls", "env": {"A": 1}}, ["steps.s.config.env"]),
        ({"command": "ls", "env": "A=1"}, ["steps.s.config.env"]),
        (
            {"command": "ls", "cwd": 3, "shell": None},
            ["steps.s.config.cwd", "steps.s.config.shell"],
        ),
        ({"command": "ls", "timeout": 3}, ["steps.s.config"]),
        # Not substituted: bash fails with "bad substitution" at run time.
        ({"command": "echo ${{ params.k }}"}, ["steps.s.config.command"]),
    ],
)
def test_validation_reports_each_bad_field(config: dict[str, Any], fields: list[str]) -> None:
    problems = ShellStepType().validate(config, HERE)
    assert [p.location.field for p in problems] == fields


def test_valid_config_has_no_problems() -> None:
    config = {"command": "ls", "env": {"A": "1"}, "cwd": "/tmp", "shell": "/bin/sh"}
    assert ShellStepType().validate(config, HERE) == []


def test_a_shell_step_reports_progress_as_done_of_total() -> None:
    harness = Harness()
    assert harness.run("echo '::kaon::progress 30/200 batches'") is None
    progress = [
        (e.done, e.total, e.fraction, e.message)
        for e in harness.events
        if isinstance(e, ProgressReported)
    ]
    assert progress == [(30.0, 200.0, 0.15, "batches")]

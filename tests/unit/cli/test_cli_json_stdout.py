"""What a script reads on stdout from ``--json``: one JSON document, whatever the outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

FLOW = str(Path(__file__).with_name("cli_flows.py"))


def test_skip_of_an_active_run_prints_the_run_with_json(
    kaon: Callable[..., tuple[int, str, str]],
) -> None:
    """The skip of a run that is not finished is sent to its engine (or queued for the next
    one): stdout stayed empty with --json, so ``kaon skip ... --json | jq`` read nothing."""
    from kaon.service import LocalService, Settings

    with LocalService(Settings.from_env(create_store=True)) as service:
        run_id = service.create_run(service.validate(f"{FLOW}:squares"), {"n": 2}).id
    code, out, err = kaon("skip", run_id, "numbers", "--output", "[5]", "--json")
    assert code == 0, (out, err)
    view = json.loads(out)
    assert view["id"] == run_id and view["status"] == "pending", view
    assert "the skip of numbers is recorded" in err, err


USAGE_ERRORS: dict[str, tuple[str, ...]] = {
    "bad value": ("runs", "-n", "0"),
    "not a number": ("show", "abc", "--limit", "many"),
    "unknown option": ("show", "abc", "--bogus"),
    "missing argument": ("logs", "abc"),
    "unknown choice": ("run", f"{FLOW}:squares", "--executor", "threads"),
    "nested group": ("runs", "delete"),
    "refused in the command": ("token", "create", "ci", "--expires-in", "soon"),
}


@pytest.mark.parametrize("name", sorted(USAGE_ERRORS))
def test_a_usage_error_with_json_prints_the_error_document(
    kaon: Callable[..., tuple[int, str, str]], name: str
) -> None:
    """A mistyped option or value was reported on stderr only: stdout stayed empty."""
    code, out, err = kaon(*USAGE_ERRORS[name], "--json")
    assert code == 2, (out, err)
    error = json.loads(out)["error"]
    assert error["exit_code"] == 2 and error["type"] and error["problems"] == [], error
    assert error["message"] and error["message"] in err, (error, err)


def test_a_usage_error_with_events_ends_the_stream_with_one_error_line(
    kaon: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, err = kaon("run", f"{FLOW}:squares", "--events", "--workers", "0")
    assert code == 2, (out, err)
    (line,) = out.splitlines()
    assert json.loads(line)["error"]["type"] == "BadParameter", line


def test_a_usage_error_without_json_prints_nothing_on_stdout(
    kaon: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, err = kaon("runs", "-n", "0")
    assert code == 2 and out == "" and "Invalid value" in err, (out, err)


def test_a_usage_error_of_the_kaon_command_prints_the_error_document() -> None:
    """``kaon CMD`` runs an app of that command alone (start-up): it answers the same."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "kaon", "runs", "-n", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KAON_URL": ""},
        check=False,
    )
    assert done.returncode == 2, done
    error = json.loads(done.stdout)["error"]
    assert "--limit" in error["message"] and error["type"] == "BadParameter", error


NOISY = """
import os
import subprocess

import kaon


@kaon.step
def noisy() -> int:
    os.write(1, b"raw line on descriptor 1\\n")
    subprocess.run(["echo", "a child's line"], check=True)
    return 1


@kaon.workflow
def noisy_flow() -> None:
    noisy()
"""


@pytest.mark.parametrize("mode", ["--json", "--events"])
def test_steps_run_in_this_process_never_write_into_the_json_on_stdout(
    tmp_path: Path, mode: str
) -> None:
    """With the inline executor a step shares the command's descriptors: what it (or a child
    it starts) wrote to descriptor 1 landed in the middle of `kaon run --json`'s document."""
    import os
    import subprocess
    import sys

    flow = tmp_path / "noisy.py"
    flow.write_text(NOISY)
    env = {**os.environ, "KAON_HOME": str(tmp_path / "home"), "KAON_URL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "kaon", "run", f"{flow}:noisy_flow", "-e", "inline", mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done
    if mode == "--json":
        assert json.loads(done.stdout)["status"] == "succeeded"
    else:
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert lines[-1]["type"] == "result" and lines[-1]["status"] == "succeeded"
    assert "raw line on descriptor 1" in done.stderr and "a child's line" in done.stderr

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

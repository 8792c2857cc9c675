"""``--json`` on every command is one document on stdout, errors included (issue 13)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FLOW = str(Path(__file__).with_name("cli_flows.py"))

FAILING: dict[str, tuple[str, ...]] = {
    "show": ("show", "nope"),
    "logs": ("logs", "nope", "a"),
    "kill": ("kill", "nope"),
    "resume": ("resume", "nope"),
    "restart": ("restart", "nope"),
    "skip": ("skip", "nope", "a"),
    "watch": ("watch", "nope"),
    "runs": ("runs", "--status", "bogus"),
    "artifacts": ("artifacts", "nope"),
    "lineage": ("lineage", "abcd1234"),
    "get": ("get", "abcd1234"),
    "explain": ("explain", "nope", "a"),
    "compare": ("compare", "nope", "nada"),
    "plot": ("plot", "nope", "--metric", "m", "-o", "/tmp/x.png"),
    "versions": ("versions", "nope"),
    "workflow show": ("workflow", "show", "nope"),
    "activate": ("activate", "nope", "1"),
    "deactivate": ("deactivate", "nope"),
    "token rotate": ("token", "rotate", "nope"),
    "token revoke": ("token", "revoke", "nope"),
    "run": ("run", f"{FLOW}:nope"),
}


@pytest.fixture
def store(kaon: Callable[..., tuple[int, str, str]]) -> Callable[..., tuple[int, str, str]]:
    """The ``kaon`` fixture on a store that exists (one finished run in it)."""
    code, _, err = kaon("run", f"{FLOW}:squares", "--quiet")
    assert code == 0, err
    return kaon


@pytest.mark.parametrize("name", sorted(FAILING))
def test_a_failing_command_with_json_prints_one_error_document(
    store: Callable[..., tuple[int, str, str]], name: str
) -> None:
    code, out, err = store(*FAILING[name], "--json")
    assert code == 2, (out, err)
    error = json.loads(out)["error"]  # the whole of stdout is one document
    assert error["exit_code"] == 2 and error["message"] and error["type"], error


def test_activate_deactivate_and_token_revoke_print_json(
    store: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, err = store("push", FLOW.replace("cli_flows.py", "progress_flows.py") + ":crunching")
    assert code == 0, err
    code, out, _ = store("deactivate", "crunching", "--json")
    assert code == 0 and json.loads(out)["name"] == "crunching"
    code, out, _ = store("activate", "crunching", "1", "--json")
    assert code == 0 and json.loads(out)["active_version"] == 1
    code, out, _ = store("token", "create", "ci", "--json")
    token_id = json.loads(out)["id"]
    code, out, _ = store("token", "revoke", token_id, "--json")
    assert code == 0 and json.loads(out) == {"revoked": token_id}


def _leaf_commands() -> list[tuple[str, set[str]]]:
    """(path, option names) of every leaf command of ``kaon``."""
    import typer

    from kaon.cli.main import app

    found: list[tuple[str, set[str]]] = []

    def walk(command: Any, path: str, ctx: Any) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                walk(sub, f"{path} {name}".strip(), type(ctx)(sub, parent=ctx))
        else:
            found.append((path, {o for p in command.get_params(ctx) for o in p.opts}))

    root = typer.main.get_command(app)
    walk(root, "", typer.Context(root, info_name="kaon"))
    return found


def test_every_command_but_the_server_takes_json(
    kaon: Callable[..., tuple[int, str, str]],
) -> None:
    """``server`` runs until stopped and ``schema`` prints a JSON document anyway."""
    commands = _leaf_commands()
    assert len(commands) > 40
    without = sorted(path for path, options in commands if "--json" not in options)
    assert without == ["schema", "server"]
    code, out, _ = kaon("schema")
    assert code == 0 and "run" in json.loads(out)


def test_token_list_shows_an_expired_token_as_expired(
    store: Callable[..., tuple[int, str, str]],
) -> None:
    """It said `live` for a token the server refuses ("API token 'tmp' expired")."""
    import time

    code, _, err = store("token", "create", "tmp", "--role", "viewer", "--expires-in", "1s")
    assert code == 0, err
    time.sleep(1.2)
    code, out, _ = store("token", "list")
    row = next(line for line in out.splitlines() if " tmp " in f" {line} ")
    assert "expired" in row and "live" not in row, row


@pytest.mark.parametrize("command", [("cache", "list"), ("cache", "clear", "--all"), ("gc",)])
def test_store_only_commands_refuse_to_act_locally_while_a_server_url_is_set(
    store: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    """With KAON_URL set, `kaon cache clear` cleared the local store's cache and said so."""
    monkeypatch.setenv("KAON_URL", "http://127.0.0.1:9")
    code, out, err = store(*command)
    assert code == 2 and "KAON_URL" in err, (out, err)


def test_a_store_from_a_newer_kaon_is_the_users_to_fix(
    store: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """It exited 3 as `Kaon failed: SchemaVersionError`, though upgrading Kaon is the fix."""
    import sqlite3

    with sqlite3.connect(tmp_path / "home" / "kaon.db") as db:
        db.execute("UPDATE kaon_schema_version SET version_num = 'ffff9999'")
    code, _, err = store("runs")
    assert code == 2 and "upgrade Kaon" in err and "Kaon failed" not in err, err


def test_logs_of_a_step_that_wrote_nothing_says_so(
    store: Callable[..., tuple[int, str, str]],
) -> None:
    """`kaon logs RUN total` printed nothing at all: no line, no word."""
    code, out, _ = store("runs", "--json")
    run_id = json.loads(out)[0]["id"]
    code, out, err = store("logs", run_id, "total")
    assert code == 0 and out == "" and "step total of run" in err and "wrote no log lines" in err
    code, out, _ = store("logs", run_id, "numbers")
    assert "making 4 numbers" in out

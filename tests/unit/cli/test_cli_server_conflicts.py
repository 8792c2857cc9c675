"""A command pointed at a server refuses the options that choose a local store or executor.

``KAON_URL`` in a CI job's environment and ``--db``/``--home``/``--executor`` on one command
line: the command used to talk to the server and drop the options without a word (``kaon
runs --db sqlite:///ci.db`` listed the server's runs, ``kaon run --executor inline`` ran on
the server's workers). Nothing here reaches a server: the conflict is refused first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

FLOW = str(Path(__file__).with_name("cli_flows.py"))
NOWHERE = "http://127.0.0.1:9"  # nothing listens: reaching it would say "cannot reach"

COMMANDS: dict[str, tuple[str, ...]] = {
    "run": ("run", f"{FLOW}:squares", "--executor", "inline"),
    "runs": ("runs", "--db", "sqlite:///ci.db"),
    "show": ("show", "abc", "--home", "elsewhere"),
    "logs": ("logs", "abc", "numbers", "--db", "sqlite:///ci.db"),
    "watch": ("watch", "abc", "--home", "elsewhere"),
    "kill": ("kill", "abc", "--home", "elsewhere"),
    "skip": ("skip", "abc", "numbers", "--workers", "2"),
    "restart": ("restart", "abc", "--artifacts", "/tmp/a"),
    "resume": ("resume", "abc", "--executor", "inline"),
    "artifacts": ("artifacts", "abc", "--db", "sqlite:///ci.db"),
    "versions": ("versions", "squares", "--home", "elsewhere"),
    "push": ("push", FLOW, "--db", "sqlite:///ci.db"),
    "triggers": ("triggers", "--home", "elsewhere"),
    "token list": ("token", "list", "--db", "sqlite:///ci.db"),
    "pool list": ("pool", "list", "--home", "elsewhere"),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_local_store_options_against_a_server_are_refused_by_name(
    kaon: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    monkeypatch.setenv("KAON_URL", NOWHERE)
    code, out, err = kaon(*COMMANDS[name], "--json")
    assert code == 2, (out, err)
    message = json.loads(out)["error"]["message"]
    given = next(arg for arg in COMMANDS[name] if arg.startswith("--"))
    assert given in message and "KAON_URL" in message and NOWHERE in message, message
    assert "cannot reach" not in err, err


def test_an_explicit_url_with_a_local_store_is_refused_too(
    kaon: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, err = kaon("runs", "--url", NOWHERE, "--db", "sqlite:///ci.db")
    assert code == 2, (out, err)
    assert "--db" in err and "--url" in err and "cannot reach" not in err, err


@pytest.mark.parametrize("command", [("resume", "abc"), ("runs",), ("show", "abc")])
def test_a_command_given_no_local_option_asks_the_server(
    kaon: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    """KAON_HOME (set by the fixture) beside KAON_URL is a client's usual setting; and
    `kaon resume` picks the run's executor itself only for a local run."""
    monkeypatch.setenv("KAON_URL", NOWHERE)
    code, out, err = kaon(*command)
    assert code == 2 and "cannot reach the Kaon server" in err, (out, err)


@pytest.mark.parametrize("command", [("runs",), ("triggers",), ("pool", "list")])
def test_an_empty_url_works_locally_whatever_kaon_url_says(
    kaon: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    """One command on the local store without unsetting KAON_URL: ``--url ''`` (it fell back
    to KAON_URL: the command asked the server), also beside a local option."""
    monkeypatch.setenv("KAON_URL", NOWHERE)
    code, out, err = kaon(*command, "--url", "", "--json")
    assert code == 2 and "cannot reach" not in err, (out, err)
    assert json.loads(out)["error"]["message"].startswith("no Kaon store at "), out  # local
    code, out, err = kaon(*command, "--url", "", "--db", "sqlite:///ci.db")
    assert code == 2 and "no Kaon store at ci.db" in err, (out, err)
    code, out, err = kaon(*command, "--db", "sqlite:///ci.db")
    assert code == 2 and "--url ''" in err, err

"""The CLI describes itself: a version, completion, ``python -m kaon``, help on every option,
readable metavars and choices as choices."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import kaon
from kaon.cli.main import app

# Typer's fallback metavars name Python types: `<str>`, `<int range>`, `<list[str]>`, `<bool>`.
TYPE_METAVAR = re.compile(r"<(str|int|float|bool|list|path|text|tuple|dict)\b", re.IGNORECASE)


def _commands() -> Iterator[tuple[str, Any, Any]]:
    """(command path, click command, context) for every leaf command of ``kaon``."""
    root = typer.main.get_command(app)

    def walk(command: Any, path: str, ctx: Any) -> Iterator[tuple[str, Any, Any]]:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                yield from walk(sub, f"{path} {name}".strip(), type(ctx)(sub, parent=ctx))
        else:
            yield path, command, ctx

    yield from walk(root, "", typer.Context(root, info_name="kaon"))


def test_every_command_option_and_argument_has_help_and_a_readable_metavar() -> None:
    problems = []
    commands = list(_commands())
    assert len(commands) > 25
    for path, command, ctx in commands:
        if not (command.help or "").strip():
            problems.append(f"kaon {path}: no help")
        if path and not (command.epilog or "").startswith("Example: kaon "):
            problems.append(f"kaon {path}: no example")
        for param in command.get_params(ctx):
            if param.hidden or "--help" in param.opts:
                continue
            record = param.get_help_record(ctx)
            shown = record[0] if record else param.name
            if not (param.help or "").strip():
                problems.append(f"kaon {path} {shown}: no help")
            if TYPE_METAVAR.search(shown):
                problems.append(f"kaon {path} {shown}: metavar names a Python type")
    assert problems == []


def test_version_module_entry_point_and_completion() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"kaon {kaon.__version__}\n"
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout and "--version" in result.stdout
    done = subprocess.run(
        [sys.executable, "-m", "kaon", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == f"kaon {kaon.__version__}\n"


def test_python_m_kaon_cli_main_has_every_command() -> None:
    """``python -m kaon.cli.main`` (as the CLI tests run it) had no ``compare``, ``artifacts``,
    ``lineage``, ``get``, ``explain``, ``cache``, ``plot`` or ``gc``: those register on
    ``kaon.cli.main``'s app, another module than ``__main__``, whose app was served."""
    for module in ("kaon.cli.main", "kaon"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
        missing = {"compare", "artifacts", "lineage", "get", "explain", "cache", "plot", "gc"}
        assert missing <= listed, (module, sorted(missing - listed))


def test_executor_is_a_choice(kaon: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = kaon("resume", "r-1", "--executor", "thread")
    assert code == 2 and "'thread' is not one of 'process', 'inline'" in err
    code, out, _ = kaon("run", "--help")
    assert "--executor [process|inline|ray]" in out or "<process|inline|ray>" in out


@pytest.mark.parametrize("option", ["--output", "--name"])
def test_get_names_the_output_with_name_not_output(option: str) -> None:
    command = dict((path, c) for path, c, _ in _commands())["get"]
    shown = {o for p in command.params if not p.hidden for o in p.opts}
    assert "--name" in shown and "-o" in shown and "--output" not in shown
    assert any(option in p.opts for p in command.params)  # --output: a hidden alias

"""The documentation site's sources: every page of the navigation exists, and the CLI
reference generated from the code covers every command (``make docs`` builds the site with
``mkdocs build --strict``, where a broken link or reference is an error)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from kaon.cli.main import app

ROOT = Path(__file__).resolve().parents[3]


def _nav_files(entries: list[object]) -> list[str]:
    found: list[str] = []
    for entry in entries:
        if isinstance(entry, dict):
            for value in entry.values():
                found += _nav_files(value) if isinstance(value, list) else [str(value)]
        else:
            found.append(str(entry))
    return found


def test_every_page_of_the_navigation_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_files(config["nav"])
    assert {"index.md", "production.md", "reference/cli.md", "changelog.md"} <= set(pages)
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), page
    production = (ROOT / "docs" / "production.md").read_text()
    for topic in ("systemd", "PostgreSQL", "TLS", "Backups", "Upgrades", "Several servers"):
        assert topic in production
    assert "scrape_configs" in production


def test_the_cli_reference_is_generated_for_every_command() -> None:
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs/hooks/cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.on_page_markdown("# CLI\n\n" + hook.MARKER + "\n")
    assert hook.MARKER not in page
    headings = set(re.findall(r"^#+ `(kaon[^`]*)`", page, re.M))
    for command in ("kaon", "kaon run", "kaon config show", "kaon token create", "kaon cache list"):
        assert command in headings
    assert "--metrics-public" in page and "--profile NAME" in page


def _verify_unit(unit: str, folder: Path) -> str:
    """What ``systemd-analyze verify`` says of ``unit`` (nothing when it is sound), with the
    unit's program replaced by an executable that exists here."""
    program = folder / "kaon"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    path = folder / "kaon.service"
    path.write_text(unit.replace("ExecStart=/opt/kaon/bin/kaon ", f"ExecStart={program} "))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else " (failed)")


def _unit_setting(unit: str, key: str, default: str) -> str:
    found = re.search(rf"^{key}=(\S+)", unit, re.M)
    return found.group(1) if found else default


def _seconds(value: str) -> float:
    """A systemd time span of the simple kinds the unit uses (``5``, ``5s``, ``1min``,
    ``100ms``, ``infinity``, ``0``)."""
    if value == "infinity":
        return float("inf")
    number, unit = re.fullmatch(r"([\d.]+)\s*(ms|s|min|)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1.0, "": 1.0, "min": 60.0}[unit]


def test_the_production_guides_unit_outlasts_a_database_that_is_down(tmp_path: Path) -> None:
    """`kaon server` exits at once (code 3) when its database refuses connections, for the
    service manager to restart it. With the unit's restart settings left at systemd's
    defaults (RestartSec=100ms, at most 5 starts in 10 s) a PostgreSQL that is still
    booting (after a power cut, on another host) made systemd give up after five failed
    starts within a few seconds, and Kaon stayed down for good."""
    guide = (ROOT / "docs" / "production.md").read_text()
    found = re.search(r"```ini\n(# /etc/systemd/system/kaon\.service\n.*?)```", guide, re.S)
    assert found is not None
    unit = found.group(1)
    done = subprocess.run(  # the premise: the server does not wait for its database
        [sys.executable, "-m", "kaon.cli.main", "server", "--home", str(tmp_path / "home")],
        env={**os.environ, "KAON_DB": "postgresql+psycopg://kaon@127.0.0.1:1/kaon"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3 and "Connection refused" in done.stderr
    assert _unit_setting(unit, "Restart", "no") in ("on-failure", "always")
    interval = _seconds(_unit_setting(unit, "StartLimitIntervalSec", "10s"))
    burst = int(_unit_setting(unit, "StartLimitBurst", "5"))
    pause = _seconds(_unit_setting(unit, "RestartSec", "100ms"))
    # However fast a failing start is, systemd must not run out of starts: its limit is
    # off (0), or the pauses alone spread the allowed starts beyond its interval.
    assert interval == 0 or burst * pause > interval, "systemd gives up on Kaon"
    assert pause >= 1, "a restart every 100 ms floods the log and the database"


def test_the_production_guides_systemd_unit_is_sound(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:  # make test installs it: fail, never skip
        pytest.fail("systemd-analyze is required (make test installs systemd)")
    guide = (ROOT / "docs" / "production.md").read_text()
    found = re.search(r"```ini\n(# /etc/systemd/system/kaon\.service\n.*?)```", guide, re.S)
    assert found is not None
    unit = found.group(1)
    assert _verify_unit(unit, tmp_path) == ""
    # a misspelt key or a bad value is reported: the check can fail
    assert "TimeoutStopSc" in _verify_unit(
        unit.replace("TimeoutStopSec", "TimeoutStopSc"), tmp_path
    )
    # and the command it starts is one `kaon server` accepts
    command = re.search(r"^ExecStart=/opt/kaon/bin/kaon (.*)$", unit, re.M)
    assert command is not None
    args = shlex.split(command.group(1))
    root: Any = typer.main.get_command(app)
    server = root.get_command(typer.Context(root, info_name="kaon"), args[0])
    assert server is not None
    server.make_context("server", args[1:])  # raises on an unknown option or a bad value

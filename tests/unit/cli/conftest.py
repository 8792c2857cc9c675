"""The CLI tests' shared fixture: ``kaon(*args)`` runs the CLI in-process on a fresh home."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaon.cli.main import app


@pytest.fixture
def kaon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """``kaon(*args) -> (exit code, stdout, stderr)`` with KAON_HOME under ``tmp_path``, the
    inline executor, and no server URL."""
    monkeypatch.setenv("KAON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAON_EXECUTOR", "inline")
    monkeypatch.delenv("KAON_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke

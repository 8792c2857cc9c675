"""An attempt's log in the state store is bounded; the full log is kept as an artifact."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaon.cli.main import app
from kaon.executors.runtime import MAX_LOG_BYTES

FLOWS = str(Path(__file__).with_name("log_flows.py"))


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_chatty_attempt_stores_its_log_up_to_the_limit_then_a_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.setenv("KAON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAON_EXECUTOR", executor)
    monkeypatch.setenv("KAON_WORKERS", "1")
    monkeypatch.delenv("KAON_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["run", f"{FLOWS}:noisy", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["id"]
    with sqlite3.connect(tmp_path / "home" / "kaon.db") as db:
        stored = db.execute("SELECT sum(length(text) + 1), count(*) FROM logs").fetchone()
        last = db.execute("SELECT text FROM logs ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert stored[0] <= MAX_LOG_BYTES + 300
    assert stored[1] < 15000
    assert last.startswith("kaon: log truncated after 1,000,000 bytes")
    digest = last.split("artifact ", 1)[1].split()[0]
    out = tmp_path / "full.log"
    got = runner.invoke(app, ["get", digest, "-o", str(out)], catch_exceptions=False)
    assert got.exit_code == 0, got.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 15000
    assert lines[0].startswith("stdout: line 000000") and "line 014999" in lines[-1]
    shown = runner.invoke(app, ["logs", run_id, "chatty"], catch_exceptions=False)
    assert shown.exit_code == 0 and "log truncated" in shown.stdout
    lineage = runner.invoke(app, ["artifacts", run_id, "--json"], catch_exceptions=False)
    assert '"kaon.log"' in lineage.stdout


def test_short_lines_count_at_least_a_rows_cost_against_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 empty lines are 100,000 bytes of text but were 100,000 rows (about 150 bytes
    each in SQLite with its indexes): a million of them put 150 MB in the store, under a
    1 MB limit. Each line counts at least 100 bytes."""
    monkeypatch.setenv("KAON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAON_EXECUTOR", "inline")
    monkeypatch.delenv("KAON_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["run", f"{FLOWS}:blanks", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    with sqlite3.connect(tmp_path / "home" / "kaon.db") as db:
        rows = db.execute("SELECT count(*) FROM logs").fetchone()[0]
        last = db.execute("SELECT text FROM logs ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert rows <= MAX_LOG_BYTES // 100 + 1  # LOG_LINE_MIN_BYTES
    assert last.startswith("kaon: log truncated after 1,000,000 bytes")

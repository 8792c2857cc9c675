"""An attempt's log in the state store is bounded; the full log is kept as an artifact."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaon.cli.main import app
from kaon.executors import runtime
from kaon.executors.runtime import MAX_LOG_BYTES
from kaon.model.events import LogLine

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


class _FullDisk:
    """A spool file on a full disk: every write fails as ``/dev/full`` makes it fail."""

    name = "/dev/full"

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._file = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 (closed below)

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._file.close()


@pytest.mark.parametrize("failure", ["cannot_make", "disk_full"])
def test_a_log_that_cannot_be_spooled_never_fails_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """The lines past the limit are spooled in the process's scratch root (TMPDIR): when that
    cannot be made or written (TMPDIR full), the OSError reached the step's own print() and
    failed an attempt whose work was fine. Now the lines past the limit are only counted and
    the marker line says why the full log was not kept."""
    if failure == "cannot_make":
        monkeypatch.setattr(runtime, "scratch_root", lambda: str(tmp_path / "missing"))
    else:
        monkeypatch.setattr(runtime.tempfile, "NamedTemporaryFile", _FullDisk)
    sent: list[object] = []
    budget = runtime._LogBudget(sent.append, None, limit=1000)  # type: ignore[arg-type]
    key = ("r", 1, 1)
    for number in range(100):
        budget(LogLine(key, 0.0, "stdout", f"line {number:03d} " + "x" * 40))
    budget.finish(key)
    lines = [e.text for e in sent if isinstance(e, LogLine)]
    assert lines[0].startswith("line 000") and len(lines) == 11  # 10 lines of 100, a marker
    assert lines[-1].startswith("kaon: log truncated after 1,000 bytes (90 more lines)")
    assert "the full log could not be kept" in lines[-1]
    reason = "No such file or directory" if failure == "cannot_make" else "No space left"
    assert reason in lines[-1]

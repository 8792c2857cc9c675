"""What one attempt may record as metrics is bounded, like its log.

A metric's name had no limit: ten metrics named with 10 MB strings put 100 MB in the state
store (and in every view that lists metrics). Names longer than MAX_METRIC_NAME_CHARS are
refused where they are reported, as a NaN value is."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

FLOW = """
import kaon

@kaon.step
def long_name() -> int:
    try:
        kaon.context().metric("n" * 1_000_000, 1.0)
    except ValueError:
        pass  # refused where it is reported: the step decides what to do
    kaon.context().metric("ok", 1.0)
    return 1

@kaon.workflow
def pylong():
    long_name()

@kaon.workflow
def shelllong():
    kaon.shell(
        "echo \\"::kaon::metric $(printf 'n%.0s' $(seq 300))=1\\"; echo '::kaon::metric acc=0.5'",
        id="sh",
    )
"""


def _run(tmp: Path, target: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAON_HOME": str(tmp / ".kaon"), "KAON_EXECUTOR": "inline"}
    return subprocess.run(
        [sys.executable, "-m", "kaon", "run", f"flow.py:{target}", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env,
        timeout=120,
    )


def test_a_python_metric_with_a_huge_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    detail = json.loads(_run(tmp_path, "pylong").stdout)
    assert detail["status"] == "succeeded"
    assert [(m["name"], m["value"]) for m in detail["metrics"]] == [("ok", 1.0)]


def test_a_shell_metric_line_with_a_huge_name_is_logged_not_recorded(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    done = _run(tmp_path, "shelllong")
    detail = json.loads(done.stdout)
    assert detail["status"] == "succeeded"
    assert [(m["name"], m["value"]) for m in detail["metrics"]] == [("acc", 0.5)]
    env = {**os.environ, "KAON_HOME": str(tmp_path / ".kaon")}
    logs = subprocess.run(
        [sys.executable, "-m", "kaon", "logs", detail["id"], "sh"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    ).stdout
    assert "malformed protocol line" in logs and "longer than 200" in logs


COUNT_FLOW = """
import kaon

@kaon.step
def chatty_metrics(n: int) -> int:
    ctx = kaon.context()
    for i in range(n):
        ctx.metric("loss", float(i), step=i)
    ctx.metric("accuracy", 0.9)
    return n

@kaon.workflow
def many(n: int = 30_000):
    chatty_metrics(n)
"""


def test_an_attempt_records_a_bounded_number_of_metric_values_and_each_names_last(
    tmp_path: Path,
) -> None:
    """A million ctx.metric calls were a million rows (150 MB of SQLite). Past
    MAX_METRIC_VALUES an attempt's values are not recorded, except the last of each name
    (what `kaon compare` and `kaon show` read), and its log says so."""
    (tmp_path / "flow.py").write_text(COUNT_FLOW)
    done = _run(tmp_path, "many")
    detail = json.loads(done.stdout)
    assert detail["status"] == "succeeded"
    db = tmp_path / ".kaon" / "kaon.db"
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
        last = dict(conn.execute("SELECT name, max(value) FROM metrics GROUP BY name").fetchall())
        logs = [row[0] for row in conn.execute("SELECT text FROM logs")]
    assert count <= 10_002
    assert last == {"loss": 29_999.0, "accuracy": 0.9}
    assert any("metric values past the 10,000" in line for line in logs), logs

"""What one attempt reports as progress is bounded: every ctx.progress call was an event row
(and an event sent to every follower of the run): 200,000 calls in a loop put 70 MB in the
state store; and a progress message had no size limit."""

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
def spin(n: int) -> int:
    ctx = kaon.context()
    for i in range(n - 1):
        ctx.progress(i + 1, n)
    ctx.progress(n, n, "done " + "m" * 100_000)
    return n

@kaon.workflow
def spinning(n: int = 50_000):
    spin(n)
"""


def test_a_progress_loop_records_a_bounded_number_of_reports_and_the_last(
    tmp_path: Path,
) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    env = {**os.environ, "KAON_HOME": str(tmp_path / ".kaon"), "KAON_EXECUTOR": "inline"}
    done = subprocess.run(
        [sys.executable, "-m", "kaon", "run", "flow.py:spinning", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert json.loads(done.stdout)["status"] == "succeeded", done.stderr
    with sqlite3.connect(tmp_path / ".kaon" / "kaon.db") as db:
        rows = [
            json.loads(row[0])
            for row in db.execute("SELECT data FROM events WHERE kind = 'progress' ORDER BY id")
        ]
    assert len(rows) <= 1_010
    assert rows[-1]["done"] == 50_000  # the last report, held back, goes with the end
    assert rows[-1]["message"].startswith("done mmm")
    assert len(rows[-1]["message"]) <= 1_100

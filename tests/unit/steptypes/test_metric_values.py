"""A NaN metric (a diverging loss) from a Python step or a shell step's protocol line used
to reach the state store, whose NOT NULL metrics.value refused it: the engine quarantined
the whole run ("StoreError ... NOT NULL constraint failed: metrics.value", a traceback in
the log). An infinite one was stored and printed as `Infinity` by `--json` (not JSON).
Non-finite values must be refused where they are reported, as kaon.notebook.metric does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOW = """
import kaon

@kaon.step
def nan_metric() -> int:
    try:
        kaon.context().metric("loss", float("nan"))
    except ValueError:
        pass  # refused where it is reported: the step decides what to do
    kaon.context().metric("ok", 1.0)
    return 1

@kaon.workflow
def pynan():
    nan_metric()

@kaon.workflow
def shellnan():
    kaon.shell("echo '::kaon::metric loss=nan'; echo '::kaon::metric acc=0.5'", id="sh")
"""


def _run(tmp: Path, target: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAON_HOME": str(tmp / ".kaon")}
    return subprocess.run(
        [sys.executable, "-m", "kaon", "run", f"flow.py:{target}", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env,
        timeout=120,
    )


def test_a_nan_metric_from_python_does_not_kill_the_run(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    done = _run(tmp_path, "pynan")
    assert "quarantined" not in done.stderr + done.stdout
    detail = json.loads(done.stdout)
    assert detail["status"] == "succeeded"
    assert [(m["name"], m["value"]) for m in detail["metrics"]] == [("ok", 1.0)]


def test_a_nan_metric_line_from_shell_does_not_kill_the_run(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    done = _run(tmp_path, "shellnan")
    assert "quarantined" not in done.stderr + done.stdout
    detail = json.loads(done.stdout)
    assert detail["status"] == "succeeded"
    assert [(m["name"], m["value"]) for m in detail["metrics"]] == [("acc", 0.5)]

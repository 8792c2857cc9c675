"""The per-genre sweep example runs end to end (a tiny grid, inline) and draws its plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SWEEP = Path(__file__).resolve().parents[3] / "examples" / "recsys" / "sweep.py"


@pytest.mark.slow
def test_tiny_sweep_picks_a_best_point_per_genre_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "out"
    params = ["ks=[2,4]", "regs=[5.0]", "max_segments=2", "min_ratings=100", f"out_dir={out}"]
    command = [sys.executable, "-m", "kaon.cli.main", "run", str(SWEEP), "-e", "inline", "--json"]
    for param in params:
        command += ["-p", param]
    env = {**os.environ, "KAON_HOME": str(tmp_path / "home")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=110)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "sweep.png").stat().st_size > 1000
    report = json.loads(done.stdout)  # --json: one document
    assert report["status"] == "succeeded"
    compare = next(step for step in report["steps"] if step["path"] == "compare")
    outputs = {name: value["value"] for name, value in compare["outputs"].items()}
    assert outputs["fits"] == 4  # 2 genres x 2 values of k
    assert sorted(outputs["best"]) == sorted(
        next(s for s in report["steps"] if s["path"] == "prepare")["outputs"]["segments"]["value"]
    )

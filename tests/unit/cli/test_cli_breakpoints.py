"""`kaon run --break`, `kaon paused` and `kaon continue`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

FLOWS = str(Path(__file__).with_name("cli_flows.py"))
KAON = [sys.executable, "-m", "kaon.cli.main"]
BREAKS = ["--break", "total", "--break", "each[1].square:after"]


@pytest.mark.slow
def test_break_inspect_and_continue(kaon) -> None:  # type: ignore[no-untyped-def]
    runner = subprocess.Popen(
        [*KAON, "run", f"{FLOWS}:squares", "-p", "n=3", *BREAKS],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stdout is not None
        run_id = runner.stdout.readline().strip()
        deadline = time.monotonic() + 30
        while True:
            code, out, _ = kaon("paused", run_id, "--json")
            held = {s["path"]: s for s in json.loads(out)} if code == 0 else {}
            if "each[1].square" in held:
                break
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.1)
        item = held["each[1].square"]
        assert item["moment"] == "after" and item["outputs"]["return"]["value"] == 1
        code, out, _ = kaon("paused", run_id)
        assert code == 0 and "each[1].square" in out and "kaon continue" in out
        assert kaon("continue", run_id)[0] == 0
        while "total" not in held:  # then it stops before total, with its inputs
            code, out, _ = kaon("paused", run_id, "--json")
            held = {s["path"]: s for s in json.loads(out)}
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert held["total"]["inputs"]["values"]["value"] == [0, 1, 4]
        assert kaon("continue", run_id, "--step", "total")[0] == 0
        assert runner.wait(timeout=30) == 0
        assert "paused at" in (runner.stderr.read() if runner.stderr else "")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    code, out, _ = kaon("continue", run_id)
    assert code == 2 and "not paused" in out + _

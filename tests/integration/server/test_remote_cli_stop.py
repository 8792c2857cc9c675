"""Ctrl-C on ``kaon run`` against a server stops following at once: the server's run goes on."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import KAON, ServerProcess

FLOW = """
import time

import kaon


@kaon.step
def tick(n: int) -> int:
    for i in range(n):
        time.sleep(0.2)
    return n


@kaon.workflow
def ticking(n: int = 60) -> None:
    tick(n)
"""


def _interrupt(server: ServerProcess, tmp_path: Path) -> tuple[str, int, str, float]:
    """Run the workflow against ``server``, Ctrl-C it while its step runs (it writes no log
    line: nothing comes on the event stream); returns (run id, exit code, stderr, seconds
    from the signal to the exit)."""
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "ticking.py").write_text(FLOW)
    runner = subprocess.Popen(
        [KAON, "run", str(folder / "ticking.py"), "--no-logs"],
        env=server.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stdout is not None
        run_id = runner.stdout.readline().strip()
        for line in runner.stdout:  # following it: the step's transition is shown
            if "tick running" in line:
                break
        time.sleep(0.5)
        sent = time.monotonic()
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=60)
        return run_id, runner.returncode, err, time.monotonic() - sent
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_ctrl_c_on_a_server_run_stops_following_at_once(
    server: ServerProcess, tmp_path: Path, wait: Any
) -> None:
    """The follower saw the stop only at the stream's next line or its 5 s read timeout."""
    run_id, code, err, seconds = _interrupt(server, tmp_path)
    assert code == 130 and "Traceback" not in err, err
    assert seconds < 2.5, seconds
    assert wait(server.client(), run_id, {"running"})["status"] == "running"  # it goes on


def test_ctrl_c_on_a_server_run_says_to_watch_it_not_to_resume_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    """It said `stopped; the run goes on with: kaon resume RUN`, the advice for a run whose
    engine was the stopped process; a server's engine drives the run on by itself."""
    run_id, code, err, _ = _interrupt(server, tmp_path)
    assert code == 130, err
    assert f"the run goes on (kaon watch {run_id})" in err and "kaon resume" not in err, err

"""A shell step's output file (``$KAON_OUTPUT``) goes when its worker ends mid-step.

A worker that ends without finishing its step (a cancel or a timeout whose Python code would
not stop, a lost engine) leaves with ``os._exit`` (:func:`kaon.executors._descendants.die`),
which skips the step's ``finally``: the file it made for the command's outputs was left in
``TMPDIR``, one per such step (the suite left about fifteen per run)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

_CHILD = """
import sys, threading
from kaon.executors._descendants import die
from kaon.executors.base import TaskRequest
from kaon.executors.runtime import run_task

request = TaskRequest(
    key=("r", 1, 1), step_path="s", step_type="shell",
    config={{"command": "echo $KAON_OUTPUT > {marker}; sleep 60"}},
    inputs={{}}, params={{}}, artifact_url="memory://kaon-shell-output",
)
threading.Thread(target=run_task, args=(request, lambda *a: None), daemon=True).start()
sys.stdin.readline()  # the test saw the command start: end as a worker ends mid-step
die(1)
"""


def test_a_worker_ended_mid_step_leaves_no_output_file(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(marker=str(marker)))
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    child = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text().strip():
            assert child.poll() is None and time.monotonic() < deadline, "the step never ran"
            time.sleep(0.05)
        output = Path(marker.read_text().strip())
        assert output.exists()  # the command's output file, while the step runs
        assert child.stdin is not None
        child.stdin.write(b"end\n")
        child.stdin.close()
        assert child.wait(timeout=60) == 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not output.exists(), f"{output} was left behind"
    assert list((tmp_path / "tmp").iterdir()) == []

"""Killing a Ray worker node mid-attempt is a platform failure (retried by the step's policy)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from check_ray_contract import ray_request
from test_executor_contract import Recorder

from kaon.executors import create_executor
from kaon.executors._descendants import descendants_and_group
from kaon.model.events import StepFailed, StepStarted
from kaon.model.values import Literal

RAY = str(Path(sys.executable).with_name("ray"))


def _pids_with(text: str) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            found.add(int(name))
    return found


def _kill_node(temp_dir: str) -> None:
    roots = _pids_with(temp_dir)
    assert roots, "the second node's processes were not found"
    victims = set(roots)
    for pid in roots:
        victims |= descendants_and_group(pid)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_killing_the_node_of_an_attempt_is_a_platform_failure(
    tmp_path: Path, ray_address: str
) -> None:
    temp_dir = tempfile.mkdtemp(prefix="kaon-ray-node2-")
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": os.environ["KAON_RAY_TOKEN"],
    }
    node = [
        RAY, "start", f"--address={ray_address}", "--node-ip-address=127.0.0.1",
        "--num-cpus=1", f"--resources={json.dumps({'kaon_node2': 1})}",
        f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    started = subprocess.run(node, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    recorder = Recorder()
    executor = create_executor("ray", workers=2, address=ray_address)
    executor.start(recorder)
    try:
        marker = tmp_path / "marker"
        request = ray_request(
            str(tmp_path / "artifacts"),
            "slow",
            inputs={"seconds": Literal(60), "marker": Literal(str(marker))},
            resources={"custom": {"kaon_node2": 1}},
        )
        executor.submit(request)
        recorder.wait_for(
            lambda evs: any(isinstance(e, StepStarted) and e.key == request.key for e in evs), 60
        )
        deadline = time.monotonic() + 60  # the step's own code runs a little after
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        _kill_node(temp_dir)
        final = recorder.final(request.key, timeout=90)
        assert isinstance(final, StepFailed), final
        assert final.error.platform and final.error.error_type == "WorkerLost"
    finally:
        executor.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)  # the killed node's session and logs

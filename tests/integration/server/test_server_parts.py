"""The server's engine and trigger loop run in processes of their own: the API never waits
for them on Python's GIL, a part that dies stops the server (exit 1, the reason logged),
and the parts die with the server however it dies."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from conftest import ServerProcess, start_server, wait_for

pytestmark = pytest.mark.integration

HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


def _engine_pid(server: ServerProcess) -> int:
    """The engine's process, from the lease owner (``host:pid:nonce``) of a run it holds."""
    admin = server.client()
    assert admin.post("/workflows", json={"source": HELLO, "file_name": "h.yaml"}).is_success
    held = "name: held\nsteps:\n  - id: w\n    wait: never\n"
    assert admin.post("/workflows", json={"source": held, "file_name": "w.yaml"}).is_success
    run = admin.post("/runs", json={"workflow": "held"}).json()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        owner = admin.get(f"/runs/{run['id']}").json().get("owner")
        if owner:
            return int(owner.split(":")[1])
        time.sleep(0.1)
    raise AssertionError("no engine took the run")


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(pid) and _alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_dead_engine_stops_the_server_and_says_why(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        engine = _engine_pid(server)
        assert engine != server.process.pid  # a process of its own
        assert psutil.Process(engine).ppid() == server.process.pid
        run = server.client().post("/runs", json={"workflow": "hello"}).json()
        assert wait_for(server.client(), run["id"], {"succeeded"})["status"] == "succeeded"
        os.kill(engine, signal.SIGKILL)
        assert server.process.wait(timeout=30) == 1
        assert "the engine process exited with code -9; stopping the server" in server.logs()
    finally:
        server.stop(signal.SIGKILL)


def test_parts_die_with_the_server(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        engine = _engine_pid(server)
        parts = [child.pid for child in psutil.Process(server.process.pid).children()]
        assert engine in parts and len(parts) >= 2  # the engine and the trigger loop
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        assert _gone(parts, within=20), [psutil.Process(p).cmdline() for p in parts]
    finally:
        server.stop(signal.SIGKILL)

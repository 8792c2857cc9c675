"""Runs inside the private network namespace made by ``tests/integration/test_ray.py``.

Brings loopback up, starts a Ray head on 127.0.0.1 with token authentication, runs the
``check_*.py`` tests here with pytest (arguments are passed on), and then kills every process
left in this namespace (the Ray daemons detach; everything in the namespace is ours, so
nothing outside it is touched). Exits with pytest's status.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PORT = 6399


def _same_namespace_pids() -> list[int]:
    mine = os.readlink("/proc/self/ns/net")
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (os.getpid(), os.getppid()):
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/net") == mine:
                found.append(int(name))
        except OSError:
            continue
    return found


def _kill_namespace() -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _same_namespace_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(0.5)


def main() -> int:
    """Start the head, run the checks, clean up."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    home = tempfile.mkdtemp(prefix="kaon-ray-home-")
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "HOME": home,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
    }
    temp = tempfile.mkdtemp(prefix="kaon-ray-")
    head = [
        str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={PORT}",
        "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]  # fmt: skip
    try:
        started = subprocess.run(head, env=env, capture_output=True, text=True, timeout=120)
        if started.returncode != 0:
            sys.stderr.write(started.stdout + started.stderr)
            return 3
        # Kaon gets the token through its own variable, not Ray's: the checks prove that path.
        check_env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
        check_env.update(
            KAON_RAY_NETNS="1",
            KAON_RAY_ADDRESS=f"127.0.0.1:{PORT}",
            KAON_RAY_TOKEN=token,
            KAON_RAY_TEMP=temp,
        )
        command = [
            str(BIN / "pytest"), "-p", "no:cacheprovider", "-o", "python_files=check_*.py",
            "--rootdir", str(HERE.parents[2]), str(HERE), *sys.argv[1:],
        ]  # fmt: skip
        return subprocess.run(command, env=check_env, check=False).returncode
    finally:
        _kill_namespace()
        for folder in (home, temp):  # the cluster's sessions and logs: not the machine's
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""A real ``kaon server`` process on a free loopback port with a temp home, for these tests.

``start_server(home)`` runs ``kaon server --bootstrap-token root`` and waits for
``/healthz``; the admin token is read from its first line of output. Each test that needs a
server gets one through the ``server`` fixture (stopped with SIGTERM after the test).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

KAON = str(Path(sys.executable).parent / "kaon")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running server and how to talk to it."""

    process: subprocess.Popen[str]
    url: str
    home: Path
    token: str
    log: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client with ``token`` (default: the admin's); closed with the server."""
        secret = self.token if token is None else token
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        made = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)
        self.clients.append(made)
        return made

    def env(self, token: str | None = None) -> dict[str, str]:
        """Environment for CLI commands against this server."""
        return {
            **os.environ,
            "KAON_URL": self.url,
            "KAON_TOKEN": self.token if token is None else token,
            "KAON_HOME": str(self.home / "client"),
        }

    def cli(self, *args: str, token: str | None = None, timeout: float = 60) -> Any:
        """Run ``kaon ARGS`` against the server; returns the CompletedProcess."""
        return subprocess.run(
            [KAON, *args],
            env=self.env(token),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit code."""
        for made in self.clients:
            made.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(home: Path, *extra: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start ``kaon server`` on a free port; wait until it answers ``/healthz``."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"server-{port}.log"
    command = [KAON, "server", "--home", str(home), "--port", str(port)]
    command += ["--bootstrap-token", "root", *extra]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"kaon server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"kaon server did not answer within 30 s:\n{log.read_text()}")
    token = ""
    token_file = home / "root-token"
    if token_file.exists():
        token = token_file.read_text().strip()
    else:
        assert process.stdout is not None
        line = process.stdout.readline()
        token = line.rsplit(": ", 1)[-1].strip()
        token_file.write_text(token)
    return ServerProcess(process, url, home, token, log)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    # Tests' steps read files they make under tmp_path: let the step sandbox show them.
    running = start_server(tmp_path / "home", env={"KAON_SANDBOX_READ": str(tmp_path)})
    try:
        yield running
    finally:
        code = running.stop()
        assert code == 0, running.logs()


def wait_for(
    client: httpx.Client, run_id: str, statuses: set[str], timeout: float = 60
) -> dict[str, Any]:
    """Poll a run until its status is one of ``statuses``; returns its detail."""
    deadline = time.monotonic() + timeout
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        detail = client.get(f"/runs/{run_id}").json()
        if detail.get("status") in statuses:
            return detail
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} stayed {detail.get('status')}: {detail}")


@pytest.fixture
def wait() -> Any:
    """:func:`wait_for`, for the tests."""
    return wait_for


@pytest.fixture(scope="module")
def launch_shared() -> Any:
    """:func:`start_server`, for a module's fixture that shares one server between tests."""
    return start_server


@pytest.fixture
def launch() -> Any:
    """:func:`start_server`, for tests that stop and restart servers themselves."""
    return start_server


# The web UI's tests drive Debian's Chromium (never a downloaded browser) through Playwright.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a module's tests (skipped where it is not installed: `make`
    installs Debian's ``chromium``)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (make installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()

"""The server's container image (``deploy/Containerfile``), built and run by real Podman.

No registry is reachable here: the base image is made from this machine's Python by
``deploy/python_base.py`` and the build runs with no network, from a folder of wheels (Kaon's
wheel and its dependencies, fetched by pip from the package index through its cache). Podman's
storage lives in the test's temporary folder. The image is built without byte code
(``--no-compile``: the build takes half the time; the server's first start compiles what it
imports). The container shares the host's network with the server bound to 127.0.0.1 only
(``KAON_HOST``, ``KAON_PORT``); the test checks the health check, the unprivileged user, a run
through the API from the host's CLI, and a clean exit on SIGTERM.

This machine needs ``--runtime runc`` and ulimits below the host's hard limits (as the
container step tests).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from distbuild import CLEAN_ENV, ROOT, run

# The image build is CPU-bound (pip, and the byte code of the base's standard library): about
# 35 s on an idle 2-core machine, much more under load; it gets a longer timeout.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

BASE = "localhost/kaon-python-base:test"
EXTRAS = "postgres"  # a small extra: the image installs it too
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")
FLOW = """\
name: hello_container
steps:
  - id: greet
    type: shell
    config:
      command: 'echo "::kaon::output greeting=hello from $(id -u)"'
"""


class Podman:
    """``podman`` with its storage under a temporary folder."""

    def __init__(self, storage: Path, runroot: Path) -> None:
        self.root = storage / "root"
        self.argv = [
            "podman",
            "--root",
            str(self.root),
            "--runroot",
            str(runroot),  # podman refuses a run root longer than 50 characters
            "--runtime",
            "runc",
        ]

    def __call__(self, *args: str | Path, timeout: float = 110) -> str:
        return run(*self.argv, *args, timeout=timeout)

    def logs(self, container: str) -> str:
        """The container's standard output and error."""
        done = subprocess.run(
            [*self.argv, "logs", container], capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout + done.stderr

    def status(self, *args: str) -> int:
        done = subprocess.run(
            [*self.argv, *args], capture_output=True, timeout=30, env=CLEAN_ENV, check=False
        )
        return done.returncode


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    if shutil.which("podman") is None or shutil.which("busybox") is None:
        pytest.fail("podman and busybox are required (make test installs podman busybox-static)")
    storage = tmp_path_factory.mktemp("podman")
    runroot = Path(tempfile.mkdtemp(prefix="kaon-podman-"))
    tool = Podman(storage, runroot)
    try:
        yield tool
    finally:
        subprocess.run([*tool.argv, "rm", "--all", "--force"], capture_output=True, check=False)
        # podman bind-mounts its overlay folder onto itself: undo it, or the temporary
        # folder cannot be removed (pytest then warns on every later session)
        subprocess.run(["umount", str(tool.root / "overlay")], capture_output=True, check=False)
        shutil.rmtree(runroot, ignore_errors=True)


@pytest.fixture(scope="module")
def base_image(podman: Podman) -> Iterator[subprocess.Popen[bytes]]:
    """The base image from this machine's Python, built while the wheels are gathered."""
    script = [sys.executable, str(ROOT / "deploy" / "python_base.py"), BASE]
    building = subprocess.Popen(
        [*script, "--podman", " ".join(podman.argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=CLEAN_ENV,
    )
    yield building
    building.kill()
    building.wait()


@pytest.fixture(scope="module")
def image(
    podman: Podman,
    base_image: subprocess.Popen[bytes],
    wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The server image, built offline from a folder of wheels on the local base."""
    context = tmp_path_factory.mktemp("image")
    pip = (sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:")
    run(*pip, "--dest", context / "wheels", f"kaon[{EXTRAS}] @ {wheel.as_uri()}")
    output, _ = base_image.communicate(timeout=60)
    assert base_image.returncode == 0, output.decode()
    name = f"localhost/kaon-server:{uuid.uuid4().hex[:8]}"
    podman(
        "build", "--quiet", "--format", "docker", "--network", "none", *ULIMITS,
        "--build-arg", f"BASE={BASE}", "--build-arg", "PIP_OPTIONS=--no-index --no-compile",
        "--build-arg", f"EXTRAS={EXTRAS}",
        "--file", ROOT / "deploy" / "Containerfile", "--tag", name, context,
    )  # fmt: skip
    return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(podman: Podman, container: str, deadline_s: float = 90) -> None:
    deadline = time.monotonic() + deadline_s
    while podman.status("healthcheck", "run", container) != 0:
        running = podman("inspect", "--format", "{{.State.Running}}", container).strip()
        if running != "true" or time.monotonic() > deadline:
            logs = podman.logs(container)
            raise AssertionError(f"never healthy (running: {running}):\n{logs}")
        time.sleep(1)


def test_image_runs_the_server_unprivileged_with_a_health_check(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    info = json.loads(podman("image", "inspect", image))[0]
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert info["Healthcheck"]["Test"][0] == "CMD"
    container = f"kaon-test-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    # the host's network, the server bound to loopback only (the test talks to it from here)
    listen = ("--env", "KAON_HOST=127.0.0.1", "--env", f"KAON_PORT={port}")
    podman("run", "--detach", "--name", container, "--network", "host", *listen, *ULIMITS, image)
    try:
        _wait_healthy(podman, container)
        assert podman("inspect", "--format", "{{.State.Health.Status}}", container).strip() == (
            "healthy"
        )
        # the server (pid 1) runs as the image's user, not root
        status = podman("exec", container, "cat", "/proc/1/status")
        assert re.search(r"^Uid:\s+10001\s", status, re.MULTILINE), status
        # the first start printed an admin token; a workflow runs through the API
        token = re.search(r"kaon_[A-Za-z0-9_\-]+", podman.logs(container))
        assert token, podman.logs(container)
        flow = tmp_path / "flow.yaml"
        flow.write_text(FLOW)
        api = {"KAON_URL": f"http://127.0.0.1:{port}", "KAON_TOKEN": token.group()}
        done = subprocess.run(
            [sys.executable, "-m", "kaon", "run", "--json", str(flow)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, **api},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["status"] == "succeeded"
        assert '"hello from 10001"' in done.stdout  # the step ran as the image's user too
        # the postgres extra came with it
        podman("exec", container, "python", "-c", "import psycopg")
        # SIGTERM: the server stops and exits 0
        podman("stop", "--time", "20", container)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", container).strip() == "0"
    finally:
        subprocess.run([*podman.argv, "rm", "--force", container], capture_output=True, check=False)

"""The container step type with real Podman, on an image built from busybox with no registry.

This machine needs ``--runtime runc`` (crun rejects its hybrid cgroup v1/v2 layout) and ulimits
below the worker's hard limits; the tests pass them the documented way, through
``KAON_PODMAN_ARGS`` and ``KAON_PODMAN_RUN_ARGS``.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kaon.errors import Location, StepError
from kaon.model.events import ExecutorEvent, LogLine, MetricReported
from kaon.steptypes.container import ContainerStepType, podman_argv
from kaon.steptypes.context import StepContext
from kaon.steptypes.registry import get_step_type

BUSYBOX = shutil.which("busybox")
HERE = Location("flow.yaml", 20, "steps.box")
TOOLS = ("sh", "echo", "cat", "env", "sleep", "printf", "grep")

# `make test` installs podman, runc and busybox-static: without them these tests fail, never skip.
needs_podman = pytest.mark.usefixtures("podman_installed")


@pytest.fixture(scope="module")
def podman_installed() -> None:
    if shutil.which("podman") is None or BUSYBOX is None:
        pytest.fail("podman and busybox are required (make test installs podman busybox-static)")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A busybox image imported from a local root file system (no registry involved)."""
    root = tmp_path_factory.mktemp("rootfs")
    (root / "bin").mkdir()
    assert BUSYBOX is not None
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for tool in TOOLS:
        (root / "bin" / tool).symlink_to("busybox")
    archive = root.parent / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname=".")
    name = f"localhost/kaon-test-busybox:{uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "import", str(archive), name], check=True, capture_output=True)
    yield name
    subprocess.run(["podman", "rmi", "--force", name], check=False, capture_output=True)


@pytest.fixture(autouse=True)
def _podman_flags_for_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAON_PODMAN_ARGS", "--runtime runc")
    monkeypatch.setenv("KAON_PODMAN_RUN_ARGS", "--ulimit nofile=1024:1024 --ulimit nproc=4096:4096")


class Harness:
    def __init__(self, **extra: Any) -> None:
        self.events: list[ExecutorEvent] = []
        self.ctx = StepContext(
            ("run-1", 1, 1), "box", "wf", {"k": 1}, self.events.append, extra=extra
        )

    def run(self, image: str, inputs: dict[str, Any] | None = None, **config: Any) -> Any:
        return ContainerStepType().run(self.ctx, {"image": image, **config}, inputs or {})

    def logs(self) -> list[tuple[str, str]]:
        return [(e.stream, e.text) for e in self.events if isinstance(e, LogLine)]


def test_registered_as_container() -> None:
    assert isinstance(get_step_type("container"), ContainerStepType)


@needs_podman
def test_container_gets_inputs_and_reports_outputs(image: str) -> None:
    harness = Harness()
    command = (
        'echo "hello $KAON_INPUT_NAME"; echo "params $KAON_PARAMS";'
        "echo '::kaon::metric acc=0.75'; echo \"::kaon::output greeting=$GREETING\";"
        'echo oops >&2; printf \'{"count": 3}\' > "$KAON_OUTPUT"'
    )
    outputs = harness.run(
        image, {"name": "ann"}, command=command, env={"GREETING": "hi"}, resources={"cores": 1}
    )
    assert outputs == {"greeting": "hi", "count": 3}
    assert ("stdout", "hello ann") in harness.logs()
    assert ("stdout", 'params {"k": 1}') in harness.logs()
    assert ("stderr", "oops") in harness.logs()
    metrics = [(e.name, e.value) for e in harness.events if isinstance(e, MetricReported)]
    assert metrics == [("acc", 0.75)]


@needs_podman
def test_worker_environment_and_network_stay_outside(
    image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAON_TEST_HOST_SECRET", "do-not-leak")
    outputs = Harness().run(
        image,
        command=[
            "/bin/sh",
            "-c",
            "echo ::kaon::output leaked=$(env | grep -c HOST_SECRET);"
            "echo ::kaon::output step=$(env | grep -c ^KAON_STEP=box$);"
            "echo ::kaon::output ifaces=$(cat /proc/net/dev | grep -c :)",
        ],
    )
    assert outputs == {"leaked": 0, "step": 1, "ifaces": 1}  # only the loopback interface


@needs_podman
def test_memory_limit_is_applied(image: str) -> None:
    read_limit = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
        "|| cat /sys/fs/cgroup/memory.max"
    )
    outputs = Harness().run(
        image, command=f"echo ::kaon::output limit=$({read_limit})", resources={"memory": "64m"}
    )
    assert outputs == {"limit": 64 * 1024 * 1024}


@needs_podman
def test_non_zero_exit_is_a_container_error(image: str) -> None:
    with pytest.raises(StepError) as info:
        Harness().run(image, command="echo 'model file missing' >&2; exit 4")
    assert info.value.error_type == "ContainerError"
    assert info.value.message.startswith("container exited with status 4")
    assert "model file missing" in info.value.message


@needs_podman
def test_unknown_image_is_a_container_error() -> None:
    with pytest.raises(StepError) as info:
        Harness().run("localhost/kaon-no-such-image:1", command="true", pull="never")
    assert info.value.error_type == "ContainerError"
    assert "status 125" in info.value.message


@needs_podman
def test_timeout_kills_and_removes_the_container(image: str) -> None:
    started = time.monotonic()
    with pytest.raises(StepError) as info:
        Harness(timeout_s=1.0).run(image, command="sleep 60")
    assert info.value.error_type == "Timeout"
    assert time.monotonic() - started < 30
    listed = subprocess.run(
        ["podman", "ps", "--all", "--format", "{{.Image}}"], capture_output=True, text=True
    )
    assert image not in listed.stdout


def test_argv_passes_only_kaon_variables_and_limits() -> None:
    argv = podman_argv(
        {"image": "x", "resources": {"cores": 2, "memory": "1g"}, "env": {"A": "b"}},
        {"train-set": 1},
        "kaon-abc",
    )
    assert argv[:2] == ["podman", "--runtime"]
    joined = " ".join(argv)
    assert "--cpus=2 --memory=1024m" in joined
    assert "--env=KAON_INPUT_TRAIN_SET" in joined and "--env=A=b" in joined
    assert "--network=none" in joined and "--name=kaon-abc" in joined


def test_no_config_value_becomes_a_podman_flag() -> None:
    """Each value is joined to its flag, and an image may not start with ``-``: a workflow
    cannot add ``--volume=/:/host`` or ``--privileged`` to the container it runs (which
    runs outside the step sandbox)."""
    hostile = {
        "image": "x",
        "network": "--privileged",
        "workdir": "--volume=/:/host",
        "env": {"A": "b --privileged"},
    }
    argv = podman_argv(hostile, {}, "kaon-abc")
    assert "--privileged" not in argv and "--volume=/:/host" not in argv
    assert "--network=--privileged" in argv and "--workdir=--volume=/:/host" in argv
    for image in (
        "--volume=/home:/host:ro",
        "-v",
        "a b",
        "x;rm",
        "docker-archive:/srv/kaon/artifacts/evil.tar",  # a host file, read by Podman as root
        "oci-archive:/tmp/x.tar",
        "oci:layout",
        "dir:/etc",
    ):
        problems = ContainerStepType().validate({"image": image}, HERE)
        assert [p.location.field for p in problems] == ["steps.box.config.image"], image
        assert "image reference" in problems[0].message
    with pytest.raises(StepError, match="image reference"):
        ContainerStepType().run(None, {"image": "--privileged"}, {})  # type: ignore[arg-type]
    for good in ("ghcr.io/org/img@sha256:" + "ab" * 32, "registry:5000/team/model:1.4", "x"):
        assert ContainerStepType().validate({"image": good}, HERE) == [], good


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.image"),
        ({"image": "x", "command": []}, "config.command"),
        ({"image": "x", "env": {"A": 1}}, "config.env"),
        ({"image": "x", "pull": "sometimes"}, "config.pull"),
        ({"image": "x", "resources": {"memory": "much"}}, "config.resources.memory"),
        ({"image": "x", "resources": {"cpus": 0}}, "config.resources.cpus"),
        ({"image": "x", "resources": {"cpus": 1, "cores": 1}}, "config.resources.cpus"),
        ({"image": "x", "resources": {"gpus": 1}}, "config.resources.gpus"),
        ({"image": "x", "volumes": ["/a:/b"]}, "config.volumes"),
        ({"image": "x", "env": {"A B": "c"}}, "config.env.A B"),
        ({"image": "x", "network": "ns:/proc/1/ns/net"}, "config.network"),
        ({"image": "x", "network": "container:other-team"}, "config.network"),
    ],
)
def test_config_problems_name_the_field(config: dict[str, Any], field: str) -> None:
    problems = ContainerStepType().validate(config, HERE)
    assert [p.location.field for p in problems] == [f"steps.box.{field}"]


def test_valid_config_has_no_problems() -> None:
    config = {"image": "x", "command": ["a", "b"], "env": {"A": "b"}, "resources": {"cores": 1}}
    assert ContainerStepType().validate(config, HERE) == []


def test_cpus_is_taken_for_cores_as_a_steps_own_resources_name_it() -> None:
    """The README's `resources: {cpus, memory}` was refused: `unknown resource 'cpus'`."""
    config = {"image": "x", "resources": {"cpus": 1.5, "memory": "512Mi"}}
    assert ContainerStepType().validate(config, HERE) == []
    joined = " ".join(podman_argv(config, {}, "kaon-abc"))
    assert "--cpus=1.5 --memory=512m" in joined


@needs_podman
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_a_sandboxed_executor_runs_container_steps_outside_the_sandbox(
    image: str, tmp_path: Path
) -> None:
    """Podman cannot run inside the step sandbox: container steps are routed around it, and
    may name no other program than podman."""
    from kaon.executors.base import TaskRequest
    from kaon.model.events import StepFailed, StepSucceeded
    from kaon.service.sandboxing import create_step_executor
    from kaon.service.settings import Settings

    settings = Settings.from_env(home=str(tmp_path / "home"), executor="process", workers=1)
    executor = create_step_executor(settings, sandbox_default="on")
    finals: dict[str, Any] = {}
    done = threading.Event()

    def sink(event: ExecutorEvent) -> None:
        if isinstance(event, StepSucceeded | StepFailed):
            finals[event.key[0]] = event
            if len(finals) == 2:
                done.set()

    executor.start(sink)
    try:
        for run, config in (
            ("ok", {"image": image, "command": "echo ::kaon::output answer=42"}),
            ("sh", {"image": image, "command": "true", "podman": "/bin/sh"}),
        ):
            executor.submit(
                TaskRequest((run, 1, 1), "box", "container", config, {}, {}, str(tmp_path / "a"))
            )
        assert done.wait(60), finals
    finally:
        executor.shutdown()
    assert isinstance(finals["ok"], StepSucceeded)
    assert finals["ok"].outputs["answer"].value == 42
    assert isinstance(finals["sh"], StepFailed) and finals["sh"].error.error_type == "Refused"


def test_a_sandboxed_server_runs_only_the_machines_podman(tmp_path: Path) -> None:
    """A container step runs outside the step sandbox: a program a step wrote and named
    ``podman`` (in the writable artifact store) must not be it."""
    from kaon.executors.base import TaskRequest
    from kaon.service.sandboxing import _podman_only

    planted = tmp_path / "artifacts" / "x" / "podman"
    planted.parent.mkdir(parents=True)
    planted.write_text("#!/bin/sh\nhead -c 15 /home/kaon.db\n")
    planted.chmod(0o755)

    def refusal(program: str | None) -> str | None:
        config: dict[str, Any] = (
            {"image": "x"} if program is None else {"image": "x", "podman": program}
        )
        return _podman_only(TaskRequest(("r", 1, 1), "box", "container", config, {}, {}, "a"))

    assert refusal(None) is None and refusal("podman") is None
    assert "own podman only" in (refusal(str(planted)) or "")
    assert "own podman only" in (refusal("/bin/sh") or "")
    # Not even the real podman's path: a sandboxed step could swap what a path names
    # between this check and the run (a symbolic link in the writable artifact store).
    real = shutil.which("podman")
    assert real is None or "own podman only" in (refusal(real) or "")


@needs_podman
def test_a_cancelled_container_on_the_process_executor_is_removed(
    image: str, tmp_path: Path
) -> None:
    """The process executor stops a cancelled or timed-out attempt by ending its worker, which
    never reaches the step's own clean-up: the worker starts the removal as it dies."""
    from kaon.executors import create_executor
    from kaon.executors.base import TaskRequest

    def running() -> bool:
        listed = subprocess.run(
            ["podman", "ps", "--all", "--format", "{{.Image}}"], capture_output=True, text=True
        )
        return image in listed.stdout

    executor = create_executor("process", workers=1)
    executor.start(lambda event: None)
    config = {"image": image, "command": "sleep 60"}
    key = ("c", 1, 1)
    try:
        executor.submit(TaskRequest(key, "box", "container", config, {}, {}, str(tmp_path / "a")))
        deadline = time.monotonic() + 60
        while not running():
            assert time.monotonic() < deadline, "the container never started"
            time.sleep(0.2)
        executor.cancel(key)
        deadline = time.monotonic() + 20
        while running() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not running(), "the container outlived its cancelled attempt"
    finally:
        executor.shutdown()

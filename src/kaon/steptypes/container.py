"""The ``container`` step type: run a command in a container image with Podman.

Configuration::

    {"image": "localhost/trainer:1.4",            # required
     "command": "python train.py",                # a string (run with /bin/sh -c) or an argv list
     "env": {"MODE": "fast"},                     # optional, strings to strings
     "resources": {"cores": 2, "memory": "1g"},   # optional: --cpus and --memory
     "workdir": "/app",                           # optional working directory in the container
     "network": "none",                           # optional; "none" (default) or a podman network
     "pull": "missing"}                           # optional: never | missing (default) | always

The container sees the same ``KAON_*`` variables as a ``shell`` step (``KAON_PARAMS``,
``KAON_INPUT_<NAME>``, ``KAON_RUN_ID``...) and talks back the same way: its stdout and stderr
lines become the step log, ``::kaon::metric``/``::kaon::progress``/``::kaon::output`` lines
report, and JSON written to ``$KAON_OUTPUT`` (``/kaon/output.json``, bind-mounted from the
worker) becomes outputs. Nothing else of the worker's environment or file system is passed
in, and the network is off unless ``network`` says otherwise.

The container runs as ``podman run --rm --name kaon-<id> ...`` through the shell step's
machinery, so timeouts and cancellation kill the client; the container itself is then removed
with ``podman rm -f``. A non-zero exit raises :class:`~kaon.errors.StepError` of type
``ContainerError`` with the last stderr lines (Podman's own message when the container could
not start: exit status 125).

Host-specific Podman flags come from the worker's environment: ``KAON_PODMAN_ARGS`` (global
flags, placed before ``run``: ``--runtime runc``) and ``KAON_PODMAN_RUN_ARGS`` (flags of
``run``: ``--ulimit nofile=1024:1024``), both split like a shell would.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import threading
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from kaon.errors import Location, Problem, StepError
from kaon.steptypes._observers import observers
from kaon.steptypes._protocol import (
    config_problems,
    parse_memory,
    resource_cores,
    resources_problems,
)
from kaon.steptypes.base import StepType
from kaon.steptypes.context import StepContext
from kaon.steptypes.shell import ShellStepType

OUTPUT_IN_CONTAINER = "/kaon/output.json"
PULL_POLICIES = ("never", "missing", "always")
GLOBAL_ARGS_ENV = "KAON_PODMAN_ARGS"
RUN_ARGS_ENV = "KAON_PODMAN_RUN_ARGS"
_KNOWN_KEYS = frozenset(
    {"image", "command", "env", "resources", "workdir", "network", "pull", "podman"}
)
_PASSED_VARS = (
    "KAON_RUN_ID",
    "KAON_STEP",
    "KAON_ATTEMPT",
    "KAON_WORKFLOW",
    "KAON_ITEM",
    "KAON_INDEX",
    "KAON_ITERATION",
    "KAON_PARAMS",
)
_REMOVE_TIMEOUT_S = 30.0
_RACE_S = 3.0  # after which a container still being created is removed again


def input_variable(name: str) -> str:
    """The ``KAON_INPUT_<NAME>`` variable of input ``name`` (as the shell step names it)."""
    return "KAON_INPUT_" + re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def podman_argv(config: Mapping[str, Any], inputs: Mapping[str, Any], name: str) -> list[str]:
    """The ``podman run`` command line of a step (the output mount is added by the caller)."""
    podman = str(config.get("podman") or "podman")
    argv = [podman, *shlex.split(os.environ.get(GLOBAL_ARGS_ENV, "")), "run", "--rm"]
    # Every value is joined to its flag (``--network=...``): a value can never become a flag.
    argv += [f"--name={name}", f"--network={config.get('network') or 'none'}"]
    argv += [f"--pull={config.get('pull') or 'missing'}"]
    argv += shlex.split(os.environ.get(RUN_ARGS_ENV, ""))
    resources = config.get("resources") or {}
    cores = resource_cores(resources)
    if cores:
        argv += [f"--cpus={cores}"]
    memory = parse_memory(resources.get("memory")) if "memory" in resources else None
    if memory is not None:
        argv += [f"--memory={memory}m"]
    if config.get("workdir"):
        argv += [f"--workdir={config['workdir']}"]
    for variable in (*_PASSED_VARS, *(input_variable(n) for n in inputs)):
        argv += [f"--env={variable}"]  # no value: podman copies it from its own environment
    for key, value in (config.get("env") or {}).items():
        argv += [f"--env={key}={value}"]
    argv += [f"--env=KAON_OUTPUT={OUTPUT_IN_CONTAINER}"]
    return argv


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?::[0-9]+)?|[A-Za-z0-9-]+:[0-9]+)"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+:[a-f0-9]{32,})?"
)
"""A registry image reference (``localhost/trainer:1.4``, ``ghcr.io/org/img@sha256:...``)."""
TRANSPORTS = frozenset(
    {
        "containers-storage",
        "dir",
        "docker",
        "docker-archive",
        "docker-daemon",
        "oci",
        "oci-archive",
        "ostree",
        "sif",
        "tarball",
    }
)
"""Podman's image transports: ``oci-archive:/path`` would read a file of the host (Podman
runs outside the step sandbox) and could re-tag another team's image."""


def image_problem(image: object) -> str | None:
    """Why ``image`` is not a registry image reference, or None: never a flag (a string
    starting with ``-``: ``--volume=/:/host``), never a transport reading host files
    (``docker-archive:/path``, ``oci:dir``)."""
    shown = f"{image!r:.80}"
    if not isinstance(image, str) or IMAGE_REFERENCE.fullmatch(image) is None:
        return (
            "'image' must be an image reference (registry/name:tag or name@digest, lower-case "
            f"names, not starting with '-'), got {shown}"
        )
    if image.split(":", 1)[0] in TRANSPORTS and ":" in image:
        return f"'image' must be an image reference, not a Podman transport: got {shown}"
    return None


def _command(config: Mapping[str, Any]) -> list[str]:
    command = config.get("command")
    if command is None:
        return []
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return [str(part) for part in command]


class ContainerStepType(StepType):
    """Runs a command in a container image with Podman, talking back like a shell step."""

    name: ClassVar[str] = "container"

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Check: ``image`` a string; ``command`` a string or list of strings; ``env`` strings
        to strings; ``resources``; ``pull`` one of never/missing/always."""
        location = location.with_field("config")  # problems point at config.<key>
        problems = config_problems(
            config,
            location,
            _KNOWN_KEYS,
            strings=("image", "workdir", "network", "podman"),
            mappings=("env",),
        )
        if "image" not in config:
            problems.append(Problem("'image' is required", location.with_field("image")))
        elif isinstance(config["image"], str) and (why := image_problem(config["image"])):
            problems.append(Problem(why, location.with_field("image")))
        network = config.get("network")
        if isinstance(network, str) and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", network):
            problems.append(
                Problem(
                    f"'network' must be none or a network's name, not {network!r:.60} (joining "
                    "another container's or a path's namespace is refused)",
                    location.with_field("network"),
                )
            )
        if isinstance(config.get("env"), Mapping):
            for key in config["env"]:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
                    where = location.with_field(f"env.{key}")
                    problems.append(Problem(f"env name {key!r:.60} is not a variable name", where))
        command = config.get("command")
        if command is not None and not (
            (isinstance(command, str) and command.strip())
            or (isinstance(command, list) and command and all(isinstance(c, str) for c in command))
        ):
            problems.append(
                Problem(
                    "'command' must be a string or a non-empty list of strings",
                    location.with_field("command"),
                )
            )
        env = config.get("env")
        if isinstance(env, Mapping) and not all(isinstance(v, str) for v in env.values()):
            problems.append(Problem("'env' values must be strings", location.with_field("env")))
        if config.get("pull", "missing") not in PULL_POLICIES:
            problems.append(
                Problem(
                    f"'pull' must be one of {', '.join(PULL_POLICIES)}", location.with_field("pull")
                )
            )
        return problems + resources_problems(config, location)

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Run the container; return the outputs it reported (a dict) or None.

        Raises :class:`~kaon.errors.StepError`: ``ContainerError`` on a non-zero exit,
        ``Timeout`` or ``Cancelled``.
        """
        why = image_problem(config.get("image"))
        if why is not None:  # validated at load; checked again where it matters
            raise StepError("ContainerError", why)
        name = f"kaon-{uuid.uuid4().hex[:16]}"
        argv = podman_argv(config, inputs, name)
        mount = f'--volume "$KAON_OUTPUT":{OUTPUT_IN_CONTAINER}'
        command = " ".join(
            [
                shlex.join(argv),
                mount,
                shlex.quote(str(config["image"])),
                shlex.join(_command(config)),
            ]
        )
        ctx.log(f"container: running {config['image']} as {name}")
        _started(config, name)
        try:
            return ShellStepType().run(ctx, {"command": command}, inputs)
        except StepError as exc:
            if exc.error_type != "ShellError":
                raise
            message = exc.message.replace("command", "container", 1)
            raise StepError("ContainerError", message, exc.traceback) from None
        finally:
            self._remove(config, name)

    @staticmethod
    def _remove(config: Mapping[str, Any], name: str) -> None:
        """Remove the container if it is still there (after a timeout or a cancel).

        The container stays listed as live until its removal has run: a worker ended while
        ``podman rm`` runs (a cancelled attempt's worker is ended after a short grace, and
        the removal, its child, with it) still has it removed as it dies (see
        :func:`remove_live_containers`)."""
        argv = _remove_argv(config, name)
        _remove_later(argv, first=False)  # detached: it runs even if this process is ended
        # Best effort: when podman is gone or hangs there is nothing more to do.
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=_REMOVE_TIMEOUT_S,
                check=False,
            )
        with _live_lock:
            _live.pop(name, None)
        _tell(name, None)


# The containers this process started and has not removed yet: a worker that is terminated
# (the process executor stops a timed-out or cancelled attempt by ending its worker) never
# reaches the step's ``finally``, and Podman keeps a container whose client was killed.
_live_lock = threading.Lock()
_live: dict[str, list[str]] = {}


def _remove_argv(config: Mapping[str, Any], name: str) -> list[str]:
    podman = str(config.get("podman") or "podman")
    global_args = shlex.split(os.environ.get(GLOBAL_ARGS_ENV, ""))
    return [podman, *global_args, "rm", "--force", "--ignore", "--time", "0", name]


def _started(config: Mapping[str, Any], name: str) -> None:
    argv = _remove_argv(config, name)
    with _live_lock:
        _live[name] = argv
    _tell(name, argv)


def _tell(name: str, argv: list[str] | None) -> None:
    """Tell this process's container observer (see :mod:`kaon.steptypes._observers`)."""
    observer = observers.container
    if observer is not None:
        with contextlib.suppress(OSError):
            observer(name, argv)


def live_containers() -> int:
    """How many containers this process started and has not removed yet."""
    with _live_lock:
        return len(_live)


def remove_live_containers() -> None:
    """Start the removal of every container this process started and did not remove, not
    waited for: the process calling this is about to end, and what descends from it to be
    killed (see :func:`kaon.executors._descendants.die`). Each ``podman rm`` is started in the
    background of a shell that exits at once, in a session of its own: it is nobody's
    descendant by then, and outlives the clean-up."""
    with _live_lock:
        commands = list(_live.values())
        _live.clear()
    for argv in commands:
        _remove_later(argv, first=True)


def _remove_later(argv: list[str], *, first: bool) -> None:
    """Run the removal ``argv`` detached (nobody's descendant, in a session of its own): at
    once when ``first``, and again after :data:`_RACE_S` seconds, for a container the killed
    client was still creating when the first removal looked (it would stay ``created``)."""
    command = shlex.join(argv)
    again = f"sleep {_RACE_S:g}; {command}"
    script = f"{command}; {again}" if first else again
    detached = f"({script}) </dev/null >/dev/null 2>&1 &"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["/bin/sh", "-c", detached], start_new_session=True, timeout=5)

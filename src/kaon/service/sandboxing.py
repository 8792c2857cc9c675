"""Which sandbox the steps of a server (or of ``kaon run``) get, from its settings.

``kaon server`` sandboxes its process workers by default when bubblewrap is installed
(``--sandbox auto``); ``kaon run`` does not by default (a laptop user runs their own code with
their own rights), ``--sandbox on`` turns it on. What a sandboxed step sees is described in
:mod:`kaon.executors.sandbox`: here we name the folders to hide (the Kaon home with its state
database and tokens, an SQLite database's folder, the user's home directory) and those to
give back (the pushed code bundles read-only, a local artifact store read-write, and the
folders an operator names in ``KAON_SANDBOX_READ`` / ``KAON_SANDBOX_WRITE``; a hidden folder
inside one of those stays hidden).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kaon.errors import ConfigurationError
from kaon.executors import create_executor
from kaon.executors.base import Executor, TaskRequest
from kaon.executors.routing import RoutingExecutor
from kaon.executors.sandbox import DEFAULT_PASS_ENV, SandboxSpec, bwrap_path
from kaon.service.settings import SANDBOX_MODES, Settings

PASS_ENV_VARIABLE = "KAON_SANDBOX_ENV"  # extra variables steps may see, comma-separated
READ_VARIABLE = "KAON_SANDBOX_READ"  # extra folders steps may read (data), os.pathsep-separated
WRITE_VARIABLE = "KAON_SANDBOX_WRITE"  # extra folders steps may write
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
CONTAINER_THREADS = 4  # container steps of a sandboxed server at once
log = logging.getLogger(__name__)


def step_sandbox(
    settings: Settings, *, default: str, hide_user_home: bool = True
) -> SandboxSpec | None:
    """The sandbox for ``settings``'s workers, or None when steps run unsandboxed.

    ``default`` is the mode when the settings name none; ``hide_user_home`` hides the user's
    home directory too (a server's; ``kaon run`` keeps it, where the user's project lives,
    and gives back its working folder read-only: a project under ``/tmp``, which a sandbox
    makes private, is still found).
    Raises ConfigurationError for an unknown mode, or for ``on`` with the inline executor or
    without bubblewrap.
    """
    mode = settings.sandbox or default
    if mode not in SANDBOX_MODES:
        raise ConfigurationError(
            f"--sandbox / KAON_SANDBOX: unknown sandbox mode {mode!r}; choose one of auto, on, off"
        )
    if mode == "off":
        return None
    if (settings.executor or "process") != "process":
        if mode == "on":
            raise ConfigurationError("the step sandbox needs the process executor")
        log.warning("steps run unsandboxed: the %s executor cannot sandbox", settings.executor)
        return None
    if bwrap_path() is None:
        if mode == "on":
            raise ConfigurationError("the step sandbox needs bubblewrap (bwrap); install it")
        log.warning("steps run unsandboxed: bubblewrap (bwrap) is not installed")
        return None
    return _spec(settings, hide_user_home, create=True)


def push_sandbox(settings: Settings) -> SandboxSpec | None:
    """The sandbox a server evaluates pushed files in (their top-level code runs at push):
    the step sandbox's hiding, whatever the executor (the evaluation is a child process of
    its own); None when the sandbox is off or bubblewrap is missing (``on``: an error)."""
    mode = settings.sandbox or "auto"
    if mode == "off" or mode not in SANDBOX_MODES:
        return None
    if bwrap_path() is None:
        if mode == "on":
            raise ConfigurationError("the step sandbox needs bubblewrap (bwrap); install it")
        return None
    # Computed when the services are built: it creates nothing (a folder that does not exist
    # yet is simply not bound; the registry creates the sources folder before a push).
    return _spec(settings, hide_user_home=True, create=False)


def _spec(settings: Settings, hide_user_home: bool, *, create: bool) -> SandboxSpec:
    home = Path(settings.home).absolute()
    sources = home / "sources"
    # Pushed code and a local artifact store are the server user's: folders it creates for
    # them are private (0700), so other local users read neither code nor data.
    if create:
        sources.mkdir(mode=0o700, parents=True, exist_ok=True)
    hidden = [str(home), *([str(Path.home())] if hide_user_home else [])]
    database = _sqlite_file(settings.store_url)
    hidden_files = [database + suffix for suffix in _SQLITE_SUFFIXES] if database else []
    writable = []
    artifacts = _local_folder(settings.artifacts_url)
    if artifacts:
        if create:
            Path(artifacts).mkdir(mode=0o700, parents=True, exist_ok=True)
        writable.append(artifacts)
    extra = [n.strip() for n in os.environ.get(PASS_ENV_VARIABLE, "").split(",") if n.strip()]
    project = [] if hide_user_home else [os.getcwd()]  # `kaon run`: the user's project
    return SandboxSpec(
        hidden=tuple(hidden),
        hidden_files=tuple(hidden_files),
        read_only=(str(sources), *project, *_paths(READ_VARIABLE)),
        writable=(*writable, *_paths(WRITE_VARIABLE)),
        pass_env=(*DEFAULT_PASS_ENV, *extra),
    )


def _paths(variable: str) -> list[str]:
    return [p for p in os.environ.get(variable, "").split(os.pathsep) if p.strip()]


def create_step_executor(
    settings: Settings,
    *,
    sandbox_default: str,
    hide_user_home: bool = True,
    wait_ready: bool = True,
) -> Executor:
    """The executor named by ``settings`` (workers, sandbox), not yet started.

    ``wait_ready=False`` lets a process executor's workers start while the engine plans its
    first turn (see :class:`kaon.executors.process.ProcessExecutor`).

    When sandboxed, ``container`` steps go to a few threads outside the sandbox (they start
    Podman, which cannot run inside it; their own code runs in the container), and may not
    name another program than Podman (see :func:`_podman_only`).
    Raises ConfigurationError (see :func:`step_sandbox` and
    :func:`kaon.executors.create_executor`).
    """
    options: dict[str, Any] = {"workers": settings.workers} if settings.workers else {}
    sandbox = step_sandbox(settings, default=sandbox_default, hide_user_home=hide_user_home)
    name = settings.executor or "process"
    if name == "process" or sandbox is not None:
        options["wait_ready"] = wait_ready
    if name == "ray" and settings.ray_address:
        options["address"] = settings.ray_address
    if sandbox is None:
        return create_executor(name, **options)
    sandboxed = create_executor("process", sandbox=sandbox, **options)
    containers = create_executor("inline", workers=CONTAINER_THREADS)
    return RoutingExecutor(sandboxed, {"container": containers}, guard=_podman_only)


def _podman_only(request: TaskRequest) -> str | None:
    """Refuse a container step that names its own ``podman`` program on a sandboxed server:
    the step runs outside the sandbox, and a path (even one checked now) can be swapped by
    a sandboxed step before it is run, so only the server's own ``podman`` (on its ``PATH``)
    is run there."""
    program = request.config.get("podman")
    if program is None or program == "podman":
        return None
    return (
        "a sandboxed server runs container steps with its own podman only; remove the "
        f"'podman' key (it names {program!r:.80})"
    )


def _sqlite_file(url: str) -> str | None:
    if not url.startswith("sqlite"):
        return None
    import sqlalchemy as sa  # a URL's parts as the store reads them (imported only here)

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return os.path.abspath(parsed.database)


def _local_folder(url: str) -> str | None:
    if url.startswith("file://"):
        return url[len("file://") :]
    if "://" in url or url.startswith("memory:"):
        return None
    return os.path.abspath(url)

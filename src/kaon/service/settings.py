"""Where Kaon keeps things and which backends it uses, from arguments and the environment."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kaon.errors import ConfigurationError
from kaon.model.expression_budget import ExpressionBudget
from kaon.store import default_store_url

EXECUTORS = ("process", "inline", "ray")
SANDBOX_MODES = ("auto", "on", "off")
MAX_WORKERS = 4096


@dataclass(frozen=True)
class Settings:
    """Backends and folders. Every field has an environment variable and a CLI option.

    ``home`` (``KAON_HOME``, default ``./.kaon``) holds the embedded SQLite store and the
    local artifact store unless ``db_url`` (``KAON_DB``) or ``artifact_url``
    (``KAON_ARTIFACTS``) say otherwise. ``executor`` (``KAON_EXECUTOR``) is ``process``
    (default: warm worker processes), ``inline`` (threads in the engine's process) or ``ray``
    (Ray tasks on the cluster at ``ray_address``, ``--ray-address`` / ``KAON_RAY_ADDRESS``, or
    on a local one started on demand; needs the ``ray`` extra).
    ``sandbox`` (``KAON_SANDBOX``) is ``on``, ``off`` or ``auto`` (on when bubblewrap is
    installed); empty means the command's default: ``auto`` for ``kaon server``, ``off`` for
    ``kaon run`` (see :mod:`kaon.service.sandboxing`).
    ``max_body_bytes`` (``KAON_MAX_BODY_BYTES``) bounds an API request's body (a push may
    send a little over twice as much: its file and its bundle).
    ``create_store`` is False for commands that only read: they never create a store (see
    :func:`kaon.store.open_store`).
    """

    home: Path = field(default_factory=lambda: Path(os.environ.get("KAON_HOME", ".kaon")))
    db_url: str | None = None
    artifact_url: str | None = None
    executor: str = ""
    workers: int | None = None
    ray_address: str | None = None
    sandbox: str = ""
    max_body_bytes: int = 5_000_000
    create_store: bool = True  # False for commands that only read: never create a store
    store_source: str = ""  # the option or variable that named the store, for messages

    @classmethod
    def from_env(
        cls,
        *,
        home: str | None = None,
        db_url: str | None = None,
        artifact_url: str | None = None,
        executor: str | None = None,
        workers: int | None = None,
        sandbox: str | None = None,
        create_store: bool = True,
        ray_address: str | None = None,
    ) -> Settings:
        """Settings from explicit values, falling back to the environment, then the project's
        configuration (``kaon.toml`` or ``[tool.kaon]``, and the chosen profile), then
        defaults (see :mod:`kaon.service.project`; the state folder is ``.kaon`` at the
        project's root, or in the current folder outside a project).

        Raises :class:`~kaon.errors.ConfigurationError` naming the variable (or option) whose
        value is unusable: ``KAON_WORKERS`` not an int in 1..:data:`MAX_WORKERS`,
        ``KAON_EXECUTOR`` not a known executor, an empty or NUL-carrying ``KAON_HOME``; or
        naming the project file that is unreadable or the profile that does not exist.
        """
        from kaon.service.project import resolve

        env = os.environ
        given = {"home": home, "db": db_url, "artifacts": artifact_url, "executor": executor}
        resolved = resolve({**given, "workers": workers, "sandbox": sandbox})
        # What the project file says, for settings neither an option nor a variable gave.
        from_file = {
            name: r if r.layer in ("project", "default") else replace(r, value=None)
            for name, r in resolved.items()
        }
        named_by = (
            ("--db", db_url),
            ("KAON_DB", env.get("KAON_DB")),
            ("--home", home),
            ("KAON_HOME", env.get("KAON_HOME")),
        )
        source = next((name for name, value in named_by if value), "")
        if not source and from_file["db"].value:
            source = from_file["db"].source
        elif not source and from_file["home"].layer == "project":
            source = from_file["home"].source
        chosen = _executor(executor, env.get("KAON_EXECUTOR"), from_file["executor"])
        if ray_address and chosen != "ray":  # given on the command line, it would be ignored
            raise ConfigurationError(
                f"--ray-address applies to the ray executor; this command's executor is "
                f"{chosen} (add --executor ray)"
            )
        return cls(
            home=Path(_text("home", home, "--home", "KAON_HOME") or from_file["home"].value),
            db_url=_text("db", db_url, "--db", "KAON_DB") or from_file["db"].value,
            artifact_url=_text("artifacts", artifact_url, "--artifacts", "KAON_ARTIFACTS")
            or from_file["artifacts"].value,
            executor=chosen,
            workers=_workers(workers, env.get("KAON_WORKERS"), from_file["workers"]),
            ray_address=_text("Ray address", ray_address, "--ray-address", "KAON_RAY_ADDRESS"),
            sandbox=_sandbox(sandbox, env.get("KAON_SANDBOX"), from_file["sandbox"]),
            max_body_bytes=_bytes(env.get("KAON_MAX_BODY_BYTES"), 5_000_000),
            create_store=create_store,
            store_source=source,
        )

    @property
    def store_url(self) -> str:
        """The state store URL in force."""
        return self.db_url or default_store_url(self.home)

    @property
    def artifacts_url(self) -> str:
        """The artifact store URL in force."""
        return self.artifact_url or str((self.home / "artifacts").absolute())


def expression_budget(env: Mapping[str, str] | None = None) -> ExpressionBudget:
    """The cost budget of every expression, from ``KAON_EXPRESSION_TIME_MS`` (estimated
    milliseconds, default 100) and ``KAON_EXPRESSION_MAX_BYTES`` (largest value an expression
    may build, default 16 MiB).

    Raises :class:`ConfigurationError` naming the variable when a value is not a positive
    number.
    """
    env = os.environ if env is None else env
    default = ExpressionBudget()
    time_ms = _positive(env, "KAON_EXPRESSION_TIME_MS", default.time_ms)
    max_bytes = _positive(env, "KAON_EXPRESSION_MAX_BYTES", default.max_bytes)
    return ExpressionBudget(time_ms=time_ms, max_bytes=int(max_bytes))


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 1e15:
        raise ConfigurationError(f"{name}={text!r:.40}: expected a positive number")
    return value


def _text(what: str, given: str | None, option: str, variable: str) -> str | None:
    """An option's value, else its variable's; refused when it cannot name anything."""
    value, source = (given, option) if given else (os.environ.get(variable), variable)
    if not value:
        return None
    if "\0" in value:
        raise ConfigurationError(f"{source}: the {what} setting contains a NUL character")
    return value


def _executor(given: str | None, env_value: str | None, from_file: Any = None) -> str:
    value, source = (given, "--executor") if given else (env_value, "KAON_EXECUTOR")
    if not value and from_file is not None and from_file.value:
        value, source = from_file.value, from_file.source
    if not value:
        return "process"
    if value not in EXECUTORS:
        raise ConfigurationError(
            f"{source}: unknown executor {value!r}; choose one of {', '.join(EXECUTORS)}"
        )
    return value


def _workers(given: int | None, env_value: str | None, from_file: Any = None) -> int | None:
    """The number of workers, from the option, ``KAON_WORKERS`` or the project file (whose
    value the file's reader checked to be an int); an unusable one is named by its source."""
    if given is not None:
        number, source = given, "--workers"
    elif env_value is not None and env_value.strip():
        source = "KAON_WORKERS"
        try:
            number = int(env_value.strip())
        except ValueError:
            raise ConfigurationError(
                f"KAON_WORKERS must be a whole number of workers, got {env_value!r}"
            ) from None
    elif from_file is not None and from_file.value is not None:
        number, source = int(from_file.value), f"{from_file.source}: workers"
    else:
        return None
    if not 1 <= number <= MAX_WORKERS:
        raise ConfigurationError(f"{source} must be between 1 and {MAX_WORKERS}, got {number}")
    return number


def _sandbox(given: str | None, env_value: str | None, from_file: Any = None) -> str:
    """The sandbox mode (``auto``, ``on``, ``off``; "" for the command's default), from the
    option, ``KAON_SANDBOX`` or the project file; an unknown one is named by its source."""
    if given:
        value, source = given, "--sandbox"
    elif env_value:
        value, source = env_value, "KAON_SANDBOX"
    elif from_file is not None and from_file.value:
        value, source = str(from_file.value), from_file.source
    else:
        return ""
    mode = value.strip().lower()
    if mode not in SANDBOX_MODES:
        raise ConfigurationError(
            f"{source}: unknown sandbox mode {value!r:.40}; "
            f"choose one of {', '.join(SANDBOX_MODES)}"
        )
    return mode


def _bytes(env_value: str | None, default: int) -> int:
    """``KAON_MAX_BODY_BYTES``: a whole number of bytes, at least 1 KiB."""
    if env_value is None or not env_value.strip():
        return default
    try:
        number = int(env_value.strip())
    except ValueError:
        raise ConfigurationError(
            f"KAON_MAX_BODY_BYTES must be a whole number of bytes, got {env_value!r:.40}"
        ) from None
    if not 1024 <= number <= 2**40:
        raise ConfigurationError(f"KAON_MAX_BODY_BYTES must be at least 1024, got {number}")
    return number

"""Project configuration: ``kaon.toml`` or ``[tool.kaon]`` in ``pyproject.toml``, and profiles.

The project is found as git finds a repository: from the current folder up to the root, the
first folder holding a ``kaon.toml`` (or a ``pyproject.toml`` with a ``[tool.kaon]`` table) is
the project's root. Its state folder (``.kaon``) lives there, whatever subfolder a command runs
from. A file holds top-level settings and named profiles::

    # kaon.toml (in pyproject.toml the same keys go under [tool.kaon])
    executor = "process"

    [profiles.prod]
    db = "postgresql+psycopg://kaon@db/kaon"
    artifacts = "s3://ml-artifacts/kaon"
    url = "https://kaon.example.com"
    token_env = "KAON_PROD_TOKEN"

A profile is chosen with ``kaon --profile NAME`` or ``KAON_PROFILE``. Each setting is taken,
in this order, from the command's option, its environment variable, the chosen profile, the
file's top level, and the default; :func:`resolve` says which one gave it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaon.errors import ConfigurationError

PROFILE_VARIABLE = "KAON_PROFILE"
FILE_NAME = "kaon.toml"
STATE_FOLDER = ".kaon"

# setting -> (CLI option, environment variable, what it is)
SETTINGS: dict[str, tuple[str, str, str]] = {
    "home": ("--home", "KAON_HOME", "state folder (SQLite store and local artifacts)"),
    "db": ("--db", "KAON_DB", "state store URL"),
    "artifacts": ("--artifacts", "KAON_ARTIFACTS", "artifact store URL"),
    "executor": ("--executor", "KAON_EXECUTOR", "where steps run: process or inline"),
    "workers": ("--workers", "KAON_WORKERS", "worker processes or threads"),
    "sandbox": ("--sandbox", "KAON_SANDBOX", "bubblewrap sandbox for steps: auto, on, off"),
    "url": ("--url", "KAON_URL", "a Kaon server to work against"),
    "token": ("", "KAON_TOKEN", "the API token sent to the server"),
}
# keys a file may hold besides the settings: the name of a variable holding the token
EXTRA_KEYS = frozenset({"token_env"})

# The profile chosen by `kaon --profile` for this command (None: KAON_PROFILE, if set).
_chosen_profile: list[str | None] = [None]


def choose_profile(name: str | None) -> None:
    """Use profile ``name`` for this process's commands (``kaon --profile NAME``)."""
    _chosen_profile[0] = name


def active_profile() -> tuple[str | None, str]:
    """The profile in force and what chose it (``--profile``, ``KAON_PROFILE`` or "")."""
    if _chosen_profile[0]:
        return _chosen_profile[0], "--profile"
    from_env = os.environ.get(PROFILE_VARIABLE)
    return (from_env, PROFILE_VARIABLE) if from_env else (None, "")


@dataclass(frozen=True)
class Project:
    """A project's configuration file, read."""

    root: Path  # the folder holding the file: the project's root
    file: Path  # kaon.toml or pyproject.toml
    settings: Mapping[str, Any] = field(default_factory=dict)  # the top-level keys
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The file's name as sources are shown: ``kaon.toml`` or ``pyproject.toml [tool.kaon]``."""
        return str(self.file) + (" [tool.kaon]" if self.file.name == "pyproject.toml" else "")


def find_project(start: Path | None = None) -> Project | None:
    """The project around ``start`` (default: the current folder), or None.

    Raises :class:`ConfigurationError` naming the file when it is not valid TOML or holds
    an unknown key or a value of the wrong kind.
    """
    folder = (start or Path.cwd()).absolute()
    for candidate in (folder, *folder.parents):
        own = candidate / FILE_NAME
        if own.is_file():
            return _read(candidate, own, lambda document: document)
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            found = _read(candidate, pyproject, lambda d: d.get("tool", {}).get("kaon"))
            if found is not None:
                return found
    return None


def _read(root: Path, file: Path, table_of: Any) -> Project | None:
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{file}: cannot read the project configuration: {exc}") from None
    table = table_of(document)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigurationError(f"{file}: the Kaon configuration must be a table")
    profiles = table.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise ConfigurationError(f"{file}: profiles must be tables ([profiles.NAME])")
    settings = {k: v for k, v in table.items() if k != "profiles"}
    _check_keys(file, "", settings)
    for name, values in profiles.items():
        _check_keys(file, f"[profiles.{name}] ", values)
    return Project(root=root, file=file, settings=settings, profiles=profiles)


def _check_keys(file: Path, where: str, values: Mapping[str, Any]) -> None:
    known = set(SETTINGS) | EXTRA_KEYS
    for key, value in values.items():
        if key not in known:
            raise ConfigurationError(
                f"{file}: {where}unknown key {key!r}; known: {', '.join(sorted(known))}"
            )
        expected, kind = (int, "an int") if key == "workers" else (str, "a str")
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ConfigurationError(f"{file}: {where}{key} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class Resolved:
    """One effective setting and where it came from (an option, a variable, a file, default)."""

    name: str
    value: Any
    source: str
    layer: str = "default"  # "option", "environment", "project" (a file or profile), "default"


def resolve(
    given: Mapping[str, Any] | None = None, *, start: Path | None = None
) -> dict[str, Resolved]:
    """Every setting of :data:`SETTINGS` with its value and source.

    ``given`` holds the command's options (None: not given). Raises
    :class:`ConfigurationError` for an unknown profile or an unreadable file.
    """
    given = given or {}
    project, layers = _layers(start)
    result: dict[str, Resolved] = {}
    for name, (option, variable, _what) in SETTINGS.items():
        result[name] = _one(name, option, variable, given.get(name), layers, project)
    return result


def _layers(start: Path | None) -> tuple[Project | None, list[tuple[str, Mapping[str, Any]]]]:
    """The project found from ``start`` and its layers of settings: the active profile's
    (if any), then the project's own."""
    project = find_project(start)
    profile, chosen_by = active_profile()
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if profile is not None:
        if project is None or profile not in project.profiles:
            where = project.label if project else "no kaon.toml or [tool.kaon] found"
            raise ConfigurationError(f"{chosen_by}: unknown profile {profile!r} ({where})")
        layers.append((f"{project.label} [profiles.{profile}]", project.profiles[profile]))
    if project is not None:
        layers.append((project.label, project.settings))
    return project, layers


def project_url(start: Path | None = None) -> str | None:
    """The server URL the project's configuration names (its active profile's, else its
    own), whatever an option or ``KAON_URL`` says: the server its token is for."""
    _project, layers = _layers(start)
    for _label, values in layers:
        if values.get("url") not in (None, ""):
            return str(values["url"])
    return None


def _one(
    name: str,
    option: str,
    variable: str,
    given: Any,
    layers: list[tuple[str, Mapping[str, Any]]],
    project: Project | None,
) -> Resolved:
    if given not in (None, ""):
        return Resolved(name, given, option, "option")
    if os.environ.get(variable):
        return Resolved(name, os.environ[variable], variable, "environment")
    for label, values in layers:
        if name == "token" and values.get("token_env"):
            token_variable = values["token_env"]
            token = os.environ.get(token_variable) or None
            return Resolved(name, token, f"{label} token_env={token_variable}", "project")
        if values.get(name) not in (None, ""):
            value = values[name]
            if name == "home" and project is not None:
                value = str(project.root / value)  # relative to the project's root
            return Resolved(name, value, label, "project")
    if name == "home":
        if project is not None:
            root = str(project.root / STATE_FOLDER)
            return Resolved(name, root, f"default (the root of {project.label})", "project")
        return Resolved(name, STATE_FOLDER, "default (the current folder)")
    return Resolved(name, None, "default")

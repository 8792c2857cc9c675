"""Executors: where step attempts run (``inline`` threads, ``process`` workers, ``ray``
tasks, plugins).

Look one up by name with :func:`create_executor`. Built-in executors are listed explicitly and
imported only when first used; third parties add executors through the ``kaon.executors``
entry point group (``ray = "kaon_ray.executor:RayExecutor"``). Importing this package is cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kaon.errors import ConfigurationError

if TYPE_CHECKING:
    from kaon.executors.base import Executor

__all__ = ["BUILTIN_EXECUTORS", "DEFAULT_EXECUTOR", "create_executor", "executor_names"]

ENTRY_POINT_GROUP = "kaon.executors"
DEFAULT_EXECUTOR = "process"

BUILTIN_EXECUTORS: Mapping[str, str] = {
    "inline": "kaon.executors.inline:InlineExecutor",
    "process": "kaon.executors.process:ProcessExecutor",
    "ray": "kaon.executors.ray_executor:RayExecutor",  # needs the `ray` extra
}


def entry_points(group: str) -> Any:
    """The installed entry points of ``group`` (``importlib.metadata`` is slow to import: it
    is imported when plugins are first looked up)."""
    from importlib import metadata

    return metadata.entry_points(group=group)


def _plugin_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def executor_names() -> list[str]:
    """Every known executor name: built-ins, then entry-point plugins, each sorted."""
    plugins = sorted(n for n in _plugin_targets() if n not in BUILTIN_EXECUTORS)
    return sorted(BUILTIN_EXECUTORS) + plugins


def create_executor(name: str, **options: Any) -> Executor:
    """A new, not yet started executor ``name`` built with ``options`` (``workers=4``, ...).

    Raises :class:`~kaon.errors.ConfigurationError` when the name is unknown (listing the known
    ones), its class cannot be imported, or it rejects the options.
    """
    from kaon.executors.base import Executor

    target = BUILTIN_EXECUTORS.get(name) or _plugin_targets().get(name)
    if target is None:
        known = ", ".join(executor_names())
        raise ConfigurationError(f"unknown executor {name!r}; known executors: {known}")
    module_name, _, attr = target.partition(":")
    try:
        cls: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            cls = getattr(cls, part)
    except ModuleNotFoundError as exc:
        if name == "ray" and exc.name is not None and exc.name.split(".")[0] == "ray":
            raise ConfigurationError("the ray executor needs Ray: pip install 'kaon[ray]'") from exc
        raise ConfigurationError(
            f"executor {name!r} cannot be loaded from {target!r}: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(
            f"executor {name!r} cannot be loaded from {target!r}: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        executor = cls(**options)
    except TypeError as exc:
        raise ConfigurationError(
            f"executor {name!r} rejects its options {options!r}: {exc}"
        ) from exc
    if not isinstance(executor, Executor):
        raise ConfigurationError(f"executor {name!r} ({target}) is not a kaon Executor")
    return executor

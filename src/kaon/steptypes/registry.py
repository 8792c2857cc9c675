"""The step type registry: names to :class:`~kaon.steptypes.base.StepType` instances.

Built-in step types are listed explicitly as ``name -> "module:Class"`` and imported only when
first used. Third parties add step types through the ``kaon.step_types`` entry point group
(``myplugin = "my_package.steps:MyStepType"``); an entry point may name a class or an instance.
A built-in name always wins over an entry point of the same name.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kaon.errors import DefinitionError, Location, Problem

if TYPE_CHECKING:
    from kaon.steptypes.base import StepType

ENTRY_POINT_GROUP = "kaon.step_types"

BUILTIN_STEP_TYPES: Mapping[str, str] = {
    "python": "kaon.steptypes.python:PythonStepType",
    "shell": "kaon.steptypes.shell:ShellStepType",
    "sql": "kaon.steptypes.sql:SqlStepType",
    "r": "kaon.steptypes.rscript:RStepType",
    "notebook": "kaon.steptypes.notebook:NotebookStepType",
    "spark": "kaon.steptypes.spark:SparkStepType",
    "container": "kaon.steptypes.container:ContainerStepType",
}

_lock = threading.Lock()
_instances: dict[str, StepType] = {}
_plugins: dict[str, str] | None = None


def _plugin_targets() -> dict[str, str]:
    """``name -> "module:attr"`` for every step type entry point (read once per process)."""
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points  # 10 ms to import: only when asked

        _plugins = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _plugins


def step_type_names() -> list[str]:
    """Every known step type name, built-ins first, then plugins, each group sorted."""
    plugins = sorted(n for n in _plugin_targets() if n not in BUILTIN_STEP_TYPES)
    return sorted(BUILTIN_STEP_TYPES) + plugins


def _load(name: str, target: str) -> StepType:
    from kaon.steptypes.base import StepType

    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise DefinitionError(
            f"step type {name!r} cannot be loaded from {target!r}: {type(exc).__name__}: {exc}"
        ) from exc
    instance = obj() if isinstance(obj, type) else obj
    if not isinstance(instance, StepType):
        raise DefinitionError(f"step type {name!r} ({target}) is not a kaon StepType")
    return instance


def get_step_type(name: str) -> StepType:
    """The step type registered as ``name`` (one instance per process).

    Raises :class:`~kaon.errors.DefinitionError` listing the known names when ``name`` is
    unknown, or naming the target when it cannot be imported.
    """
    instance = _instances.get(name)
    if instance is not None:
        return instance
    target = BUILTIN_STEP_TYPES.get(name) or _plugin_targets().get(name)
    if target is None:
        known = ", ".join(step_type_names())
        raise DefinitionError(f"unknown step type {name!r}; known step types: {known}")
    with _lock:
        instance = _instances.get(name)
        if instance is None:
            instance = _load(name, target)
            _instances[name] = instance
    return instance


def check_step_type(step_type: str, config: Mapping[str, Any], location: Location) -> list[Problem]:
    """Every problem with a task's step type and its ``config``.

    An unknown or unloadable step type is one problem located at ``location`` plus ``type``;
    otherwise the step type's own :meth:`~kaon.steptypes.base.StepType.validate` decides.
    Never raises for a bad definition.
    """
    try:
        instance = get_step_type(step_type)
    except DefinitionError as exc:
        field_location = location.with_field("type")
        return [Problem(p.message, field_location) for p in exc.problems]
    from kaon.steptypes.requirements import is_installed, missing_message

    problems = instance.validate(config, location)
    for requirement in instance.requirements(config):
        if not is_installed(requirement.module):
            message = missing_message(f"a {step_type} step", requirement)
            problems.append(Problem(message, location.with_field("type")))
    return problems

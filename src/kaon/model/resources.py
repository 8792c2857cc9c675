"""What a step asks of the machine that runs it: ``resources: {cpus, memory, gpus, custom}``.

The same mapping is accepted from Python (``@kaon.step(resources={"cpus": 2, "memory": "4Gi"})``)
and YAML (``resources: {cpus: 2, memory: 4Gi}``). ``cpus`` and ``gpus`` are positive numbers
(fractions allowed, as in Ray); ``memory`` is bytes, as a whole number or a text with a unit
(``512Mi``, ``4Gi``, ``2G``, ``1.5GB``); ``custom`` maps a resource name to a positive amount
(``{"tpu": 1}``). Every problem is reported with its location and field.

Executors read the normalized form :meth:`ResourceSpec.as_request`: the ``process`` executor
admits attempts by CPUs and memory on its host; the ``ray`` executor maps them to Ray's
``num_cpus``, ``memory``, ``num_gpus`` and ``resources``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kaon.errors import DefinitionError, Location, Problem

KNOWN_KEYS = ("cpus", "memory", "gpus", "custom")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A step's resource request; None means "not asked for"."""

    cpus: float | None = None
    memory: int | None = None  # bytes
    gpus: float | None = None
    custom: Mapping[str, float] = field(default_factory=dict)

    def as_request(self) -> dict[str, Any]:
        """The fields that are set, as plain data (what a task request carries)."""
        data: dict[str, Any] = {}
        if self.cpus is not None:
            data["cpus"] = self.cpus
        if self.memory is not None:
            data["memory"] = self.memory
        if self.gpus is not None:
            data["gpus"] = self.gpus
        if self.custom:
            data["custom"] = dict(self.custom)
        return data


def _amount(value: Any, where: Location, problems: list[Problem], *, zero: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(Problem(f"must be a number, got {value!r}", where))
        return None
    if value < 0 or (value == 0 and not zero):
        bound = "at least 0" if zero else "greater than 0"
        problems.append(Problem(f"must be {bound}, got {value!r}", where))
        return None
    return float(value)


def parse_memory(value: Any, where: Location, problems: list[Problem]) -> int | None:
    """Bytes from a whole number or a text with a unit (``512Mi``, ``2G``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            problems.append(Problem(f"must be greater than 0 bytes, got {value}", where))
            return None
        return value
    if isinstance(value, str):
        match = _MEMORY.fullmatch(value)
        unit = match.group(2).lower() if match else ""
        if match and unit in _UNITS:
            amount = int(float(match.group(1)) * _UNITS[unit])
            if amount > 0:
                return amount
    problems.append(
        Problem(f"must be bytes, as a number or like '512Mi', '4Gi', '2G'; got {value!r}", where)
    )
    return None


def parse_resources(value: Any, location: Location) -> ResourceSpec | None:
    """A :class:`ResourceSpec` from a step's ``resources`` option (None stays None).

    Raises :class:`~kaon.errors.DefinitionError` with every problem found, each located at
    ``resources.<field>``.
    """
    if value is None or isinstance(value, ResourceSpec):
        return value
    problems: list[Problem] = []
    if not isinstance(value, Mapping):
        raise DefinitionError(
            Problem(f"resources must be a mapping of {', '.join(KNOWN_KEYS)}", location)
        )
    for key in value:
        if key not in KNOWN_KEYS:
            problems.append(
                Problem(
                    f"unknown resource {key!r}; expected {', '.join(KNOWN_KEYS)} "
                    "(put other names under 'custom')",
                    location.with_field(f"resources.{key}"),
                )
            )
    at = location.with_field
    spec = ResourceSpec(
        cpus=None
        if value.get("cpus") is None
        else _amount(value["cpus"], at("resources.cpus"), problems, zero=False),
        memory=None
        if value.get("memory") is None
        else parse_memory(value["memory"], at("resources.memory"), problems),
        gpus=None
        if value.get("gpus") is None
        else _amount(value["gpus"], at("resources.gpus"), problems, zero=True),
        custom=_custom(value.get("custom"), location, problems),
    )
    if problems:
        raise DefinitionError(problems)
    return spec


def _custom(value: Any, location: Location, problems: list[Problem]) -> dict[str, float]:
    if value is None:
        return {}
    where = location.with_field("resources.custom")
    if not isinstance(value, Mapping):
        problems.append(Problem("must be a mapping of resource name to amount", where))
        return {}
    custom: dict[str, float] = {}
    for name, amount in value.items():
        field_at = location.with_field(f"resources.custom.{name}")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(Problem(f"{name!r} is not a valid resource name", field_at))
            continue
        parsed = _amount(amount, field_at, problems, zero=False)
        if parsed is not None:
            custom[name] = parsed
    return custom


def resources_from_dict(data: Mapping[str, Any] | None) -> ResourceSpec | None:
    """The inverse of :meth:`ResourceSpec.as_request` (stored specs); None for None."""
    if data is None:
        return None
    memory = data.get("memory")
    return ResourceSpec(
        cpus=None if data.get("cpus") is None else float(data["cpus"]),
        memory=None if memory is None else int(memory),
        gpus=None if data.get("gpus") is None else float(data["gpus"]),
        custom={str(k): float(v) for k, v in dict(data.get("custom") or {}).items()},
    )

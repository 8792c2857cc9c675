"""Pieces both front ends share: CEL literals, enum and retry parsing, parameter type inference.

Keeping them in one place is what makes a Python and a YAML definition of the same pipeline
produce identical specs.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from kaon.dsl.durations import parse_duration
from kaon.errors import DefinitionError, Location, Problem
from kaon.model.specs import Backoff, ParamType, RetrySpec, TaskSpec, WorkflowSpec
from kaon.steptypes.codeload import display_module_name

E = TypeVar("E", bound=StrEnum)

MAX_FILE_BYTES = 1_000_000  # the largest workflow file read, checked while reading

_ATOMIC = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:\d+|\"(?:[^\"\\]|\\.)*\")\])*", re.ASCII)


def is_atomic(source: str) -> bool:
    """True when a CEL source is a plain path (``steps.a.b``, ``item[0]``) needing no parens."""
    return _ATOMIC.fullmatch(source) is not None


def wrap(source: str) -> str:
    """``source`` in parentheses unless it is a plain path."""
    return source if is_atomic(source) else f"({source})"


def is_json_value(value: Any) -> bool:
    """True when ``value`` is plain JSON (None, bool, int, finite float, str, list, dict)."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(is_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v) for k, v in value.items())
    return False


def plain_json(value: Any) -> Any:
    """Return a copy of a JSON value with tuples turned into lists."""
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    return value


def cel_literal(value: Any) -> str:
    """Render a JSON value as a CEL literal (``"a"``, ``3``, ``[1, true]``, ``{"k": null}``).

    Raises :class:`DefinitionError` for anything that is not JSON.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DefinitionError(f"{value!r} cannot be written in an expression")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cel_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{cel_literal(str(k))}: {cel_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise DefinitionError(f"a {type(value).__name__} cannot be written in an expression")


def parse_enum(enum: type[E], value: Any, location: Location) -> E:
    """Return the member of ``enum`` named by ``value``; DefinitionError names the choices."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise DefinitionError(Problem(f"{value!r} is not one of: {choices}", location)) from None


def error_type_name(entry: Any, location: Location) -> str:
    """Name an exception type for ``retry_on``: a class or its (qualified) name. A name is
    kept as given: validation checks it (:mod:`kaon.model.error_names`)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, type) and issubclass(entry, BaseException):
        if entry.__module__ == "builtins":
            return entry.__qualname__
        return f"{display_module_name(entry.__module__)}.{entry.__qualname__}"
    raise DefinitionError(
        Problem(f"retry_on entries must be exception classes or names, got {entry!r}", location)
    )


def build_retry(
    *,
    max_attempts: Any = 1,
    backoff: Any = "fixed",
    delay: Any = 0,
    max_delay: Any = 300,
    retry_on: Iterable[Any] = (),
    platform_attempts: Any = 3,
    location: Location = Location(),
) -> RetrySpec:
    """Build a :class:`RetrySpec` from user-facing values; DefinitionError lists every problem."""
    problems: list[Problem] = []
    # platform_attempts may be 0: an attempt the platform lost is then not run again.
    for name, count, least in (
        ("max_attempts", max_attempts, 1),
        ("platform_attempts", platform_attempts, 0),
    ):
        if isinstance(count, bool) or not isinstance(count, int) or count < least:
            problems.append(
                Problem(f"must be an integer >= {least}, got {count!r}", location.with_field(name))
            )
    values: dict[str, Any] = {}
    for name, raw in (("delay", delay), ("max_delay", max_delay)):
        try:
            values[name] = parse_duration(raw, location.with_field(name))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    try:
        values["backoff"] = parse_enum(Backoff, backoff, location.with_field("backoff"))
    except DefinitionError as exc:
        problems.extend(exc.problems)
    names: list[str] = []
    for entry in retry_on:
        try:
            names.append(error_type_name(entry, location.with_field("retry_on")))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    return RetrySpec(
        max_attempts=max_attempts,
        backoff=values["backoff"],
        delay_s=values["delay"],
        max_delay_s=values["max_delay"],
        retry_on=tuple(names),
        platform_attempts=platform_attempts,
    )


def infer_param_type(default: Any) -> ParamType:
    """The parameter type a default value implies (``5`` -> int); ``any`` when unclear."""
    if isinstance(default, bool):
        return ParamType.BOOL
    if isinstance(default, int):
        return ParamType.INT
    if isinstance(default, float):
        return ParamType.FLOAT
    if isinstance(default, str):
        return ParamType.STR
    if isinstance(default, list | tuple):
        return ParamType.LIST
    if isinstance(default, dict):
        return ParamType.DICT
    return ParamType.ANY


def choices_type(choices: Sequence[Any]) -> ParamType:
    """The parameter type a list of choices implies: the type they share (ints and floats
    together: float), else ``any``."""
    kinds = {infer_param_type(c) for c in choices}
    if kinds == {ParamType.INT, ParamType.FLOAT}:
        return ParamType.FLOAT
    return kinds.pop() if len(kinds) == 1 else ParamType.ANY


def is_identifier(name: str) -> bool:
    """True when ``name`` can be used bare in a CEL path (``steps.<name>``)."""
    return name.isidentifier() and name.isascii()


def absolute_file(config: dict[str, Any], folder: str) -> dict[str, Any]:
    """A task config whose relative ``file`` (a SQL file, a notebook, an R script) is made
    absolute against the definition's folder, so steps find it wherever they run. A name
    no file can have (a NUL byte) is left as it is, for the step type's check to name."""
    file = config.get("file")
    if isinstance(file, str) and file and "\x00" not in file and not os.path.isabs(file):
        config["file"] = os.path.realpath(os.path.join(folder, file))
    return config


def sibling_module_file(config: dict[str, Any], folder: str) -> dict[str, Any]:
    """A python step's config whose ``function: MODULE:QUALNAME`` names a module file beside
    the definition (``helper:compute`` with ``helper.py`` in ``folder``) as that file
    (``file`` + ``function: QUALNAME``): the module is then code of the workflow's version,
    loaded in its own namespace and pushed with it, found wherever ``kaon run`` was started,
    as Python's ``import helper`` beside a workflow file is. Any other config is kept."""
    function = config.get("function")
    if "file" in config or not isinstance(function, str):
        return config
    module, sep, qualname = function.partition(":")
    if not sep or not qualname or not module.isidentifier():
        return config
    path = os.path.join(folder, module + ".py")
    if os.path.isfile(path):
        config = {**config, "file": os.path.realpath(path), "function": qualname}
    return config


def shell_folder(config: dict[str, Any], folder: str) -> dict[str, Any]:
    """A shell step's config with ``base_dir``, the folder of the file defining it: the
    command runs there (:mod:`kaon.steptypes.shell`), so a script beside the workflow is
    found wherever ``kaon run`` was started, and on a server in the pushed bundle. A config
    that sets ``base_dir`` itself keeps it."""
    if "base_dir" not in config:
        config["base_dir"] = os.path.realpath(folder)
    return config


def database_folder(config: dict[str, Any], folder: str) -> dict[str, Any]:
    """A SQL step's config with ``base_dir``, the folder of the file defining it, when its
    ``url`` names a file database (DuckDB, SQLite): a relative path there is a file beside
    the workflow, as a relative ``file`` is (:mod:`kaon.steptypes.sql` resolves it at run
    time, after expanding ``${NAME}``), not one in the folder ``kaon run`` started from. A
    config that sets ``base_dir`` itself keeps it."""
    url = config.get("url")
    if isinstance(url, str) and url.startswith(("duckdb", "sqlite")):
        config.setdefault("base_dir", os.path.realpath(folder))
    return config


def step_type_problems(spec: WorkflowSpec) -> list[Problem]:
    """What a step type checks over a whole step rather than its ``config``: a SQL step's
    query reading a ``$name`` that no ``params`` entry and no input gives. The SQL step type
    is imported only for a workflow that has SQL steps (start-up)."""
    if not any(isinstance(s, TaskSpec) and s.step_type == "sql" for _p, s in spec.graph.walk()):
        return []
    from kaon.steptypes.sql import unbound_parameter_problems

    return unbound_parameter_problems(spec)

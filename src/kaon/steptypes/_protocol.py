"""Plumbing shared by the step types that run another tool (SQL, notebook, Spark, R, container).

* :func:`resolve_file` -- a ``file`` config entry, relative to the definition file's folder;
* :class:`Secrets` -- ``${ENV_NAME}`` expansion at run time, and redaction of what was expanded;
* :func:`config_problems` -- the small, repeated shape checks of a step type's config;
* :func:`parse_memory` -- ``"512m"``/``"2g"``/``1024`` (MiB) to a number of MiB.

The line protocol itself (``::kaon::metric``, ``::kaon::output``, ``$KAON_OUTPUT``) lives in
:mod:`kaon.steptypes.shell`; the R and container steps run their tool through it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kaon.errors import Location, Problem, StepError
from kaon.steptypes._values import json_default
from kaon.steptypes.context import StepContext

REDACTED = "***"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?\s*", re.IGNORECASE)
_MEMORY_FACTORS = {"k": 1 / 1024, "": 1.0, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024.0}


def resolve_file(
    config: Mapping[str, Any], key: str = "file", location: Location | None = None
) -> str:
    """The absolute path of ``config[key]``.

    A relative path resolves against ``config["base_dir"]`` (the YAML loader's folder of the
    definition file), else the folder of ``location.file`` (at validation time), else the
    current directory.
    """
    path = os.path.expanduser(str(config[key]))
    if os.path.isabs(path):
        return os.path.normpath(path)
    base = config.get("base_dir")
    if not base and location is not None and location.file and os.path.isfile(location.file):
        base = os.path.dirname(os.path.abspath(location.file))
    return os.path.normpath(os.path.join(str(base or os.getcwd()), path))


def env_references(text: str) -> list[str]:
    """The ``NAME`` of every ``${NAME}`` in ``text``, in order."""
    return _ENV_REF.findall(text)


class Secrets:
    """Expands ``${NAME}`` from an environment and remembers the values to hide them again.

    Every expanded value (of 3 characters or more: shorter ones would mangle ordinary text)
    is replaced by ``***`` in whatever :meth:`redact` is given.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._values: set[str] = set()

    def expand(self, text: str) -> str:
        """``text`` with each ``${NAME}`` replaced by its value.

        Raises ``KeyError`` naming the first variable that is not set.
        """

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self._env:
                raise KeyError(name)
            value = self._env[name]
            if len(value) >= 3:
                self._values.add(value)
            return value

        return _ENV_REF.sub(substitute, text)

    def hide(self, *values: str | None) -> None:
        """Also redact ``values`` (a password parsed out of a URL, say)."""
        self._values.update(v for v in values if v and len(v) >= 3)

    def redact(self, text: str) -> str:
        """``text`` with every remembered secret replaced by ``***`` (longest first)."""
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


def template_message(text: str, hint: str = "", name: str | None = None) -> str:
    """Why a ``${{ ... }}`` in ``text`` (a step's config, a file it names) is a problem, and
    what to write instead: config is constant, only ``inputs`` are templates. ``hint`` says
    how the step reads an input, a format string of ``name`` (the entry's key, else the
    template's last name): ``" and bind it in the query as ${name}"``."""
    found = _TEMPLATE.search(text)
    expression = found.group(1).strip() if found else "params.k"
    if name is None or not name.isidentifier():
        names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression)
        name = names[-1] if names else "k"
    return (
        "a step's config is not a template: ${{ ... }} in it is not substituted (it would run "
        f'as that very text); pass the value as an input (inputs: {{{name}: "${{{{ '
        f'{expression} }}}}"}}){hint.format(name=name)}'
    )


def template_problems(
    config: Mapping[str, Any], location: Location, hint: str = ""
) -> list[Problem]:
    """A problem at each string of ``config`` (nested ones too) holding ``${{``."""
    problems: list[Problem] = []

    def visit(value: Any, field: str, name: str | None) -> None:
        if isinstance(value, str):
            if "${{" in value:
                message = template_message(value, hint, name)
                problems.append(Problem(message, location.with_field(field)))
        elif isinstance(value, Mapping):  # an entry's key names it (params: {v: ...})
            for key, item in value.items():
                visit(item, f"{field}.{key}", str(key))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                visit(item, f"{field}[{index}]", None)

    for key, value in config.items():
        visit(value, str(key), None)
    return problems


def config_problems(
    config: Mapping[str, Any],
    location: Location,
    known: Iterable[str],
    *,
    strings: Iterable[str] = (),
    mappings: Iterable[str] = (),
    one_of: tuple[str, str] | None = None,
    template_hint: str = "",
) -> list[Problem]:
    """Problems with unknown keys, with keys that must be strings or mappings, with a pair
    of keys of which exactly one must be given (``one_of``), and with a ``${{ ... }}`` in any
    value (see :func:`template_problems`; ``template_hint`` says how the step reads an
    input)."""
    known_keys = sorted(known)
    problems = [
        Problem(
            f"unknown key {key!r}; expected one of {', '.join(known_keys)}",
            location.with_field(str(key)),
        )
        for key in config
        if key not in known_keys
    ]
    problems.extend(template_problems(config, location, template_hint))
    for key in strings:
        value = config.get(key)
        if key in config and (not isinstance(value, str) or not value.strip()):
            problems.append(
                Problem(f"'{key}' must be a non-empty string", location.with_field(key))
            )
    for key in mappings:
        value = config.get(key)
        if key in config and not (
            isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
        ):
            problems.append(
                Problem(f"'{key}' must be a mapping with string keys", location.with_field(key))
            )
    if one_of is not None:
        first, second = one_of
        given = [key for key in one_of if config.get(key) is not None]
        if len(given) != 1:
            problems.append(
                Problem(
                    f"exactly one of '{first}' and '{second}' is required"
                    + (" (both given)" if len(given) == 2 else ""),
                    location.with_field(first),
                )
            )
    return problems


def parse_memory(value: Any) -> int | None:
    """``value`` as a whole number of MiB (``"512m"``, ``"2g"``, ``"2GiB"``, ``1024``), or None
    when it cannot be read that way."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    match = _MEMORY.fullmatch(value)
    if match is None:
        return None
    mib = float(match.group(1)) * _MEMORY_FACTORS[match.group(2).lower()]
    return max(int(mib), 1) if mib > 0 else None


def resource_cores(resources: Mapping[str, Any]) -> Any:
    """The cores a ``resources`` entry asks for: ``cores``, or ``cpus`` (the name a step's own
    ``resources`` uses); None when it names neither."""
    return resources.get("cores", resources.get("cpus"))


def resources_problems(config: Mapping[str, Any], location: Location) -> list[Problem]:
    """Problems with an optional ``resources: {cores, memory}`` entry (``cpus`` is taken
    for ``cores``, as a step's own ``resources`` names it)."""
    resources = config.get("resources")
    if resources is None:
        return []
    where = location.with_field("resources")
    if not isinstance(resources, Mapping):
        return [Problem("'resources' must be a mapping with 'cores' and/or 'memory'", where)]
    problems = [
        Problem(f"unknown resource {key!r}; expected cores, memory", where.with_field(str(key)))
        for key in resources
        if key not in ("cores", "cpus", "memory")
    ]
    if "cores" in resources and "cpus" in resources:
        problems.append(Problem("give 'cores' or 'cpus', not both", where.with_field("cpus")))
    name = "cores" if "cores" in resources else "cpus"
    cores = resource_cores(resources)
    if cores is not None and (
        isinstance(cores, bool) or not isinstance(cores, int | float) or cores <= 0
    ):
        problems.append(Problem(f"'{name}' must be a positive number", where.with_field(name)))
    if "memory" in resources and parse_memory(resources["memory"]) is None:
        problems.append(
            Problem(
                f"'memory' must look like '512m' or '2g' (or a number of MiB), "
                f"got {resources['memory']!r}",
                where.with_field("memory"),
            )
        )
    return problems


class AttemptWatch:
    """Calls ``stop()`` when the attempt is cancelled or passes its timeout, and again every
    ``interval_s`` until the call it watches returns.

    Used as a context manager around a tool's blocking call (a DuckDB query, a Spark job):
    a watcher thread polls the attempt's cancel event and deadline (from ``ctx.extra``) every
    ``interval_s`` and, when either fires, records why in :attr:`reason` (``"cancelled"`` or
    ``"timeout"``) and calls ``stop`` to interrupt the tool. It keeps calling it: work the
    tool had not yet started when it first fired (a Spark job submitted after a slow first
    session start) is interrupted too. :meth:`error` is the step's error once it fired
    (``what`` names the work: ``"Spark job"``), and what the call does once it fired (returns
    late, or raises as the tool was interrupted) leaves the block as that error.
    """

    def __init__(
        self,
        ctx: StepContext,
        stop: Callable[[], None],
        *,
        name: str,
        what: str,
        interval_s: float = 0.05,
    ) -> None:
        timeout = ctx.extra.get("timeout_s")
        self.timeout_s = timeout
        self.what = what
        self.deadline = None if timeout is None else time.monotonic() + float(timeout)
        self.cancel = ctx.extra.get("cancel_event")
        self.reason: str | None = None
        self._stop = stop
        self._interval_s = interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=name, daemon=True)

    def __enter__(self) -> AttemptWatch:
        if self.deadline is not None or self.cancel is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        error = self.error()
        if error is not None and (exc[0] is None or isinstance(exc[1], Exception)):
            raise error from None

    def error(self) -> StepError | None:
        """The step's error if the watch fired (``Timeout`` or ``Cancelled``), else None."""
        if self.reason == "timeout":
            return StepError("Timeout", f"{self.what} timed out after {self.timeout_s} s")
        if self.reason == "cancelled":
            return StepError("Cancelled", "the attempt was cancelled")
        return None

    def _watch(self) -> None:
        while not self._done.wait(self._interval_s):
            if self.reason is None and self.cancel is not None and self.cancel.is_set():
                self.reason = "cancelled"
            elif self.reason is None and self.deadline is not None:
                self.reason = "timeout" if time.monotonic() >= self.deadline else None
            if self.reason is not None:
                self._stop()


def fact_environment(ctx: StepContext) -> dict[str, str]:
    """The run's facts as the environment variables every step running a program of its own
    gets (a shell command, an R script, a notebook's kernel): ``KAON_RUN_ID``, ``KAON_STEP``,
    ``KAON_ATTEMPT``, ``KAON_WORKFLOW``, ``KAON_ITEM`` (JSON, ``null`` outside a foreach),
    ``KAON_INDEX`` and ``KAON_ITERATION`` (empty outside a foreach or loop), ``KAON_PARAMS``
    (JSON). One list, so that every such step reads the same facts by the same names."""
    return {
        "KAON_RUN_ID": ctx.run_id,
        "KAON_STEP": ctx.step,
        "KAON_ATTEMPT": str(ctx.attempt),
        "KAON_WORKFLOW": ctx.workflow,
        "KAON_ITEM": json.dumps(ctx.item, default=json_default),
        "KAON_INDEX": "" if ctx.index is None else str(ctx.index),
        "KAON_ITERATION": "" if ctx.iteration is None else str(ctx.iteration),
        "KAON_PARAMS": json.dumps(dict(ctx.params), default=json_default),
    }

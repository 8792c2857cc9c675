"""The recorder behind the Python DSL: while a ``@kaon.workflow`` function runs once, every
step call, ``foreach``, ``loop`` and ``when`` lands here and becomes a spec.

Problems found while recording (a DataFrame passed as a constant, a bad option, an item used
outside its foreach) are collected with the call site's file and line, so the user sees all
of them at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from kaon.dsl._common import (
    build_retry,
    cel_literal,
    is_json_value,
    parse_enum,
    plain_json,
    wrap,
)
from kaon.dsl._refs import Ref, StepRef, Use
from kaon.dsl.durations import parse_duration
from kaon.errors import DefinitionError, Location, ParameterError, Problem
from kaon.model.breakpoints import breakpoint_moment
from kaon.model.resources import parse_resources
from kaon.model.specs import (
    Const,
    Expr,
    FailureMode,
    InputSpec,
    RetrySpec,
    StepSpec,
    TriggerRule,
)
from kaon.model.tenancy import parse_pool, parse_priority, parse_tags

OPTION_NAMES = frozenset(
    {
        "id",
        "needs",
        "when",
        "retry",
        "timeout",
        "on_failure",
        "trigger_rule",
        "cache",
        "cache_version",
        "description",
        "breakpoint",
        "resources",
        "pool",
        "priority",
        "tags",
    }
)


@dataclass(eq=False)
class Frame:
    """One graph being recorded: the workflow's own, or a foreach/loop body."""

    kind: str  # "workflow", "foreach" or "loop"
    label: str  # the container's id, for messages
    steps: list[StepSpec | None] = field(default_factory=list)
    whens: list[str] = field(default_factory=list)
    output: str | None = None


def user_location() -> Location:
    """File and line of the nearest caller outside Kaon's DSL (the user's call site)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module.startswith("kaon.dsl") or module == "contextlib"):
            return Location(os.path.realpath(frame.f_code.co_filename), frame.f_lineno)
        frame = frame.f_back
    return Location()


class Builder:
    """Records one workflow definition. Only the DSL calls it."""

    def __init__(self) -> None:
        self.stack: list[Frame] = [Frame("workflow", "")]
        self.problems: list[Problem] = []
        self._used_ids: set[str] = set()
        self._numbers: dict[str, int] = {}  # the last number new_id gave (or tried) per base
        self._unentered: dict[int, tuple[str, Location]] = {}

    @property
    def top(self) -> Frame:
        """The graph steps are currently recorded into."""
        return self.stack[-1]

    def problem(self, message: str, location: Location) -> None:
        """Record a problem and go on recording."""
        self.problems.append(Problem(message, location))

    def new_id(self, base: str, explicit: str | None) -> str:
        """``explicit`` if given, else ``base``, ``base_2``, ... unused in this workflow."""
        if explicit is not None:
            self._used_ids.add(explicit)
            return explicit
        # Ids are never freed: the search goes on from the last number given for ``base``
        # (from 1 every time, a chain of n calls of one step took n^2/2 probes).
        number = self._numbers.get(base, 1)
        candidate = base if number == 1 else f"{base}_{number}"
        while candidate in self._used_ids:
            number += 1
            candidate = f"{base}_{number}"
        self._numbers[base] = number
        self._used_ids.add(candidate)
        return candidate

    def depth(self, kind: str) -> int:
        """How many frames of ``kind`` enclose the current point."""
        return sum(1 for f in self.stack if f.kind == kind)

    def reserve(self) -> tuple[Frame, int]:
        """Keep a slot in the current graph for a container filled when its block ends."""
        self.top.steps.append(None)
        return self.top, len(self.top.steps) - 1

    def expect_block(self, key: int, kind: str, location: Location) -> None:
        """Remember a container that must be entered with ``with``."""
        self._unentered[key] = (kind, location)

    def entered_block(self, key: int) -> None:
        """A container was entered."""
        self._unentered.pop(key, None)

    def unentered_problems(self) -> list[Problem]:
        """Containers created but never used in a ``with`` statement."""
        return [
            Problem(f"kaon.{kind}(...) must be used in a with statement", location)
            for kind, location in self._unentered.values()
        ]

    @contextmanager
    def scope(self, frame: Frame) -> Iterator[Frame]:
        """Record into ``frame`` for the duration of the block."""
        self.stack.append(frame)
        try:
            yield frame
        finally:
            self.stack.pop()

    # -- checking and converting values ------------------------------------------------

    def check_uses(self, ref: Ref, location: Location) -> bool:
        """Record a problem for each scope ``ref`` needs that is not open here."""
        messages = {m for m in map(self._use_problem, ref._uses) if m}
        for message in sorted(messages):
            self.problem(message, location)
        return not messages

    def _use_problem(self, use: Use) -> str | None:
        if use.kind == "step":
            return None  # validation reports steps referenced out of scope, with the path
        if use.kind in ("item", "index"):
            frames = [f for f in self.stack if f.kind == "foreach"]
            if use.kind == "item" and any(f is use.scope for f in frames):
                return None
            if use.kind == "index" and frames and frames[-1] is use.scope:
                return None
            return f"{use.name!r} of a foreach is only visible inside its own body"
        frames = [f for f in self.stack if f.kind == "loop"]
        if frames and frames[-1] is use.scope:
            return None
        return "'iteration' of a loop is only visible inside its own body"

    def to_input(self, value: Any, location: Location) -> InputSpec:
        """Convert a call argument into a Const or an Expr (problems are recorded)."""
        if isinstance(value, Ref):
            self.check_uses(value, location)
            return Expr(value.source)
        if isinstance(value, Const | Expr):
            return value
        if not _contains_ref(value):
            if isinstance(value, str) and "${{" in value:
                return _template(value, location)
            if is_json_value(value):
                return Const(plain_json(value))
            self.problem(_not_json_message(value), location)
            return Const(None)
        try:
            return Expr(self._cel(value, location))
        except DefinitionError as exc:
            self.problems.extend(Problem(p.message, location) for p in exc.problems)
            return Const(None)

    def _cel(self, value: Any, location: Location) -> str:
        if isinstance(value, Ref):
            self.check_uses(value, location)
            return wrap(value.source)
        if isinstance(value, list | tuple):
            return "[" + ", ".join(self._cel(v, location) for v in value) + "]"
        if isinstance(value, dict):
            parts = []
            for key, item in value.items():
                if not isinstance(key, str):
                    raise DefinitionError(f"dict keys must be strings, got {key!r}")
                parts.append(f"{cel_literal(key)}: {self._cel(item, location)}")
            return "{" + ", ".join(parts) + "}"
        if isinstance(value, Expr):
            return wrap(value.source)
        if isinstance(value, Const):
            return cel_literal(value.value)
        if not is_json_value(value):
            raise DefinitionError(_not_json_message(value))
        return cel_literal(value)

    def when_condition(self, value: Any, location: Location) -> str | None:
        """CEL source of a ``when``; a Python bool is refused: it was computed while the
        workflow was defined (``x is None``, ``flag is True``, ``x in [...]``), so it would
        hold the same for every run whatever the steps return or the params say."""
        if isinstance(value, bool):
            self.problem(
                f"when got the Python bool {value}, fixed while the workflow is defined "
                "(from `is`, `is not` or a plain Python value); compare the reference "
                "instead (`x == None`, `flag == True`), or use a Python if for a constant",
                location,
            )
            return None
        return self.condition(value, location)

    def condition(self, value: Any, location: Location) -> str | None:
        """CEL source of a ``when``/``until`` condition: a ref, an Expr, a CEL string, a bool."""
        if isinstance(value, Ref):
            self.check_uses(value, location)
            return value.source
        return condition_source(value, location, self.problems)

    # -- options -------------------------------------------------------------------------

    def step_fields(self, options: Mapping[str, Any], location: Location) -> dict[str, Any]:
        """StepSpec keyword arguments from user options; problems are recorded."""
        fields, problems = parse_options(options, location)
        self.problems.extend(problems)
        when = fields.pop("when", None)
        if when is not None:
            when = self.when_condition(when, location.with_field("when"))
        whens = [*self.top.whens, *([when] if when else [])]
        fields["when"] = combine_conditions(whens)
        needs = []
        for need in options.get("needs") or ():
            if isinstance(need, StepRef):
                needs.append(need.id)
            elif isinstance(need, str):
                needs.append(need)
            else:
                self.problem(f"needs takes step refs or step ids, got {need!r}", location)
        fields["needs"] = tuple(needs)
        return fields


def _contains_ref(value: Any) -> bool:
    if isinstance(value, Ref | Expr):
        return True
    if isinstance(value, list | tuple):
        return any(_contains_ref(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_ref(v) for v in value.values())
    return False


def _not_json_message(value: Any) -> str:
    return (
        f"a {type(value).__name__} cannot be passed as a constant in a workflow definition "
        "(only JSON values and references to steps, params and items); compute it in a step"
    )


def _template(text: str, location: Location) -> InputSpec:
    from kaon.model.expressions import parse_template

    return parse_template(text, location)


def condition_source(value: Any, location: Location, problems: list[Problem]) -> str | None:
    """CEL source of a condition given as an Expr, a bare or ``${{ }}`` string, or a bool."""
    if isinstance(value, Ref):
        return value.source
    if isinstance(value, Expr):
        return value.source
    if isinstance(value, bool):
        return cel_literal(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if "${{" not in text:
            return text
        try:
            parsed = _template(text, location)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            return None
        return parsed.source if isinstance(parsed, Expr) else cel_literal(parsed.value)
    problems.append(Problem(f"a condition must be an expression string, got {value!r}", location))
    return None


def combine_conditions(sources: list[str]) -> str | None:
    """AND several conditions together (``None`` when there are none)."""
    if not sources:
        return None
    if len(sources) == 1:
        return sources[0]
    return " && ".join(wrap(s) for s in sources)


def parse_retry(value: Any, location: Location) -> RetrySpec | None:
    """A retry option: a RetrySpec (from ``kaon.Retry``), an attempt count, or None."""
    if value is None or isinstance(value, RetrySpec):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return build_retry(max_attempts=value, location=location)
    if isinstance(value, Mapping):
        return build_retry(**dict(value), location=location)
    raise DefinitionError(
        Problem(f"retry must be kaon.Retry(...) or a number of attempts, got {value!r}", location)
    )


def parse_options(
    options: Mapping[str, Any], location: Location
) -> tuple[dict[str, Any], list[Problem]]:
    """Turn user step options into StepSpec fields (``timeout`` -> ``timeout_s`` ...).

    ``needs`` and ``id`` are left to the caller; ``when`` is passed through.
    """
    problems: list[Problem] = []
    fields: dict[str, Any] = {}
    unknown = sorted(set(options) - OPTION_NAMES)
    for name in unknown:
        problems.append(Problem(f"unknown step option {name!r}", location.with_field(name)))
    parsers: dict[str, Any] = {
        "retry": ("retry", parse_retry),
        "timeout": ("timeout_s", lambda v, loc: None if v is None else parse_duration(v, loc)),
        "on_failure": (
            "on_failure",
            lambda v, loc: None if v is None else parse_enum(FailureMode, v, loc),
        ),
        "trigger_rule": ("trigger_rule", lambda v, loc: parse_enum(TriggerRule, v, loc)),
        "cache": ("cache", _parse_optional_bool),
        "cache_version": ("cache_version", _parse_str),
        "description": ("description", _parse_str),
        "breakpoint": ("breakpoint", _parse_breakpoint),
        "resources": ("resources", parse_resources),
        "pool": ("pool", parse_pool),
        "priority": ("priority", parse_priority),
        "tags": ("tags", parse_tags),
    }
    for name, (target, parse) in parsers.items():
        if name not in options:
            continue
        try:
            fields[target] = parse(options[name], location.with_field(name))
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if "when" in options:
        fields["when"] = options["when"]
    return fields, problems


def _parse_breakpoint(value: Any, location: Location) -> str:
    try:
        return breakpoint_moment(value)
    except ParameterError as error:
        raise DefinitionError(Problem(str(error), location)) from None


def _parse_optional_bool(value: Any, location: Location) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise DefinitionError(Problem(f"must be true or false, got {value!r}", location))


def _parse_str(value: Any, location: Location) -> str:
    if isinstance(value, str):
        return value
    raise DefinitionError(Problem(f"must be a string, got {value!r}", location))


_active: ContextVar[Builder | None] = ContextVar("kaon_workflow_builder", default=None)


def active_builder() -> Builder | None:
    """The builder of the workflow definition running in this context, if any."""
    return _active.get()


def require_builder(what: str) -> Builder:
    """The active builder; DefinitionError when ``what`` is used outside a workflow."""
    builder = _active.get()
    if builder is None:
        raise DefinitionError(
            Problem(f"{what} can only be used inside a @kaon.workflow function", user_location())
        )
    return builder


@contextmanager
def recording(builder: Builder) -> Iterator[Builder]:
    """Make ``builder`` the active one for the block."""
    token = _active.set(builder)
    try:
        yield builder
    finally:
        _active.reset(token)

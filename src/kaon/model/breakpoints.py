"""Breakpoints: where a run pauses, before or after a step, for a person to look.

A breakpoint is set on a run (``kaon run --break STEP``, ``kaon.start(breakpoints=...)``, the
API's ``breakpoints``) or on a step (``breakpoint=True``, ``"after"``). The run's are part of
the run (a reserved label, ``kaon.breakpoints``), so a resumed run keeps them.

A breakpoint's name is a step id (every run of that step: each foreach item, each loop
iteration), a path without indexes (``each.train``: every item's ``train``), or a path
(``each[3].train``: that item only), indexes given at some levels only included
(``outer[1].inner.train``: every inner item of outer item 1; see :func:`names_path`);
``NAME:after`` pauses after the step instead, with its outputs recorded but not yet passed
on. The engine records a paused step with status
``paused`` and the run with status ``paused`` while any step is; ``kaon continue`` goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kaon.errors import ParameterError
from kaon.model.specs import (
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    StepSpec,
    SubworkflowSpec,
    WorkflowSpec,
    body_of,
)
from kaon.model.text import did_you_mean

BREAKPOINTS_LABEL = "kaon.breakpoints"
BREAK_BEFORE = "breakpoint"  # the reason of a step paused before it starts
BREAK_AFTER = "breakpoint (after)"  # the reason of a step paused after it succeeded
BREAK_AFTER_CACHED = "breakpoint (after, cached)"  # ...after its outputs came from the cache
BREAK_PASSED = "breakpoint passed"  # the reason of a pending step continued past its break

Moment = Literal["before", "after"]
_INDEX = re.compile(r"\[[0-9]+\]")


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """Pause before (or after) every step run that ``name`` names."""

    name: str
    moment: Moment = "before"

    @classmethod
    def parse(cls, text: str) -> Breakpoint:
        """``STEP`` or ``STEP:after`` (also ``STEP:before``). Raises ParameterError."""
        name, _, moment = text.strip().partition(":")
        moment = moment or "before"
        if not name or moment not in ("before", "after"):
            raise ParameterError(f"breakpoint {text!r}: expected STEP or STEP:after")
        return cls(step_name(name), "after" if moment == "after" else "before")

    def __str__(self) -> str:
        return self.name if self.moment == "before" else f"{self.name}:after"

    def matches(self, path: str, step_id: str) -> bool:
        """Whether the step run at ``path`` (of step ``step_id``) stops here."""
        return self.name == step_id or names_path(self.name, path)


@dataclass(frozen=True, slots=True)
class Breakpoints:
    """A run's breakpoints (from its label) plus those its steps declare."""

    points: tuple[Breakpoint, ...] = ()

    @classmethod
    def from_labels(cls, labels: Mapping[str, Any]) -> Breakpoints:
        """The breakpoints recorded in a run's labels."""
        found = labels.get(BREAKPOINTS_LABEL) or ()
        return cls(tuple(Breakpoint.parse(str(b)) for b in found))

    def with_labels(self, labels: Mapping[str, Any]) -> dict[str, Any]:
        """``labels`` with these breakpoints recorded (removed when there are none)."""
        merged = {k: v for k, v in labels.items() if k != BREAKPOINTS_LABEL}
        if self.points:
            merged[BREAKPOINTS_LABEL] = [str(b) for b in self.points]
        return merged

    def stops(self, path: str, spec: StepSpec, moment: Moment) -> bool:
        """Whether the step run at ``path`` of ``spec`` pauses at ``moment``."""
        declared = spec.breakpoint
        if declared == moment:
            return True
        if not self.points:
            return False
        return any(b.moment == moment and b.matches(path, spec.id) for b in self.points)


def check_breakpoints(spec: WorkflowSpec, given: Iterable[str]) -> Breakpoints:
    """Parse breakpoints and check each names a step of ``spec``. Raises ParameterError
    naming every breakpoint that cannot stop anything, and why."""
    points = tuple(Breakpoint.parse(text) for text in given)
    problems = [
        f"breakpoint {str(b)!r}: {why}" for b in points if (why := _never_held(spec, b)) is not None
    ]
    if problems:
        raise ParameterError(f"{'; '.join(problems)} (workflow {spec.name!r})")
    return Breakpoints(points)


_SEGMENT = re.compile(r"([^\[\].]+)(?:\[([0-9]+)\])?")
MAX_INDEX_DIGITS = 9  # an item or iteration index past 999,999,999 names nothing


_LEADING_ZEROS = re.compile(r"\[0+(?=[0-9])")


def step_name(name: str) -> str:
    """A step name or path as step run paths write it: ``each[1].train`` for
    ``each[01].train`` (an index without leading zeros), so that it matches."""
    return _LEADING_ZEROS.sub("[", name)


def without_indexes(path: str) -> str:
    """A step run's path without its item and iteration indexes: ``each.train`` for
    ``each[3].train``."""
    return _INDEX.sub("", path)


def _segments(path: str) -> list[tuple[str, str | None]] | None:
    found: list[tuple[str, str | None]] = []
    for part in path.split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            return None
        found.append((match.group(1), match.group(2)))
    return found


def names_path(name: str, path: str, *, inside: bool = False) -> bool:
    """Whether the step name or path ``name`` names the step run at ``path``: level by level
    the same step ids, and the same index wherever ``name`` gives one (a level without an
    index means every item or iteration there). So ``each.train`` and ``each[3].train`` name
    ``each[3].train``, and ``outer[1].inner.train`` names the ``train`` of every inner item
    of outer item 1 (``outer[1].inner[0].train``...). With ``inside``, a step run inside the
    one ``name`` names counts too (a forced container). A bare step id is matched here only
    at the top level: callers that take it at any depth say so."""
    wanted, have = _segments(name), _segments(path)
    if wanted is None or have is None or len(wanted) > len(have):
        return False
    if len(wanted) < len(have) and not inside:
        return False
    for (step_id, index), (path_id, path_index) in zip(wanted, have, strict=False):
        if step_id != path_id or (index is not None and index != path_index):
            return False
    return True


def unreachable_step(spec: WorkflowSpec, name: str) -> str | None:
    """Why no step run of ``spec`` can be at ``name``, or None when one can: a bare step id
    names that step at any depth; a path follows the containers from the top (``each.train``,
    ``each[3].train``, ``sub.inner``), an index only after a foreach or a loop, below its
    ``max_iterations`` for a loop. The names of breakpoints and of forced steps (``kaon run
    --force``) are checked by it."""
    if "." not in name and "[" not in name:
        known = set(_step_ids(spec.graph))
        return None if name in known else f"no step {name!r}{did_you_mean(name, known)}"
    graph: GraphSpec | None = spec.graph
    parts = name.split(".")
    for number, part in enumerate(parts):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            return f"{part!r} is not STEP or STEP[INDEX]"
        step_id, index = match.group(1), match.group(2)
        step = graph.by_id().get(step_id) if graph is not None else None
        if step is None:
            where = ".".join(parts[:number]) or "the top level"
            here = set(graph.by_id()) if graph is not None else set()
            return f"no step {step_id!r} in {where}{did_you_mean(step_id, here)}"
        if index is not None:
            if not isinstance(step, ForeachSpec | LoopSpec):
                return f"{step_id!r} is a {step.kind} step: only a foreach or a loop takes an index"
            if len(index.lstrip("0")) > MAX_INDEX_DIGITS:
                return f"index {index} is out of range"
            if isinstance(step, LoopSpec) and int(index) >= step.max_iterations:
                return (
                    f"loop {step_id!r} runs at most {step.max_iterations} iterations "
                    f"(0 to {step.max_iterations - 1}), not {index}"
                )
        if isinstance(step, SubworkflowSpec) and step.spec is None:
            return None  # a workflow found by name when the run starts: not known here
        graph = body_of(step)
        if graph is None and number < len(parts) - 1:
            return f"{step_id!r} is a {step.kind} step, with no steps inside"
    return None


def _never_held(spec: WorkflowSpec, point: Breakpoint) -> str | None:
    """Why ``point`` can hold no step run of ``spec``: it names none (see
    :func:`unreachable_step`), it names an item or iteration (a row, not a step: the engine
    holds steps), or it pauses after a container (only a task's outputs are held)."""
    why = unreachable_step(spec, point.name)
    if why is not None:
        return why
    last = _SEGMENT.fullmatch(point.name.rsplit(".", 1)[-1])
    if last is not None and last.group(2) is not None:
        step_id = last.group(1)
        container = _named_steps(spec, point.name.rsplit("[", 1)[0])
        kind = container[0].kind if container else ""
        what = {"loop": "an iteration of loop", "foreach": "an item of foreach"}.get(
            kind, "an item or iteration of"
        )
        return (
            f"{point.name!r} is {what} {step_id!r}, not a step: "
            f"break on a step inside it ({point.name}.STEP) or on {step_id}"
        )
    if point.moment == "after":
        steps = _named_steps(spec, point.name)
        if steps and all(body_of(step) is not None for step in steps):
            return (
                f"{point.name!r} is a {steps[0].kind} step: only a task pauses after it ran "
                "(break before it, or after a step inside it)"
            )
    return None


def _named_steps(spec: WorkflowSpec, name: str) -> list[StepSpec]:
    """The steps ``name`` (a step id at any depth, or a path) names; [] when that is not
    known before the run (inside a subworkflow found by name)."""
    if "." not in name and "[" not in name:
        return list(_steps_with_id(spec.graph, name))
    graph: GraphSpec | None = spec.graph
    step: StepSpec | None = None
    for part in name.split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None or graph is None:
            return []
        step = graph.by_id().get(match.group(1))
        if step is None:
            return []
        graph = body_of(step)
    return [step] if step is not None else []


def _steps_with_id(graph: GraphSpec, step_id: str) -> Iterable[StepSpec]:
    for step in graph.steps:
        if step.id == step_id:
            yield step
        inside = body_of(step)
        if inside is not None:
            yield from _steps_with_id(inside, step_id)


def _step_ids(graph: GraphSpec) -> Iterable[str]:
    for step in graph.steps:
        yield step.id
        inside = body_of(step)
        if inside is not None:
            yield from _step_ids(inside)


def breakpoint_moment(value: bool | str | None) -> str:
    """A step option ``breakpoint`` (True, ``"before"``, ``"after"``, False/None) as the
    spec's field: ``""``, ``"before"`` or ``"after"``. Raises ParameterError."""
    if value is None or value is False or value == "":
        return ""
    if value is True:
        return "before"
    if value in ("before", "after"):
        return str(value)
    raise ParameterError(f"breakpoint must be true, 'before' or 'after', got {value!r}")


__all__: Sequence[str] = [
    "BREAKPOINTS_LABEL",
    "BREAK_AFTER",
    "BREAK_AFTER_CACHED",
    "BREAK_BEFORE",
    "BREAK_PASSED",
    "Breakpoint",
    "Breakpoints",
    "breakpoint_moment",
    "check_breakpoints",
    "names_path",
    "step_name",
    "unreachable_step",
    "without_indexes",
]

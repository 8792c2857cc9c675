"""Static definitions of workflows: the specs that both front ends (Python, YAML) produce.

Specs are immutable, pure data: they import nothing of Kaon's but errors and can be
serialized to JSON (see :mod:`kaon.model.codec`) so that a run records exactly what it ran.

Values that flow into a step are :class:`Const` (a JSON value fixed in the definition) or
:class:`Expr` (a CEL expression evaluated at run time against ``params``, ``steps``, ``item``,
``index``, ``iteration`` and ``run``). A reference such as ``steps.prepare.train`` is an
:class:`Expr` too; the engine resolves simple references without the CEL interpreter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from kaon.errors import Location
from kaon.model.resources import ResourceSpec

if TYPE_CHECKING:
    from kaon.model.triggers import TriggerSpec

NOWHERE: Final = Location()  # the location of a spec built in code, not read from a file


MAX_DURATION_S: Final = 366 * 86_400.0  # the longest duration any definition may set: a year


def duration_problem(name: str, value: object, *, positive: bool) -> str | None:
    """Why ``value`` (seconds) is no duration ``name`` may be, in a definition's words
    (``timeout must be more than 0 and at most 366d, got 400d``), or None when it is one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        got = repr(value)[:40]
    elif math.isfinite(value) and (value > 0 if positive else value >= 0):
        if value <= MAX_DURATION_S:
            return None
        got = duration_text(value)
    else:
        got = duration_text(value)
    bounds = "more than 0 and at most" if positive else "from 0 to"
    return f"{name} must be {bounds} {duration_text(MAX_DURATION_S)}, got {got}"


def duration_text(seconds: float) -> str:
    """``31708800`` -> ``"367d"``, ``5400`` -> ``"1h30m"``; seconds that are not whole (or
    not a finite number >= 0) as they are, with ``s``."""
    if not math.isfinite(seconds) or seconds < 0 or seconds != int(seconds):
        return f"{seconds!r}s"
    rest, parts = int(seconds), []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


SIGNAL_NAME_PATTERN: Final = r"^[A-Za-z0-9_.:/-]{1,200}$"
"""A signal's name: what ``POST /signals`` accepts, so also what ``kaon signal`` sends and what a
wait step or a signal trigger may wait for (letters, digits, ``_ . : / -``; 1 to 200)."""
_SIGNAL_NAME: Final = re.compile(SIGNAL_NAME_PATTERN)


def signal_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a signal, or None when it can (see SIGNAL_NAME_PATTERN)."""
    if isinstance(name, str) and _SIGNAL_NAME.fullmatch(name) is not None:
        return None
    return (
        f"signal name {name!r} is not valid: use 1 to 200 letters, digits and _ . : / - (no spaces)"
    )


class _NoDefault:
    """Marker for a parameter that has no default (the caller must supply it)."""

    _instance: _NoDefault | None = None

    def __new__(cls) -> _NoDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __reduce__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Final = _NoDefault()


class ParamType(StrEnum):
    """Types a workflow parameter may declare."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    LIST = "list"
    DICT = "dict"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """A typed workflow parameter with an optional default.

    A default that is an :class:`Expr` is *computed* from other parameters when the run does
    not give the value (``default: "${{ params.k * 2 }}"``): it may read ``params`` only, is
    evaluated after the parameters it reads, and must not depend on itself.

    ``nullable`` also accepts ``null`` (``Optional[float]``, ``float | None``); ``choices``,
    when not empty, are the only values accepted (``Literal["small", "large"]``, a YAML
    ``choices:`` list), each of the declared type.
    """

    name: str
    type: ParamType = ParamType.ANY
    default: Any = NO_DEFAULT
    description: str = ""
    location: Location = NOWHERE
    nullable: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def required(self) -> bool:
        """True when a run must supply a value."""
        return self.default is NO_DEFAULT


@dataclass(frozen=True, slots=True)
class Const:
    """A JSON value fixed in the definition."""

    value: Any


@dataclass(frozen=True, slots=True)
class Expr:
    """A CEL expression evaluated at run time (``steps.prepare.train``, ``params.k * 2``)."""

    source: str


InputSpec = Const | Expr


class TriggerRule(StrEnum):
    """When a step may run, given the final statuses of its dependencies."""

    # every dependency succeeded, or was a branch not taken (skipped by its condition, or
    # after one): a join after a branch runs after whichever branch was taken (the default)
    ALL_SUCCEEDED = "all_succeeded"
    # every dependency succeeded: a branch not taken skips this step too (the old default)
    ALL_SUCCEEDED_STRICT = "all_succeeded_strict"
    ALL_DONE = "all_done"  # every dependency is finished, whatever its status
    ANY_SUCCEEDED = "any_succeeded"  # at least one dependency succeeded; waits for all to finish
    NONE_FAILED = "none_failed"  # no dependency failed (skipped ones are fine)


class FailureMode(StrEnum):
    """What a step's final failure does to the rest of the run."""

    FAIL_FAST = "fail_fast"  # cancel everything still running; the run fails at once
    FINISH_RUNNING = "finish_running"  # start nothing new, let running steps finish, then fail
    IGNORE = "ignore"  # the step is failed, the run goes on; trigger rules decide what follows


class Backoff(StrEnum):
    """How the delay between attempts grows."""

    FIXED = "fixed"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """Retry policy of a step.

    ``max_attempts`` counts attempts failed by the user's code (1 means no retry);
    ``retry_on`` limits those retries to exception type names (``ValueError``,
    ``requests.HTTPError``; empty means any). Attempts lost to the platform (a worker
    died, the engine was killed) are counted separately against ``platform_attempts``.
    """

    max_attempts: int = 1
    backoff: Backoff = Backoff.FIXED
    delay_s: float = 0.0
    max_delay_s: float = 300.0
    retry_on: tuple[str, ...] = ()
    platform_attempts: int = 3

    def delay_for(self, failed_attempts: int) -> float:
        """Seconds to wait before the attempt that follows ``failed_attempts`` failures."""
        if self.backoff is Backoff.EXPONENTIAL:
            # The exponent is capped so the product stays a finite float.
            delay = self.delay_s * (2 ** min(max(failed_attempts - 1, 0), 64))
        else:
            delay = self.delay_s
        return float(min(delay, self.max_delay_s))

    def retries_error(self, error_type: str, bases: tuple[str, ...] = ()) -> bool:
        """True when an error of ``error_type`` or of a subclass of one of ``retry_on`` may
        be retried. ``bases`` are the error's base class names; names match qualified or by
        their last part (``ConnectionError``, ``requests.ConnectionError``)."""
        if not self.retry_on:
            return True
        names = {error_type, *bases}
        shorts = {n.rsplit(".", 1)[-1] for n in names}
        return any(e in names or e.rsplit(".", 1)[-1] in shorts for e in self.retry_on)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSpec:
    """Fields every step kind shares. Never instantiated directly."""

    id: str
    needs: tuple[str, ...] = ()
    inputs: Mapping[str, InputSpec] = field(default_factory=dict)
    when: str | None = None
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCEEDED
    retry: RetrySpec | None = None
    timeout_s: float | None = None
    on_failure: FailureMode | None = None
    cache: bool | None = None
    cache_version: str = ""
    description: str = ""
    location: Location = NOWHERE
    breakpoint: str = ""  # "before" or "after": the run pauses there (kaon.model.breakpoints)
    resources: ResourceSpec | None = None  # what one attempt asks of its machine (tasks)
    # Multi-tenancy (tasks; see kaon.model.tenancy): the pool whose slots an attempt takes
    # (None: the workflow's default pool), the step's priority (None: 0) and its tags.
    pool: str | None = None
    priority: int | None = None
    tags: tuple[str, ...] = ()

    kind: str = "step"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec(StepSpec):
    """A step that runs code through a step type (``python``, ``shell``, ...)."""

    step_type: str = "python"
    config: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "task"


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """An ordered set of steps; edges come from ``needs`` and from expression references.

    ``output`` names the step whose output is the graph's output (the body result of a
    foreach item or loop iteration); when empty, the single sink step's output, or a
    mapping of each sink's id to its output when there are several.
    """

    steps: tuple[StepSpec, ...] = ()
    output: str | None = None

    def by_id(self) -> dict[str, StepSpec]:
        """Map step ids to specs (the first one wins on duplicates; validation reports them)."""
        found: dict[str, StepSpec] = {}
        for step in self.steps:
            found.setdefault(step.id, step)
        return found

    def walk(self, prefix: str = "") -> Iterator[tuple[str, StepSpec]]:
        """Yield ``(dotted path, spec)`` for every step, nested bodies included."""
        for step in self.steps:
            path = f"{prefix}{step.id}"
            yield path, step
            body = getattr(step, "body", None)
            if isinstance(body, GraphSpec):
                yield from body.walk(path + ".")


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeachSpec(StepSpec):
    """Repeat ``body`` for each item of a list known only at run time.

    Items are expanded lazily, at most ``concurrency`` running at once (``None``: the
    executor's capacity). The output is the list of each item's body output, in item order.
    Inside the body, ``item`` (or ``item_name``) and ``index`` are bound.

    ``min_success`` (a fraction in (0, 1]) makes the foreach hold its items' failures: every
    item runs, a failed one stops nothing else, and the foreach succeeds when at least that
    fraction of its items succeeded, its output holding ``null`` for each failed item (a
    sweep that keeps the trials that worked); below it, the foreach fails.
    """

    items: InputSpec
    body: GraphSpec
    concurrency: int | None = None
    item_name: str = "item"
    min_success: float | None = None
    kind: str = "foreach"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopSpec(StepSpec):
    """Repeat ``body`` until ``until`` holds, at most ``max_iterations`` times.

    ``until`` is evaluated after each iteration with that iteration's body outputs visible
    as ``steps.*`` and ``iteration`` (0-based) bound. The output is the last iteration's body
    output. When the limit is reached and ``until`` still does not hold, the loop succeeds
    unless ``fail_on_exhausted`` is set.
    """

    body: GraphSpec
    until: str
    max_iterations: int = 3
    fail_on_exhausted: bool = False
    kind: str = "loop"


@dataclass(frozen=True, slots=True, kw_only=True)
class SubworkflowSpec(StepSpec):
    """Run another workflow as one step; ``inputs`` become its parameters."""

    workflow: str
    spec: WorkflowSpec | None = None  # resolved by the loader; the run records it whole
    kind: str = "subworkflow"


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitSpec(StepSpec):
    """Wait until a signal called ``signal`` arrives (status ``waiting``).

    Signals received since the run was created count. ``match`` is a condition over the
    signal's parameters (``signal.region == params.region``); the step's output is the
    matching signal's parameters. ``timeout_s`` bounds the wait.
    """

    signal: str
    match: str | None = None
    kind: str = "wait"


@dataclass(frozen=True, slots=True)
class StepDefaults:
    """Workflow-wide defaults for fields a step leaves unset."""

    retry: RetrySpec = RetrySpec()
    timeout_s: float | None = None
    on_failure: FailureMode = FailureMode.FAIL_FAST
    cache: bool = False
    pool: str = "default"  # the pool of steps that name none (kaon.model.tenancy)


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A named graph of steps with typed parameters, and what starts its runs
    (``triggers``, see :mod:`kaon.model.triggers`)."""

    name: str
    graph: GraphSpec
    params: tuple[ParamSpec, ...] = ()
    defaults: StepDefaults = StepDefaults()
    timeout_s: float | None = None
    description: str = ""
    location: Location = NOWHERE
    triggers: tuple[TriggerSpec, ...] = ()
    priority: int = 0  # the priority of its runs that do not set one (kaon.model.tenancy)

    def param(self, name: str) -> ParamSpec | None:
        """The parameter called ``name``, if declared."""
        return next((p for p in self.params if p.name == name), None)


def body_of(step: StepSpec) -> GraphSpec | None:
    """The graph inside a foreach, loop or subworkflow step (None for other steps, and for a
    subworkflow found by name when its run starts)."""
    if isinstance(step, ForeachSpec | LoopSpec):
        return step.body
    if isinstance(step, SubworkflowSpec) and step.spec is not None:
        return step.spec.graph
    return None

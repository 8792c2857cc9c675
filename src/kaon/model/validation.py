"""Checking a workflow definition before anything runs: every problem, with its location.

:func:`validate_workflow` runs a pass of small named checks (:data:`CHECKS`), each a
function that yields :class:`~kaon.errors.Problem` objects. It never raises on a
well-typed spec, however wrong: the caller gets the full list at once (each problem at the
offending step's or parameter's file and line plus the field) and decides, usually through
:func:`raise_if_invalid`.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from kaon.errors import DefinitionError, ExpressionError, KaonError, Location, Problem
from kaon.model.error_names import error_name_problem
from kaon.model.expressions import (
    ExpressionAnalysis,
    analyze,
    blank_literals,
    current_budget,
    over_budget_message,
)
from kaon.model.graph import compile_graph, dependencies, step_expressions, topological_order
from kaon.model.params import check_param_value, choice_problems, default_problems
from kaon.model.specs import (
    Expr,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    RetrySpec,
    StepSpec,
    SubworkflowSpec,
    TaskSpec,
    WaitSpec,
    WorkflowSpec,
    duration_problem,
    signal_name_problem,
)
from kaon.model.tenancy import parse_pool, parse_priority, parse_tags

if TYPE_CHECKING:
    from kaon.model.expression_cost import Shape

StepTypeCheck = Callable[[str, Mapping[str, Any], Location], list[Problem]]
"""Checks a task's step type and config: ``(step_type, config, location) -> problems``."""

ID_PATTERN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # use fullmatch: no "\n" after
MAX_NAME_CHARS: Final = 200
"""The longest workflow name or step id: what every HTTP route that names one takes (the
run to start, the run history, a page's step filter), so a pushed name is one a caller can
use."""
PARAM_NAME_PATTERN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_LOOP_ITERATIONS: Final = 10_000
MAX_ATTEMPTS: Final = 1_000  # retry max_attempts and platform_attempts
MAX_SUBWORKFLOW_DEPTH: Final = 20
_ROOT_VARIABLES: Final = frozenset({"params", "steps", "run"})
_RESERVED_ITEM_NAMES: Final = frozenset(
    {"params", "steps", "run", "index", "iteration", "true", "false", "null", "in"}
)


@dataclass(frozen=True, slots=True)
class _Scope:
    """A graph with what its steps' expressions may see."""

    graph: GraphSpec
    specs: Mapping[str, StepSpec]  # what ``steps.X`` names here (this graph first)
    variables: frozenset[str]  # bound root variables
    prefix: str  # dotted path of the enclosing containers, "" at the top

    @property
    def visible(self) -> frozenset[str]:
        """Ids of this graph's steps and of enclosing graphs' steps."""
        return frozenset(self.specs)


@dataclass(frozen=True, slots=True)
class _Site:
    """One expression and where it is evaluated."""

    source: str
    location: Location
    owner: str  # the dotted path of the step it belongs to
    scope: _Scope


@dataclass(frozen=True, slots=True)
class _Context:
    spec: WorkflowSpec
    check_step_type: StepTypeCheck | None
    depth: int


def validate_workflow(
    spec: WorkflowSpec, *, check_step_type: StepTypeCheck | None = None
) -> list[Problem]:
    """Return every problem found in ``spec`` (empty when it is valid); never raises.

    ``check_step_type`` is called for every task (nested ones included) to check its step
    type name and config; subworkflow specs are validated recursively and their problems
    prefixed with the subworkflow step's id.
    """
    return _validate(_Context(spec, check_step_type, 0))


def _validate(context: _Context) -> list[Problem]:
    problems: list[Problem] = []
    for check in CHECKS:
        problems.extend(check(context))
    return problems


def raise_if_invalid(problems: list[Problem]) -> None:
    """Raise :class:`DefinitionError` carrying ``problems`` when there are any."""
    if problems:
        raise DefinitionError(problems)


# -- traversal ---------------------------------------------------------------------------


def _scopes(spec: WorkflowSpec) -> Iterator[_Scope]:
    top = _Scope(spec.graph, _specs(spec.graph), _ROOT_VARIABLES, "")
    yield from _scopes_from(top)


def _scopes_from(scope: _Scope) -> Iterator[_Scope]:
    yield scope
    for step in scope.graph.steps:
        inner = _body_scope(step, scope)
        if inner is not None:
            yield from _scopes_from(inner)


def _body_scope(step: StepSpec, scope: _Scope) -> _Scope | None:
    if isinstance(step, ForeachSpec):
        extra = frozenset({step.item_name, "index"})
    elif isinstance(step, LoopSpec):
        extra = frozenset({"iteration"})
    else:
        return None
    body = step.body
    return _Scope(
        body,
        {**scope.specs, **_specs(body)},
        scope.variables | extra,
        f"{scope.prefix}{step.id}.",
    )


def _ids(graph: GraphSpec) -> frozenset[str]:
    return frozenset(step.id for step in graph.steps)


def _specs(graph: GraphSpec) -> dict[str, StepSpec]:
    return {step.id: step for step in graph.steps}


def _steps(spec: WorkflowSpec) -> Iterator[tuple[StepSpec, _Scope]]:
    for scope in _scopes(spec):
        for step in scope.graph.steps:
            yield step, scope


def _path(step: StepSpec, scope: _Scope) -> str:
    return f"{scope.prefix}{step.id}"


def _sites(spec: WorkflowSpec) -> Iterator[_Site]:
    for step, scope in _steps(spec):
        owner = _path(step, scope)
        for field, source in step_expressions(step):
            site_scope = scope
            if field == "match":  # a wait step's condition also sees the signal
                site_scope = replace(scope, variables=scope.variables | {"signal"})
                field = "wait.match"  # as written in a definition
            yield _Site(source, step.location.with_field(field), owner, site_scope)
        if isinstance(step, LoopSpec):
            inner = _body_scope(step, scope)
            assert inner is not None
            yield _Site(step.until, step.location.with_field("until"), owner, inner)


def _analysis(source: str) -> ExpressionAnalysis | None:
    try:
        return analyze(source)
    except ExpressionError:
        return None


# -- checks ------------------------------------------------------------------------------


def check_workflow_name(context: _Context) -> Iterator[Problem]:
    """The workflow name is an id: a letter or _, then letters, digits, _ or -."""
    spec = context.spec
    if not isinstance(spec.name, str) or not ID_PATTERN.fullmatch(spec.name):
        yield Problem(
            f"invalid workflow name {spec.name!r}: use letters, digits, '_' and '-', "
            "starting with a letter or '_'",
            spec.location.with_field("name"),
        )
    elif len(spec.name) > MAX_NAME_CHARS:
        yield Problem(
            f"workflow name {spec.name[:40]!r}... is {len(spec.name):,} characters long: "
            f"use at most {MAX_NAME_CHARS} characters",
            spec.location.with_field("name"),
        )


def check_step_ids(context: _Context) -> Iterator[Problem]:
    """Every step id is an id (no dots or brackets: they would break ``steps.X``)."""
    for step, scope in _steps(context.spec):
        if not isinstance(step.id, str) or not ID_PATTERN.fullmatch(step.id):
            yield Problem(
                f"invalid step id {step.id!r} in {_graph_name(scope)}: use letters, digits, "
                "'_' and '-', starting with a letter or '_'",
                step.location.with_field("id"),
            )
        elif len(step.id) > MAX_NAME_CHARS:
            yield Problem(
                f"step id {step.id[:40]!r}... in {_graph_name(scope)} is {len(step.id):,} "
                f"characters long: use at most {MAX_NAME_CHARS} characters",
                step.location.with_field("id"),
            )


def _graph_name(scope: _Scope) -> str:
    return f"the body of {scope.prefix[:-1]!r}" if scope.prefix else "the workflow"


def check_duplicate_ids(context: _Context) -> Iterator[Problem]:
    """Step ids are unique within a graph."""
    for scope in _scopes(context.spec):
        first: dict[str, StepSpec] = {}
        for step in scope.graph.steps:
            if step.id in first:
                yield Problem(
                    f"duplicate step id {step.id!r} in {_graph_name(scope)} "
                    f"(first defined at {first[step.id].location})",
                    step.location.with_field("id"),
                )
            else:
                first[step.id] = step


def check_needs(context: _Context) -> Iterator[Problem]:
    """Every ``needs`` entry names a step of the same graph."""
    known: dict[int, frozenset[str]] = {}  # each graph's ids, made once (not once per step)
    for step, scope in _steps(context.spec):
        ids = known.get(id(scope.graph))
        if ids is None:
            ids = known[id(scope.graph)] = _ids(scope.graph)
        for need in step.needs:
            if need not in ids:
                yield Problem(
                    f"step {_path(step, scope)!r} needs unknown step {need!r}"
                    + _suggest(need, ids),
                    step.location.with_field("needs"),
                )


def _suggest(name: str, known: frozenset[str] | set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_expression_syntax(context: _Context) -> Iterator[Problem]:
    """Every expression compiles, within the size and comprehension nesting limits."""
    for site in _sites(context.spec):
        try:
            analyze(site.source)
        except ExpressionError as error:
            for problem in error.problems:
                yield Problem(f"step {site.owner!r}: {problem.message}", site.location)


def check_expression_cost(context: _Context) -> Iterator[Problem]:
    """Every expression fits its cost budget with the parameters' defaults (and literals).

    Parameters without a default, step outputs and items are assumed as small as possible:
    what they make too costly is refused at run time, before evaluating.
    """
    sites = list(_sites(context.spec))
    if not sites:
        return  # nothing to cost (and the cost model is not even imported)
    params = _param_shapes(context.spec)
    if params is None:
        return
    for site in sites:
        if _analysis(site.source) is None:
            continue  # reported by check_expression_syntax
        message = over_budget_message(site.source, {"params": params})
        if message is not None:
            yield Problem(
                f"step {site.owner!r}: {message} with the parameters' defaults", site.location
            )


def _param_shapes(spec: WorkflowSpec) -> Shape | None:
    """The shape of ``params`` with every default, or None when no default is known."""
    from kaon.model.expression_cost import UNKNOWN, OverBudget, Shape, Unreadable, join, measure

    fields: dict[str, Shape] = {}
    known = False
    budget = current_budget()
    for param in spec.params:
        shape = UNKNOWN
        if not param.required:
            try:
                shape = measure(param.default, budget)
                known = True
            except (OverBudget, Unreadable):  # a computed default (an expression), say
                shape = UNKNOWN
        fields[param.name] = shape
    if not known:
        return None
    largest = functools.reduce(join, fields.values())
    return Shape("map", length=len(fields), item=largest, fields=fields)


def check_variables(context: _Context) -> Iterator[Problem]:
    """Expressions read only variables bound where they are evaluated.

    ``item`` (or the foreach's ``item_name``) and ``index`` only inside a foreach body,
    ``iteration`` only inside a loop body (a loop's ``until`` included).
    """
    for site in _sites(context.spec):
        analysis = _analysis(site.source)
        if analysis is None:
            continue
        dashed = _dashed_reads(site.source, site.scope)
        minus_parts = {part for step_id in dashed.values() for part in step_id.split("-")[1:]}
        for name in sorted(analysis.roots - site.scope.variables - minus_parts):
            yield Problem(
                f"step {site.owner!r}: expression {site.source!r}: {_unbound(name, site.scope)}",
                site.location,
            )
        for name in sorted(analysis.bound & site.scope.variables):
            yield Problem(
                f"step {site.owner!r}: expression {site.source!r}: comprehension variable "
                f"{name!r} shadows the variable of the same name",
                site.location,
            )


def _unbound(name: str, scope: _Scope) -> str:
    item_names = scope.variables - _ROOT_VARIABLES - {"index", "iteration"}
    if name == "item" and item_names:
        names = ", ".join(repr(n) for n in sorted(item_names))
        return f"variable 'item' is not bound here; the enclosing foreach item is {names}"
    if name in ("item", "index"):
        return f"variable {name!r} is only bound inside a foreach body"
    if name == "iteration":
        return "variable 'iteration' is only bound inside a loop body"
    bound = ", ".join(sorted(scope.variables))
    return f"unknown variable {name!r} (bound here: {bound})"


def check_step_references(context: _Context) -> Iterator[Problem]:
    """``steps.X`` names a step of the same graph or of an enclosing graph, by literal id."""
    all_paths = {path.rsplit(".", 1)[-1]: path for path, _ in context.spec.graph.walk()}
    for site in _sites(context.spec):
        analysis = _analysis(site.source)
        if analysis is None:
            continue
        if analysis.steps_dynamic:
            yield Problem(
                f"step {site.owner!r}: expression {site.source!r} must name steps by literal "
                'id (steps.X or steps["X"]) so their order can be known',
                site.location,
            )
        dashed = _dashed_reads(site.source, site.scope)
        for ref in sorted(analysis.step_refs - site.scope.visible):
            step_id = dashed.get(ref)
            if step_id is not None:
                yield Problem(
                    f"step {site.owner!r}: expression {site.source!r} reads step {step_id!r} "
                    f"as steps.{step_id}, which CEL takes for steps.{ref} minus "
                    f'{" minus ".join(step_id.split("-")[1:])}: write steps["{step_id}"]',
                    site.location,
                )
                continue
            yield Problem(
                f"step {site.owner!r}: expression {site.source!r} references "
                f"{_unknown_ref(ref, site.scope, all_paths)}",
                site.location,
            )


_STEPS_FIELD: Final = re.compile(r"\bsteps\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)")


def _dashed_reads(source: str, scope: _Scope) -> dict[str, str]:
    """Step ids with a ``-`` that ``source`` writes as ``steps.pre-process``, which CEL reads
    as ``steps.pre - process``: ``{what CEL takes for the step ("pre"): the step's id}``."""
    found: dict[str, str] = {}
    if "-" not in source:
        return found
    for match in _STEPS_FIELD.finditer(blank_literals(source)[0]):
        parts = match.group(1).split("-")
        for end in range(len(parts), 1, -1):  # the longest visible id it starts with
            step_id = "-".join(parts[:end])
            if step_id in scope.specs:
                found[parts[0]] = step_id
                break
    return found


def check_foreach_outputs(context: _Context) -> Iterator[Problem]:
    """``steps.X.name`` where X is a foreach: X's output is a list (one output per item),
    which has no fields, so the read would fail every run."""
    for site in _sites(context.spec):
        analysis = _analysis(site.source)
        if analysis is None or analysis.step_paths is None:
            continue
        for ref, paths in sorted(analysis.step_paths.items()):
            step = site.scope.specs.get(ref)
            fields = sorted(path[0] for path in paths if path)
            if not isinstance(step, ForeachSpec) or not fields:
                continue
            name = fields[0]
            yield Problem(
                f"step {site.owner!r}: expression {site.source!r} reads steps.{ref}.{name}, "
                f"but foreach {ref!r} gives a list (each item's output, in item order), which "
                f"has no field {name!r}; {_item_output_hint(step, ref, name)}",
                site.location,
            )


def _item_output_hint(step: ForeachSpec, ref: str, name: str) -> str:
    """How to read ``name`` of a foreach's items, from what an item's output is."""
    try:
        outputs = compile_graph(step.body).output_ids
    except KaonError:  # a broken body: reported by the checks of its own
        outputs = ()
    if outputs == (name,):
        return f"each item's output is step {name!r}'s own: steps.{ref} is the list of them"
    if len(outputs) > 1 and name not in outputs:
        ids = ", ".join(repr(o) for o in outputs)
        return f"each item's output is a map of its last steps' outputs ({ids})"
    return f"for the list of every item's {name!r} write steps.{ref}.map(i, i.{name})"


def _unknown_ref(ref: str, scope: _Scope, all_paths: Mapping[str, str]) -> str:
    hidden = all_paths.get(ref)
    if hidden is not None and "." in hidden:
        container = hidden.rsplit(".", 1)[0]
        return (
            f"step {ref!r}, which is inside the body of {container!r} and not visible "
            f"here; read the container's output instead"
        )
    return f"unknown step {ref!r}" + _suggest(ref, set(scope.visible))


def check_param_references(context: _Context) -> Iterator[Problem]:
    """``params.X`` names a declared parameter."""
    declared = frozenset(p.name for p in context.spec.params)
    for site in _sites(context.spec):
        analysis = _analysis(site.source)
        if analysis is None:
            continue
        for ref in sorted(analysis.param_refs - declared):
            yield Problem(
                f"step {site.owner!r}: expression {site.source!r} references undeclared "
                f"parameter {ref!r}" + _suggest(ref, set(declared)),
                site.location,
            )


def check_cycles(context: _Context) -> Iterator[Problem]:
    """No graph has a dependency cycle (through ``needs`` or references)."""
    for scope in _scopes(context.spec):
        deps, _external = dependencies(scope.graph, strict=False)
        _order, cycles = topological_order(deps)
        steps = scope.graph.by_id()
        for cycle in cycles:
            yield Problem(
                f"{cycle.describe(steps)} in {_graph_name(scope)}", steps[cycle.ids[0]].location
            )


def check_params(context: _Context) -> Iterator[Problem]:
    """Parameter names are identifiers, unique, and defaults match the declared type."""
    seen: set[str] = set()
    for param in context.spec.params:
        where = param.location.with_field(f"params.{param.name}")
        if not isinstance(param.name, str) or not PARAM_NAME_PATTERN.fullmatch(param.name):
            yield Problem(
                f"invalid parameter name {param.name!r}: use letters, digits and '_', "
                "starting with a letter or '_'",
                where,
            )
        if param.name in seen:
            yield Problem(f"duplicate parameter {param.name!r}", where)
        seen.add(param.name)
        wrong_choices = choice_problems(param)
        for message in wrong_choices:
            yield Problem(message, where.with_field("choices"))
        if isinstance(param.default, Expr) or param.required or wrong_choices:
            continue
        wrong = check_param_value(param, param.default)[1]
        if wrong is not None:
            if param.default is None and not param.nullable:
                wrong += " (declare it nullable to accept null)"
            yield Problem(
                f"default of parameter {param.name!r} {wrong}", where.with_field("default")
            )


def check_computed_defaults(context: _Context) -> Iterator[Problem]:
    """Computed parameter defaults read declared params only, form no cycle, and (those that
    read only other defaults) evaluate to a value of their type."""
    yield from default_problems(context.spec)


def check_retry(context: _Context) -> Iterator[Problem]:
    """Retry policies are sane (at least one attempt, no negative delay or budget, no
    ``retry_on`` name that cannot match: see :mod:`kaon.model.error_names`) and set on task
    steps only."""
    spec = context.spec
    yield from _retry_problems(
        spec.defaults.retry, "workflow defaults", spec.location.with_field("defaults.retry")
    )
    for step, scope in _steps(spec):
        if step.retry is None:
            continue
        where = step.location.with_field("retry")
        if not isinstance(step, TaskSpec):  # a container's attempts are its inner steps'
            yield Problem(
                f"step {_path(step, scope)!r}: retry applies to task steps only (a "
                f"{step.kind} step is not retried as a whole); set it on the steps inside, "
                "or in the workflow's defaults",
                where,
            )
            continue
        yield from _retry_problems(step.retry, f"step {_path(step, scope)!r}", where)


def _retry_problems(retry: RetrySpec, owner: str, where: Location) -> Iterator[Problem]:
    if not _is_int(retry.max_attempts) or not 1 <= retry.max_attempts <= MAX_ATTEMPTS:
        yield Problem(
            f"{owner}: retry max_attempts must be an int from 1 to {MAX_ATTEMPTS}, "
            f"got {retry.max_attempts!r:.40}",
            where.with_field("max_attempts"),
        )
    if not _is_int(retry.platform_attempts) or not 0 <= retry.platform_attempts <= MAX_ATTEMPTS:
        yield Problem(
            f"{owner}: retry platform_attempts must be an int from 0 to {MAX_ATTEMPTS}, "
            f"got {retry.platform_attempts!r:.40}",
            where.with_field("platform_attempts"),
        )
    for field, key in (("delay_s", "delay"), ("max_delay_s", "max_delay")):
        message = duration_problem(f"retry {key}", getattr(retry, field), positive=False)
        if message is not None:
            yield Problem(f"{owner}: {message}", where.with_field(field))
    for i, name in enumerate(retry.retry_on):
        problem = error_name_problem(name)
        if problem is not None:
            field = f"retry_on[{i}]"
            yield Problem(f"{owner}: retry.{field}: {problem}", where.with_field(field))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_timeouts(context: _Context) -> Iterator[Problem]:
    """Timeouts, when set, are positive numbers of seconds, at most :data:`MAX_DURATION_S`."""
    spec = context.spec
    candidates: list[tuple[object, str, Location]] = [
        (spec.timeout_s, "workflow", spec.location.with_field("timeout_s")),
        (
            spec.defaults.timeout_s,
            "workflow defaults",
            spec.location.with_field("defaults.timeout_s"),
        ),
    ]
    for step, scope in _steps(spec):
        where = step.location.with_field("timeout_s")
        candidates.append((step.timeout_s, f"step {_path(step, scope)!r}", where))
    for value, owner, where in candidates:
        message = None if value is None else duration_problem("timeout", value, positive=True)
        if message is not None:
            yield Problem(f"{owner}: {message}", where)


def check_resources(context: _Context) -> Iterator[Problem]:
    """Only task steps ask for resources (a container's body steps ask for their own)."""
    for step, scope in _steps(context.spec):
        if step.resources is not None and not isinstance(step, TaskSpec):
            yield Problem(
                f"step {_path(step, scope)!r}: resources apply to task steps only; "
                "set them on the steps inside",
                step.location.with_field("resources"),
            )


def check_tenancy(context: _Context) -> Iterator[Problem]:
    """``pool``, ``priority`` and ``tags`` are well formed and set on task steps only (see
    :mod:`kaon.model.tenancy`); the workflow's default pool and run priority too."""
    spec = context.spec
    checks: list[tuple[str, Any, Location]] = [
        ("pool", spec.defaults.pool, spec.location.with_field("defaults.pool")),
        ("priority", spec.priority, spec.location.with_field("priority")),
    ]
    for step, scope in _steps(spec):
        where = step.location
        for name in ("pool", "priority", "tags"):
            value = getattr(step, name)
            if value is None or value == ():
                continue
            if not isinstance(step, TaskSpec):
                yield Problem(
                    f"step {_path(step, scope)!r}: {name} applies to task steps only; "
                    "set it on the steps inside",
                    where.with_field(name),
                )
            else:
                checks.append((name, value, where.with_field(name)))
    parsers = {"pool": parse_pool, "priority": parse_priority, "tags": parse_tags}
    for name, value, where in checks:
        try:
            parsers[name](value, where)
        except DefinitionError as error:
            yield from error.problems


def check_foreach(context: _Context) -> Iterator[Problem]:
    """A foreach's concurrency is >= 1, its min_success a fraction in (0, 1], and its item
    name a free identifier."""
    for step, scope in _steps(context.spec):
        if not isinstance(step, ForeachSpec):
            continue
        path = _path(step, scope)
        if step.concurrency is not None and (not _is_int(step.concurrency) or step.concurrency < 1):
            yield Problem(
                f"foreach {path!r}: concurrency must be an int >= 1, got {step.concurrency!r}",
                step.location.with_field("concurrency"),
            )
        ratio = step.min_success
        if ratio is not None and (
            isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1
        ):
            yield Problem(
                f"foreach {path!r}: min_success must be a fraction in (0, 1] (0.8: 80 % of the "
                f"items), got {ratio!r}",
                step.location.with_field("min_success"),
            )
        name = step.item_name
        if not isinstance(name, str) or not PARAM_NAME_PATTERN.fullmatch(name):
            yield Problem(
                f"foreach {path!r}: item_name {name!r} is not an identifier",
                step.location.with_field("item_name"),
            )
        elif name in _RESERVED_ITEM_NAMES:
            yield Problem(
                f"foreach {path!r}: item_name {name!r} is reserved",
                step.location.with_field("item_name"),
            )
        elif name in scope.variables:
            # The inner name would shadow the outer one: every read of the outer item in
            # this body would silently get this foreach's item instead.
            yield Problem(
                f"foreach {path!r}: item_name {name!r} is already the item of an enclosing "
                "foreach; give this one another name",
                step.location.with_field("item_name"),
            )


def check_loops(context: _Context) -> Iterator[Problem]:
    """A loop's ``max_iterations`` is between 1 and :data:`MAX_LOOP_ITERATIONS`."""
    for step, scope in _steps(context.spec):
        if isinstance(step, LoopSpec) and (
            not _is_int(step.max_iterations) or not 1 <= step.max_iterations <= MAX_LOOP_ITERATIONS
        ):
            yield Problem(
                f"loop {_path(step, scope)!r}: max_iterations must be an int between 1 and "
                f"{MAX_LOOP_ITERATIONS}, got {step.max_iterations!r}",
                step.location.with_field("max_iterations"),
            )


def check_waits(context: _Context) -> Iterator[Problem]:
    """A wait step waits for a signal name that ``kaon signal`` and the API can send."""
    for step, scope in _steps(context.spec):
        if isinstance(step, WaitSpec) and (why := signal_name_problem(step.signal)) is not None:
            where = step.location.with_field("wait.signal")  # as written in a definition
            yield Problem(f"wait {_path(step, scope)!r}: {why}", where)


def check_empty_graphs(context: _Context) -> Iterator[Problem]:
    """The workflow and every foreach or loop body have at least one step."""
    spec = context.spec
    if not spec.graph.steps:
        yield Problem(f"workflow {spec.name!r} has no steps", spec.location.with_field("steps"))
    for step, scope in _steps(spec):
        if isinstance(step, ForeachSpec | LoopSpec) and not step.body.steps:
            yield Problem(
                f"{step.kind} {_path(step, scope)!r} has an empty body",
                step.location.with_field("body"),
            )


def check_graph_outputs(context: _Context) -> Iterator[Problem]:
    """A graph's ``output``, when set, names one of its steps."""
    spec = context.spec
    for scope in _scopes(spec):
        output = scope.graph.output
        if output and output not in _ids(scope.graph):
            where = spec.location if not scope.prefix else _container_location(spec, scope)
            yield Problem(
                f"output of {_graph_name(scope)} names unknown step {output!r}"
                + _suggest(output, _ids(scope.graph)),
                where.with_field("output"),
            )


def _container_location(spec: WorkflowSpec, scope: _Scope) -> Location:
    target = scope.prefix[:-1]
    for path, step in spec.graph.walk():
        if path == target:
            return step.location
    return spec.location


def check_subworkflows(context: _Context) -> Iterator[Problem]:
    """Subworkflows are resolved, valid, and given exactly their declared parameters."""
    for step, scope in _steps(context.spec):
        if not isinstance(step, SubworkflowSpec):
            continue
        path = _path(step, scope)
        sub = step.spec
        if sub is None:
            yield Problem(
                f"subworkflow {path!r}: workflow {step.workflow!r} is not resolved",
                step.location.with_field("workflow"),
            )
            continue
        yield from _subworkflow_inputs(step, sub, path)
        if context.depth >= MAX_SUBWORKFLOW_DEPTH:
            yield Problem(
                f"subworkflow {path!r}: nesting deeper than {MAX_SUBWORKFLOW_DEPTH} levels",
                step.location.with_field("workflow"),
            )
            continue
        inner = _Context(sub, context.check_step_type, context.depth + 1)
        for problem in _validate(inner):
            yield Problem(
                f"in subworkflow {path!r} ({sub.name}): {problem.message}", problem.location
            )


def _subworkflow_inputs(step: SubworkflowSpec, sub: WorkflowSpec, path: str) -> Iterator[Problem]:
    declared = {p.name: p for p in sub.params}
    for name in step.inputs:
        if name not in declared:
            yield Problem(
                f"subworkflow {path!r}: {sub.name!r} has no parameter {name!r}"
                + _suggest(name, set(declared)),
                step.location.with_field(f"inputs.{name}"),
            )
        else:
            value = step.inputs[name]
            param = declared[name]
            wrong = None if isinstance(value, Expr) else check_param_value(param, value.value)[1]
            if wrong is not None:
                yield Problem(
                    f"subworkflow {path!r}: parameter {name!r} {wrong}",
                    step.location.with_field(f"inputs.{name}"),
                )
    for name, param in declared.items():
        if param.required and name not in step.inputs:
            yield Problem(
                f"subworkflow {path!r}: required parameter {name!r} of {sub.name!r} is not given",
                step.location.with_field("inputs"),
            )


def check_triggers(context: _Context) -> Iterator[Problem]:
    """Triggers: cron syntax, time zones, CEL, parameters they set (see model.triggers)."""
    from kaon.model.triggers import trigger_problems

    spec = context.spec
    yield from trigger_problems(spec.triggers, frozenset(p.name for p in spec.params))


def check_step_types(context: _Context) -> Iterator[Problem]:
    """Each task's step type accepts its config (through the caller's callback)."""
    checker = context.check_step_type
    if checker is None:
        return
    for step, _scope in _steps(context.spec):
        if isinstance(step, TaskSpec):
            try:
                yield from checker(step.step_type, step.config, step.location)
            except DefinitionError as error:
                yield from error.problems


Check = Callable[[_Context], Iterator[Problem]]

CHECKS: Final[tuple[Check, ...]] = (
    check_workflow_name,
    check_step_ids,
    check_duplicate_ids,
    check_needs,
    check_expression_syntax,
    check_expression_cost,
    check_variables,
    check_step_references,
    check_foreach_outputs,
    check_param_references,
    check_cycles,
    check_params,
    check_computed_defaults,
    check_retry,
    check_timeouts,
    check_resources,
    check_tenancy,
    check_foreach,
    check_loops,
    check_waits,
    check_empty_graphs,
    check_graph_outputs,
    check_subworkflows,
    check_step_types,
    check_triggers,
)
"""Every check :func:`validate_workflow` runs, in order."""

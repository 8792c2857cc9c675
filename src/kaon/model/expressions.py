"""Safe expressions: CEL (Common Expression Language) for conditions and computed values.

A workflow file never runs arbitrary code outside a step, so every computed value is a CEL
expression, compiled by the ``common-expression-language`` package (a Rust interpreter). Python
``eval`` is never used.

**Bounded time and memory.** CEL is not Turing complete, but chained and nested
comprehensions and ``x + x`` still grow exponentially with the source, and the interpreter
cannot be interrupted. So every expression has a cost budget (:class:`ExpressionBudget`,
default 100 ms and 16 MiB, see :func:`configure_budget`): :func:`analyze` refuses a source
whose worst case is over budget whatever its inputs (:func:`static_estimate`), and
:meth:`CompiledExpression.evaluate` estimates the worst case again from the actual sizes of
the values it is given (:mod:`kaon.model.expression_cost`) and refuses to start an evaluation
over budget; one that still runs longer than twice its time budget (:data:`GUARD_FACTOR`) has
its result refused. Sources are
capped at :data:`MAX_SOURCE_LENGTH` characters and comprehension nesting at
:data:`MAX_MACRO_NESTING`.

Expressions see the root variables ``params``, ``steps``, ``item`` (or a foreach's
``item_name``), ``index``, ``iteration`` and ``run``. Kaon extends CEL's ``string()`` to every
JSON value: ``string(true)`` is ``"true"``, ``string(null)`` is ``"null"`` and lists and maps
become JSON text, so that templates such as ``"model-${{ item }}"`` work for any item.

YAML strings embed expressions as ``${{ expr }}`` (see :func:`parse_template`).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from kaon.errors import ExpressionError, Location, Problem
from kaon.model import _cel
from kaon.model.expression_budget import DEFAULT_BUDGET, ExpressionBudget
from kaon.model.specs import Const, Expr

# The cost model and the syntax tree it walks (kaon.model.expression_cost, cel_syntax,
# expression_paths) are imported when an expression is first analysed or costed: a workflow
# without expressions never loads them.
if TYPE_CHECKING:
    from kaon.model import cel_syntax
    from kaon.model.expression_cost import Estimate, LinearBound, Shape
    from kaon.model.expression_paths import StepPaths

MAX_SOURCE_LENGTH: Final = 4096
"""Longest expression source accepted, in characters."""

MAX_MACRO_NESTING: Final = 2
"""Deepest nesting of comprehension macros (``map`` inside ``filter`` is depth 2)."""

GUARD_FACTOR: Final = 2
"""An evaluation the estimate let through but that ran longer than this many times its time
budget (a very loaded machine, or an estimate too low) has its result refused."""

DEFAULT_VARIABLES: Final = frozenset({"params", "steps", "item", "index", "iteration", "run"})
"""Root variables an expression may use unless the caller allows more."""

MACROS: Final = ("map", "filter", "all", "exists", "exists_one")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MACRO_CALL = re.compile(r"\.\s*(?:" + "|".join(MACROS) + r")\s*\(")
_MACRO_BINDING = re.compile(r"\.\s*(?:" + "|".join(MACROS) + r")\s*\(\s*(" + _IDENT + r")\s*,")
_ROOT_WORD = re.compile(r"\b(steps|params)\b")
_IDENT_AT = re.compile(r"\s*(" + _IDENT + r")")
_PATH_ROOT = re.compile(r"\s*(" + _IDENT + r")")
_PATH_SEGMENT = re.compile(
    r"\s*(?:\.\s*(?P<attr>" + _IDENT + r")"
    r"|\[\s*(?:(?P<int>\d+)|\"(?P<dq>[^\"\\\n]*)\"|'(?P<sq>[^'\\\n]*)')\s*\])"
)
_RESERVED = frozenset({"true", "false", "null", "in"})
_TEMPLATE_OPEN = "${{"


@dataclass(frozen=True, slots=True)
class ExpressionAnalysis:
    """What Kaon learns once per distinct source: the program and its static facts.

    ``roots`` are the free root variables, ``bound`` the comprehension variables, and the
    ``*_refs`` / ``*_dynamic`` fields describe ``steps`` and ``params`` use (see
    :class:`CompiledExpression`).
    """

    program: Any
    tree: cel_syntax.Node
    linear: LinearBound | None
    roots: frozenset[str]
    bound: frozenset[str]
    step_refs: frozenset[str]
    param_refs: frozenset[str]
    steps_dynamic: bool
    params_dynamic: bool
    simple_path: tuple[str | int, ...] | None
    uses_string: bool
    step_paths: StepPaths | None = None


class CompiledExpression:
    """A checked, compiled CEL expression, cheap to evaluate many times.

    ``variables`` are the root names it reads; ``step_refs`` the ids ``X`` of every
    ``steps.X`` / ``steps["X"]``; ``param_refs`` the same for ``params``; ``steps_dynamic``
    is True when ``steps`` is used other than with a literal key (``steps[params.name]``),
    so its step references cannot be known before running. ``simple_path`` is set when the
    whole expression is a plain path (``steps.prepare.train``, ``item[0]``): the root
    followed by field names and list indexes. ``step_paths`` maps each referenced step to
    the field paths read under it (see :mod:`kaon.model.expression_paths`), or is None
    when they cannot be known.
    """

    __slots__ = (
        "_analysis",
        "location",
        "param_refs",
        "simple_path",
        "source",
        "step_paths",
        "step_refs",
        "steps_dynamic",
        "variables",
    )

    def __init__(self, source: str, location: Location, analysis: ExpressionAnalysis) -> None:
        self.source = source
        self.location = location
        self.variables: frozenset[str] = analysis.roots
        self.step_refs: frozenset[str] = analysis.step_refs
        self.param_refs: frozenset[str] = analysis.param_refs
        self.steps_dynamic: bool = analysis.steps_dynamic
        self.simple_path: tuple[str | int, ...] | None = analysis.simple_path
        self.step_paths: StepPaths | None = analysis.step_paths
        self._analysis = analysis

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"

    def evaluate(self, variables: Mapping[str, Any], budget: ExpressionBudget | None = None) -> Any:
        """Evaluate against ``variables`` and return a plain Python value.

        Before anything runs, the worst case is estimated from the actual sizes of the values
        read (see :mod:`kaon.model.expression_cost`); an evaluation over ``budget`` (default:
        :func:`current_budget`) is refused, and one that runs longer than
        :data:`GUARD_FACTOR` times its time budget anyway has its result refused.

        Only the root variables the expression reads are handed to CEL (and of ``steps``
        only the referenced steps), so unrelated values never need converting. Results are
        ints, floats, strings, bools, None, lists and dicts; bytes are decoded as UTF-8,
        timestamps become ISO 8601 strings and durations float seconds. A plain path
        (:attr:`simple_path`) is walked in Python without CEL; objects CEL cannot represent
        (a DataFrame reached by a path) are then returned unchanged.

        Raises :class:`ExpressionError` naming the expression and its location on any
        failure: a missing variable or key, an index out of range, no such overload,
        division by zero, overflow, or a value CEL cannot represent; or when the evaluation
        is over its budget.
        """
        path = self.simple_path
        if path is not None:
            found, value = _walk(variables, path)
            if found:
                return to_plain(value)
        budget = budget or _BUDGET[0]
        values = self._values(variables)
        self._check_cost(values, budget)
        started = time.perf_counter_ns()
        try:
            context: Any = values
            if self._analysis.uses_string:  # converts the values: may fail as execute does
                context = _cel.load().Context(values, {"string": cel_string})
            result = self._analysis.program.execute(context)
        except Exception as error:  # every CEL failure becomes an ExpressionError
            raise self._error(self._field_read(values) or _describe(error)) from error
        elapsed = time.perf_counter_ns() - started
        if elapsed > GUARD_FACTOR * budget.time_ns:
            from kaon.model.expression_cost import describe_time

            raise self._error(
                f"evaluation took {describe_time(elapsed)}, over {GUARD_FACTOR} times its "
                f"budget of {describe_time(budget.time_ns)}; its result is refused"
            )
        return to_plain(result)

    def _field_read(self, values: Mapping[str, Any]) -> str:
        """Why a path the expression reads under ``steps`` cannot be read, when it reads a
        field of a step output that has none: one that is null (a step that failed, was
        skipped or returned None), or a single value or a list (``steps.sub.d`` of a
        subworkflow whose output is its sink's ``6``). CEL's own message is then about
        overloads (``mixing int with uint or double``) or index types. Empty otherwise."""
        steps = values.get("steps")
        if not isinstance(steps, Mapping) or not self.step_paths:
            return ""
        nulls = sorted(
            step
            for step, paths in self.step_paths.items()
            if steps.get(step, ...) is None and any(paths)
        )
        if nulls:
            named = ", ".join(f"steps.{step}" for step in nulls)
            return (
                f"reads a field of {named}, which is null (a step that failed, was skipped or "
                "returned None has no output)"
            )
        for step in sorted(self.step_paths):
            for path in sorted(self.step_paths[step]):
                found = _fieldless(steps.get(step, ...), ("steps", step), path)
                if found:
                    return found
        return ""

    def estimate(self, variables: Mapping[str, Any], budget: ExpressionBudget) -> Estimate:
        """The worst-case cost of evaluating against ``variables`` (see :meth:`evaluate`).

        Raises :class:`ExpressionError` when the values alone are over ``budget``.
        """
        from kaon.model import expression_cost as cost

        try:
            shapes = cost.measure_all(self._values(variables), budget)
        except cost.OverBudget as error:
            raise self._error(f"over its budget: {error}") from None
        except cost.Unreadable as error:
            raise self._error(str(error)) from None
        return cost.estimate(self._analysis.tree, shapes)

    def _check_cost(self, values: Mapping[str, Any], budget: ExpressionBudget) -> None:
        from kaon.model import expression_cost as cost

        linear = self._analysis.linear
        try:
            if (
                linear is not None
                and linear.estimate(cost.measure_totals(values, budget)).over(budget) is None
            ):
                return  # cleared by the quick bound: no need to walk the tree
            shapes = cost.measure_all(values, budget)
        except cost.OverBudget as error:
            raise self._error(f"over its budget: {error}") from None
        except cost.Unreadable as error:
            raise self._error(str(error)) from None
        reason = cost.estimate(self._analysis.tree, shapes).over(budget)
        if reason is not None:
            raise self._error(
                f"over its budget: with these inputs it could take {reason}; "
                f"inputs: {_describe_shapes(shapes)}"
            )

    def _values(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        analysis = self._analysis
        values: dict[str, Any] = {}
        for name in analysis.roots:
            if name not in variables:
                raise self._error(f"variable {name!r} is not bound here")
            value = variables[name]
            if name == "steps" and not analysis.steps_dynamic and isinstance(value, Mapping):
                value = {ref: value[ref] for ref in analysis.step_refs if ref in value}
            elif name == "params" and not analysis.params_dynamic and isinstance(value, Mapping):
                value = {ref: value[ref] for ref in analysis.param_refs if ref in value}
            elif isinstance(value, Mapping) and not isinstance(value, dict):
                value = dict(value)
            values[name] = value
        return values

    def _error(self, message: str) -> ExpressionError:
        return ExpressionError(Problem(f"expression {self.source!r}: {message}", self.location))


def compile_expression(
    source: str,
    location: Location = Location(),
    *,
    variables: Collection[str] | None = None,
) -> CompiledExpression:
    """Compile and check ``source``; results are cached per (source, location, variables).

    ``variables`` are the allowed root names in addition to :data:`DEFAULT_VARIABLES` (a
    foreach's custom ``item_name``, say).

    Raises :class:`ExpressionError` (at ``location``) when the source is not valid CEL (the
    message quotes the parser's error), is longer than :data:`MAX_SOURCE_LENGTH`, nests
    comprehensions deeper than :data:`MAX_MACRO_NESTING`, reads a root variable that is
    not allowed, or binds a comprehension variable that shadows an allowed root name.
    """
    allowed = DEFAULT_VARIABLES if not variables else DEFAULT_VARIABLES | frozenset(variables)
    return _compile_cached(source, location, allowed, _BUDGET[0])


@functools.lru_cache(maxsize=8192)
def _compile_cached(
    source: str, location: Location, allowed: frozenset[str], budget: ExpressionBudget
) -> CompiledExpression:
    try:
        analysis = analyze(source)
    except ExpressionError as error:
        raise ExpressionError([Problem(p.message, location) for p in error.problems]) from None
    problems = check_roots(analysis, allowed)
    if problems:
        raise ExpressionError([Problem(f"expression {source!r}: {p}", location) for p in problems])
    return CompiledExpression(source, location, analysis)


def check_roots(analysis: ExpressionAnalysis, allowed: Collection[str]) -> list[str]:
    """Messages for root variables outside ``allowed`` and for shadowing macro variables."""
    messages = [
        f"unknown variable {name!r} (allowed: {', '.join(sorted(allowed))})"
        for name in sorted(analysis.roots)
        if name not in allowed
    ]
    messages.extend(
        f"comprehension variable {name!r} shadows the variable of the same name"
        for name in sorted(analysis.bound)
        if name in allowed
    )
    return messages


_BUDGET: list[ExpressionBudget] = [DEFAULT_BUDGET]


def configure_budget(budget: ExpressionBudget) -> None:
    """Set the budget every expression of this process is held to (the settings do, once,
    at start-up; see ``KAON_EXPRESSION_TIME_MS`` and ``KAON_EXPRESSION_MAX_BYTES``)."""
    _BUDGET[0] = budget


def current_budget() -> ExpressionBudget:
    """The budget expressions are held to in this process."""
    return _BUDGET[0]


def static_estimate(source: str, shapes: Mapping[str, Shape] | None = None) -> Estimate:
    """The worst-case cost of ``source`` with variables of the given shapes; variables not
    given are assumed as small as possible (:data:`~kaon.model.expression_cost.UNKNOWN`).

    Raises :class:`ExpressionError` when ``source`` does not compile.
    """
    from kaon.model.expression_cost import estimate

    return estimate(_analyze_cached(source).tree, shapes or {}, convert=False)


def over_budget_message(
    source: str, shapes: Mapping[str, Shape] | None = None, budget: ExpressionBudget | None = None
) -> str | None:
    """Why ``source`` is over ``budget`` for any input of at least the given shapes, or None.

    Raises :class:`ExpressionError` when ``source`` does not compile.
    """
    budget = budget or _BUDGET[0]
    reason = static_estimate(source, shapes).over(budget)
    if reason is None:
        return None
    return f"expression {source!r:.200} is over its budget: it could take {reason}"


def analyze(source: str) -> ExpressionAnalysis:
    """Compile ``source`` and compute its static facts (no check of allowed variables).

    Raises :class:`ExpressionError` without a location on syntax errors, a source longer
    than :data:`MAX_SOURCE_LENGTH`, comprehensions nested deeper than
    :data:`MAX_MACRO_NESTING`, or a worst-case cost over the budget whatever the inputs
    (:func:`over_budget_message`). Callers that know a location should use
    :func:`compile_expression`.
    """
    analysis = _analyze_cached(source)
    message = _static_check(source, _BUDGET[0])
    if message is not None:
        raise ExpressionError(message)
    return analysis


@functools.lru_cache(maxsize=8192)
def _static_check(source: str, budget: ExpressionBudget) -> str | None:
    return over_budget_message(source, None, budget)


@functools.lru_cache(maxsize=8192)
def _analyze_cached(source: str) -> ExpressionAnalysis:
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be a string, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(
            f"expression is {len(source)} characters long; the limit is {MAX_SOURCE_LENGTH}"
        )
    try:
        program = _cel.load().compile(source)  # loaded on first use
        names = frozenset(program.variables())
        uses_string = "string" in program.functions()
    except Exception as error:  # ValueError from the parser, others from encoding
        detail = f"{error}" if isinstance(error, ValueError) else f"{source!r}: {error}"
        hint = _reserved_field_hint(source)
        raise ExpressionError(f"invalid expression: {_one_line(detail)}{hint}") from None
    from kaon.model import cel_syntax
    from kaon.model.expression_cost import linear_bound
    from kaon.model.expression_paths import step_paths

    try:
        tree = cel_syntax.parse(source)
    except cel_syntax.CelSyntaxError as error:
        raise ExpressionError(f"expression {source!r:.200} cannot be costed: {error}") from None
    blanked, literals = blank_literals(source)
    depth = _macro_depth(blanked)
    if depth > MAX_MACRO_NESTING:
        raise ExpressionError(
            f"expression {source!r} nests comprehensions {depth} deep; "
            f"the limit is {MAX_MACRO_NESTING}"
        )
    bound = frozenset(m.group(1) for m in _MACRO_BINDING.finditer(blanked))
    step_refs, steps_dynamic = _root_refs(blanked, literals, "steps")
    param_refs, params_dynamic = _root_refs(blanked, literals, "params")
    return ExpressionAnalysis(
        program=program,
        tree=tree,
        linear=linear_bound(tree),
        roots=names - bound,
        bound=bound & names,
        step_refs=step_refs,
        param_refs=param_refs,
        steps_dynamic=steps_dynamic,
        params_dynamic=params_dynamic,
        simple_path=_simple_path(source, names - bound),
        uses_string=uses_string,
        step_paths=None if steps_dynamic else step_paths(tree, bound & names, step_refs),
    )


# Words CEL's grammar keeps for itself: ``params.in`` or ``steps.check.true`` cannot be
# parsed, though a parameter or an output may be named so (read as ``params["in"]``).
CEL_KEYWORDS: Final = frozenset({"false", "in", "null", "true"})
_RESERVED_FIELD = re.compile(
    r"\b((?:params|steps|item|run|signal)(?:\.[A-Za-z_]\w*)*)\s*\.\s*("
    + "|".join(sorted(CEL_KEYWORDS))
    + r")\b"
)


def _reserved_field_hint(source: str) -> str:
    """For an expression that does not parse: how to read a field named by a reserved word
    (``params.in`` -> ``params["in"]``), or ""."""
    found = _RESERVED_FIELD.search(blank_literals(source)[0])
    if found is None:
        return ""
    head, word = found.group(1), found.group(2)
    return f' ({word!r} is a reserved word of CEL: write {head}["{word}"] for {head}.{word})'


def blank_literals(source: str) -> tuple[str, dict[int, str]]:
    """Blank out string/bytes literal contents and comments, keeping every offset.

    Returns the blanked text (quotes kept, contents replaced by spaces) and a map from the
    offset where each literal starts (its prefix, else its opening quote) to its full text.
    """
    out = list(source)
    literals: dict[int, str] = {}
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "/" and source.startswith("//", i):
            end = source.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
            continue
        if ch not in "\"'":
            i += 1
            continue
        prefix = _literal_prefix(source, i)
        quote = ch * 3 if source.startswith(ch * 3, i) else ch
        end = _literal_end(source, i + len(quote), quote, raw="r" in prefix.lower())
        literals[i - len(prefix)] = source[i - len(prefix) : end]
        for pos in range(i + len(quote), max(end - len(quote), i + len(quote))):
            out[pos] = " "
        i = end
    return "".join(out), literals


def _literal_prefix(source: str, quote_at: int) -> str:
    start = quote_at
    while start > 0 and source[start - 1] in "rRbB" and quote_at - start < 2:
        start -= 1
    if start > 0 and (source[start - 1].isalnum() or source[start - 1] == "_"):
        return ""
    return source[start:quote_at]


def _literal_end(source: str, pos: int, quote: str, *, raw: bool) -> int:
    n = len(source)
    while pos < n:
        if not raw and source[pos] == "\\":
            pos += 2
            continue
        if source.startswith(quote, pos):
            return pos + len(quote)
        if len(quote) == 1 and source[pos] == "\n":
            return pos
        pos += 1
    return n


def _macro_depth(blanked: str) -> int:
    macro_parens = {m.end() - 1 for m in _MACRO_CALL.finditer(blanked)}
    if not macro_parens:
        return 0
    stack: list[bool] = []
    depth = deepest = 0
    for pos, ch in enumerate(blanked):
        if ch in "([{":
            is_macro = pos in macro_parens
            stack.append(is_macro)
            if is_macro:
                depth += 1
                deepest = max(deepest, depth)
        elif ch in ")]}" and stack and stack.pop():
            depth -= 1
    return deepest


def _root_refs(blanked: str, literals: Mapping[int, str], root: str) -> tuple[frozenset[str], bool]:
    """Keys ``X`` of ``root.X`` / ``root["X"]`` and whether ``root`` is used otherwise."""
    refs: set[str] = set()
    dynamic = False
    for match in _ROOT_WORD.finditer(blanked):
        if match.group(1) != root or _preceded_by_dot(blanked, match.start()):
            continue
        key = _static_key(blanked, literals, match.end())
        if key is None:
            dynamic = True
        else:
            refs.add(key)
    return frozenset(refs), dynamic


def _preceded_by_dot(text: str, pos: int) -> bool:
    pos -= 1
    while pos >= 0 and text[pos].isspace():
        pos -= 1
    return pos >= 0 and text[pos] == "."


def _static_key(blanked: str, literals: Mapping[int, str], pos: int) -> str | None:
    n = len(blanked)
    while pos < n and blanked[pos].isspace():
        pos += 1
    if pos < n and blanked[pos] == ".":
        match = _IDENT_AT.match(blanked, pos + 1)
        return match.group(1) if match else None
    if pos < n and blanked[pos] == "[":
        pos += 1
        while pos < n and blanked[pos].isspace():
            pos += 1
        literal = literals.get(pos)
        if literal is None:
            return None
        close = pos + len(literal)
        while close < n and blanked[close].isspace():
            close += 1
        if close >= n or blanked[close] != "]":
            return None
        value = _literal_value(literal)
        return value if isinstance(value, str) else None
    return None


@functools.lru_cache(maxsize=1024)
def _literal_value(literal: str) -> Any:
    try:
        return _cel.load().compile(literal).execute({})
    except Exception:  # not a plain string literal: the key is dynamic
        return None


def _simple_path(source: str, roots: frozenset[str]) -> tuple[str | int, ...] | None:
    match = _PATH_ROOT.match(source)
    if match is None or match.group(1) in _RESERVED or match.group(1) not in roots:
        return None
    path: list[str | int] = [match.group(1)]
    pos = match.end()
    while True:
        segment = _PATH_SEGMENT.match(source, pos)
        if segment is None:
            break
        if segment.group("int") is not None:
            path.append(int(segment.group("int")))
        else:
            path.append(next(g for g in segment.group("attr", "dq", "sq") if g is not None))
        pos = segment.end()
    if source[pos:].strip():
        return None
    return tuple(path)


def _walk(variables: Mapping[str, Any], path: tuple[str | int, ...]) -> tuple[bool, Any]:
    """Follow ``path`` in Python; ``(False, None)`` when CEL must decide (and explain)."""
    value: Any = variables
    for key in path:
        if isinstance(value, Mapping):
            if key not in value:
                return False, None
            value = value[key]
        elif isinstance(value, list | tuple) and isinstance(key, int):
            if key >= len(value):
                return False, None
            value = value[key]
        else:
            return False, None
    return True, value


_SCALARS: Final = (str, int, float, bool, type(None))


def to_plain(value: Any) -> Any:
    """Convert a CEL result to plain Python; containers are rebuilt only when needed."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        items = [to_plain(v) for v in value]
        if kind is list and all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    if kind is dict:
        converted = {k: to_plain(v) for k, v in value.items()}
        if all(converted[k] is v for k, v in value.items()):
            return value
        return converted
    return _convert_special(value)


def _convert_special(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    interpreter = _cel.loaded()  # a value of CEL's own types exists only once it is loaded
    if interpreter is not None and isinstance(value, interpreter.OptionalValue):
        return to_plain(value.value()) if value.has_value() else None
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def cel_string(value: Any) -> str:
    """Kaon's ``string()`` for values CEL's own ``string()`` rejects (bool, null, list, map)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    plain = to_plain(value)
    if isinstance(plain, str):
        return plain
    return json.dumps(plain, ensure_ascii=False, default=str)


def _describe_shapes(shapes: Mapping[str, Shape]) -> str:
    parts = []
    for name, shape in sorted(shapes.items()):
        unit = {"list": "items", "map": "entries", "string": "characters", "bytes": "bytes"}
        if shape.kind in unit:
            parts.append(f"{name} ({shape.length:,} {unit[shape.kind]}, {shape.nodes:,} values)")
        else:
            parts.append(name)
    return ", ".join(parts) if parts else "none"


_PARSER_WHERE = re.compile(r"ERROR: <input>:(\d+):(\d+): ")


def _one_line(detail: str) -> str:
    """The parser's message on one line: its first line (the source and a caret under it
    follow), with ``<input>:1:4`` said as ``at line 1, column 4``."""
    first = detail.splitlines()[0] if detail else detail
    return _PARSER_WHERE.sub(lambda m: f"at line {m[1]}, column {m[2]}: ", first)


def _fieldless(value: Any, reached: tuple[str, ...], path: tuple[str, ...]) -> str:
    """``reads steps.t.d, but steps.t is an int (6), which has no field 'd'`` when walking
    ``path`` from ``value`` meets a single value or a list before its last field; empty
    when the path can be walked, or stops at a missing key (CEL names it) or at a value of
    another kind."""
    for position, key in enumerate(path):
        if isinstance(value, Mapping):
            if key not in value:
                return ""
            value = value[key]
            continue
        if isinstance(value, bool):
            kind = "a bool"
        elif isinstance(value, int):
            kind = "an int"
        elif isinstance(value, float):
            kind = "a float"
        elif isinstance(value, str):
            kind = "a str"
        elif isinstance(value, list | tuple):
            kind = f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
        else:
            return ""
        shown = repr(to_plain(value))
        if len(shown) > 60:
            shown = shown[:57] + "..."
        full = ".".join((*reached, *path))
        here = ".".join((*reached, *path[:position]))
        return f"reads {full}, but {here} is {kind} ({shown}), which has no field {key!r}"
    return ""


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"no such key {error.args[0]!r}" if error.args else "no such key"
    if isinstance(error, IndexError):
        return f"index out of range ({error})"
    return f"{type(error).__name__}: {error}"


def truthy(value: Any, source: str = "", location: Location = Location()) -> bool:
    """Return a condition's result, which must be a bool (CEL does no truthiness).

    Raises :class:`ExpressionError` ("condition must be a bool, got int") otherwise.
    """
    if isinstance(value, bool):
        return value
    where = f"condition {source!r}" if source else "condition"
    raise ExpressionError(
        Problem(f"{where} must be a bool, got {_type_name(value)}: {value!r:.80}", location)
    )


def _type_name(value: Any) -> str:
    names: dict[type, str] = {type(None): "null", dict: "map", list: "list", str: "string"}
    return names.get(type(value), type(value).__name__)


def parse_template(text: str, location: Location = Location()) -> Const | Expr:
    """Turn a YAML string into a :class:`Const` or an :class:`Expr`.

    ``"${{ e }}"`` alone becomes ``Expr("e")`` (its value keeps its type); text around or
    between ``${{ }}`` becomes one string-building expression (``"a-" + string(e)``); a
    string without ``${{`` stays ``Const(text)``. The closing ``}}`` is the first one
    outside string literals and balanced braces, so map literals may appear inside.

    Raises :class:`ExpressionError` on an unclosed ``${{``, an empty one, or an embedded
    expression that is not valid CEL (checked here so the message quotes the user's text).
    """
    if _TEMPLATE_OPEN not in text:
        return Const(text)
    if not _is_encodable(text):
        raise ExpressionError(Problem(f"template {text!r:.200} is not valid Unicode", location))
    pieces: list[tuple[bool, str]] = []  # (is_expression, text)
    pos = 0
    while True:
        start = text.find(_TEMPLATE_OPEN, pos)
        if start < 0:
            break
        if start > pos:
            pieces.append((False, text[pos:start]))
        body_start = start + len(_TEMPLATE_OPEN)
        end = _template_close(text, body_start)
        if end < 0:
            raise ExpressionError(Problem(f"unclosed '${{{{' in {text!r:.200}", location))
        pieces.append((True, _checked_piece(text[body_start:end], text, location)))
        pos = end + 2
    if pos < len(text):
        pieces.append((False, text[pos:]))
    if len(pieces) == 1 and pieces[0][0]:
        return Expr(pieces[0][1])
    return Expr(" + ".join(f"string({s})" if is_expr else _cel_quote(s) for is_expr, s in pieces))


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _template_close(text: str, pos: int) -> int:
    """Offset of the ``}}`` that closes a ``${{`` body starting at ``pos``, or -1."""
    depth = 0
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch in "\"'":
            pos = _literal_end(text, pos + 1, ch, raw=False)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return pos if text.startswith("}}", pos) else -1
            depth -= 1
        pos += 1
    return -1


def _checked_piece(body: str, text: str, location: Location) -> str:
    source = body.strip()
    if not source:
        raise ExpressionError(Problem(f"empty '${{{{ }}}}' in {text!r:.200}", location))
    try:
        analyze(source)
    except ExpressionError as error:
        raise ExpressionError([Problem(p.message, location) for p in error.problems]) from None
    return source


_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _cel_quote(text: str) -> str:
    """A CEL double-quoted string literal whose value is ``text``."""
    out: list[str] = []
    for ch in text:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'

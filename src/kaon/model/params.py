"""Binding run parameters: defaults, unknown names, required values and declared types.

The CLI passes ``-p key=value`` strings (:func:`parse_assignments`, then :func:`bind_params`
with ``from_strings=True``); the API and triggers pass JSON values.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from kaon.errors import ExpressionError, Location, ParameterError, Problem
from kaon.model.specs import Expr, ParamSpec, ParamType, WorkflowSpec

if TYPE_CHECKING:
    from kaon.model.expressions import CompiledExpression


def compile_expression(source: str, location: Location = Location()) -> CompiledExpression:
    """:func:`kaon.model.expressions.compile_expression`, imported when a computed default
    is first met: parsing ``-p`` assignments must not load the CEL engine (start-up)."""
    from kaon.model.expressions import compile_expression as compile_cel

    return compile_cel(source, location)


TRUE_WORDS: Final = frozenset({"true", "1", "yes"})
FALSE_WORDS: Final = frozenset({"false", "0", "no"})
MAX_VALUE_BYTES: Final = 1_000_000  # the largest parameter value (UTF-8 bytes of its JSON)
MAX_VALUE_DEPTH: Final = 32  # how deep a value may nest (lists and objects), as stored values
INT_MIN: Final = -(2**63)  # an int parameter's range: a signed 64-bit integer, as in CEL
INT_MAX: Final = 2**63 - 1


def strict_json(text: str) -> Any:
    """Parse standard JSON only: ``NaN``, ``Infinity`` and ``-Infinity`` are refused, and so
    is a document nested deeper than :data:`MAX_VALUE_DEPTH`.

    Raises ValueError for text that is not standard JSON.
    """

    def refuse(word: str) -> Any:
        raise ValueError(f"{word} is not a JSON value")

    def finite(digits: str) -> float:
        number = float(digits)
        if not math.isfinite(number):  # 1e999: no standard JSON reader can hold it
            raise ValueError(f"{digits} is out of range of a float (not a finite JSON number)")
        return number

    try:
        value = json.loads(text, parse_constant=refuse, parse_float=finite)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_VALUE_DEPTH} levels") from None
    if _depth(value) > MAX_VALUE_DEPTH:
        raise ValueError(f"nested deeper than {MAX_VALUE_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """How deep ``value`` nests (a scalar: 0; ``[1]``: 1), counted without recursion; stops
    counting past :data:`MAX_VALUE_DEPTH`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_VALUE_DEPTH:
                break
            stack.extend(
                (child, depth) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def json_problem(value: Any, *, limit: int = MAX_VALUE_BYTES) -> str | None:
    """Why ``value`` cannot be stored as standard JSON of at most ``limit`` bytes, or None.

    Refuses non-finite floats anywhere inside it (they have no JSON form), values nested
    deeper than :data:`MAX_VALUE_DEPTH` and values whose JSON text is larger than ``limit``.
    """
    if _depth(value) > MAX_VALUE_DEPTH:
        return f"nested deeper than {MAX_VALUE_DEPTH} levels"
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except ValueError:
        return "NaN and Infinity are not JSON values"
    except (TypeError, RecursionError) as error:
        return f"not a JSON value ({error})"
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        return f"value is {size:,} bytes, more than the limit of {limit:,}"
    return None


def bind_params(
    spec: WorkflowSpec, given: Mapping[str, Any], *, from_strings: bool = False
) -> dict[str, Any]:
    """Return every declared parameter's value: the given one, else the default.

    Values are checked against the declared type; ints are accepted for floats (and
    become floats), tuples for lists. With ``from_strings`` string values are first
    coerced to the declared type (see :func:`coerce_string`). The result follows the
    declaration order; list and dict defaults are copied so runs never share them.

    Raises :class:`ParameterError` listing every problem (unknown names, with close
    matches suggested; missing required values; wrong types), each at field
    ``params.<name>``.
    """
    problems: list[Problem] = []
    declared = {p.name: p for p in spec.params}
    computed: list[ParamSpec] = []
    for name in given:
        if name not in declared:
            problems.append(Problem(_unknown_message(name, declared), _where(name)))
    bound: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            value, problem = _bind_one(param, given[name], from_strings=from_strings)
            if problem is not None:
                problems.append(problem)
            else:
                bound[name] = value
        elif param.required:
            problems.append(Problem(f"missing required parameter {name!r}", _where(name)))
        elif isinstance(param.default, Expr):
            computed.append(param)
        else:  # as a given value is: an int default of a float is a float (2 -> 2.0)
            bound[name] = convert_value(copy.deepcopy(param.default), param.type)[0]
    if computed and not problems:
        problems.extend(_compute_defaults(spec, computed, bound))
    if problems:
        raise ParameterError(problems)
    return {p.name: bound[p.name] for p in spec.params if p.name in bound}


def rebind_params(
    spec: WorkflowSpec,
    bound: Mapping[str, Any],
    changes: Mapping[str, Any],
    *,
    from_strings: bool = False,
) -> dict[str, Any]:
    """A run's parameters ``bound`` with ``changes`` made (``kaon continue -p``), checked as
    :func:`bind_params` does. A computed default that still holds the value it was computed
    to is computed again from the changed values (``width`` follows a new ``k``); one the run
    was given (another value) keeps it. Raises :class:`ParameterError`."""
    kept = dict(bound)
    for param in spec.params:
        name = param.name
        if not isinstance(param.default, Expr) or name in changes or name not in bound:
            continue
        # Computed from the run's other values (each one as the run had it): the same value
        # means it was computed (or given as what it would have been), so it follows them.
        others = {k: v for k, v in bound.items() if k != name}
        try:
            computed = bind_params(spec, others).get(name)
        except ParameterError:
            continue
        if computed == bound[name]:
            del kept[name]
    return bind_params(spec, {**kept, **changes}, from_strings=from_strings)


def computed_default_problems(spec: WorkflowSpec) -> list[Problem]:
    """Problems of the computed defaults: not CEL, reading anything but declared ``params``,
    or depending on themselves (each located at the parameter's ``default``)."""
    problems: list[Problem] = []
    declared = {p.name for p in spec.params}
    reads: dict[str, frozenset[str]] = {}
    for param in spec.params:
        if not isinstance(param.default, Expr):
            continue
        where = _default_at(param)
        try:
            compiled = compile_expression(param.default.source, where)
        except ExpressionError as error:
            problems.extend(error.problems)
            continue
        if compiled.variables - {"params"} or compiled.steps_dynamic:
            others = ", ".join(sorted(compiled.variables - {"params"}))
            problems.append(
                Problem(f"a computed default may read params only, not {others}", where)
            )
            continue
        unknown = sorted(compiled.param_refs - declared)
        if unknown:
            names = ", ".join(repr(u) for u in unknown)
            problems.append(Problem(f"computed default reads unknown parameter {names}", where))
        reads[param.name] = compiled.param_refs & declared
    problems.extend(_cycle_problems(spec, reads))
    return problems


def default_problems(spec: WorkflowSpec) -> list[Problem]:
    """:func:`computed_default_problems`, then what a run given no value would meet: each
    computed default that reads only other defaults (not a required parameter, known only
    when a run is made) evaluated from them, and checked against its declared type."""
    problems = computed_default_problems(spec)
    bound = {
        p.name: convert_value(copy.deepcopy(p.default), p.type)[0]
        for p in spec.params
        if not p.required and not isinstance(p.default, Expr)
    }
    # The defaults each computed one reads; one that does not compile, or reads more than
    # params, is a problem found above and never ready (nor, then, are those reading it):
    # a problem of some defaults does not hide one of another, each is listed.
    waiting: dict[str, tuple[ParamSpec, frozenset[str]]] = {}
    for param in spec.params:
        if isinstance(param.default, Expr):
            try:
                compiled = compile_expression(param.default.source)
            except ExpressionError:
                continue
            if compiled.variables <= {"params"} and not compiled.steps_dynamic:
                waiting[param.name] = (param, compiled.param_refs)
    known, evaluable = set(bound), []
    while True:
        ready = [p for p, reads in waiting.values() if reads <= known]
        if not ready:
            break
        for param in ready:
            evaluable.append(param)
            known.add(param.name)
            del waiting[param.name]
    return problems + (_evaluate_defaults(evaluable, bound) if evaluable else [])


def _default_at(param: ParamSpec) -> Location:
    return param.location.with_field(f"params.{param.name}.default")


def _cycle_problems(spec: WorkflowSpec, reads: Mapping[str, frozenset[str]]) -> list[Problem]:
    problems: list[Problem] = []
    by_name = {p.name: p for p in spec.params}
    for start in reads:
        path = _cycle_from(start, reads, [start])
        if path is not None and start == min(path[:-1]):  # report each cycle once
            chain = " -> ".join(path)
            problems.append(
                Problem(
                    f"computed defaults depend on each other: {chain}", _default_at(by_name[start])
                )
            )
    return problems


def _cycle_from(
    start: str, reads: Mapping[str, frozenset[str]], path: list[str]
) -> list[str] | None:
    for name in sorted(reads.get(path[-1], ())):
        if name == start:
            return [*path, name]
        if name in reads and name not in path:
            found = _cycle_from(start, reads, [*path, name])
            if found is not None:
                return found
    return None


def _compute_defaults(
    spec: WorkflowSpec, computed: list[ParamSpec], bound: dict[str, Any]
) -> list[Problem]:
    """Evaluate the computed defaults in dependency order into ``bound``."""
    problems = computed_default_problems(spec)
    if problems:
        return problems
    return _evaluate_defaults(computed, bound)


def _evaluate_defaults(computed: list[ParamSpec], bound: dict[str, Any]) -> list[Problem]:
    """Evaluate ``computed`` (defaults that compile and read only params) in dependency
    order into ``bound``; the problems of the first round that has any."""
    problems: list[Problem] = []
    pending = {p.name: p for p in computed}
    while pending:
        ready = [
            p
            for p in pending.values()
            if not (compile_expression(p.default.source).param_refs & set(pending))
        ]
        for param in ready:
            del pending[param.name]
            where = _default_at(param)
            try:
                value = compile_expression(param.default.source, where).evaluate({"params": bound})
            except ExpressionError as error:
                problems.extend(error.problems)
                continue
            converted, wrong = check_param_value(param, value)
            if wrong is not None:
                problems.append(
                    Problem(f"computed default of parameter {param.name!r} {wrong}", where)
                )
                continue
            bound[param.name] = converted
        if problems:
            return problems
    return problems


def _where(name: str) -> Location:
    return Location(field=f"params.{name}")


def _unknown_message(name: str, declared: Mapping[str, ParamSpec]) -> str:
    message = f"unknown parameter {name!r}"
    close = difflib.get_close_matches(str(name), list(declared), n=3)
    if close:
        message += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif declared:
        message += f" (declared: {', '.join(declared)})"
    else:
        message += " (the workflow declares no parameters)"
    return message


def _bind_one(param: ParamSpec, value: Any, *, from_strings: bool) -> tuple[Any, Problem | None]:
    if from_strings and isinstance(value, str):
        try:
            value = (
                None
                if param.nullable and value.strip() == "null"
                else coerce_string(value, param.type)
            )
        except ValueError as error:
            return None, Problem(f"parameter {param.name!r}: {error}", _where(param.name))
    converted, wrong = check_param_value(param, value)
    if wrong is not None:
        return None, Problem(f"parameter {param.name!r} {wrong}", _where(param.name))
    problem = json_problem(converted)
    if problem is not None:
        return None, Problem(f"parameter {param.name!r}: {problem}", _where(param.name))
    return converted, None


def type_text(param: ParamSpec) -> str:
    """The declared type as messages and forms name it: ``float``, ``float or null``."""
    return f"{param.type.value} or null" if param.nullable else param.type.value


def check_param_value(param: ParamSpec, value: Any) -> tuple[Any, str | None]:
    """``value`` as parameter ``param`` holds it (converted as :func:`convert_value` does),
    and what is wrong with it (``"must be one of ..."``, to follow the parameter's name), or
    None: of the declared type, or ``None`` when the parameter is nullable, and one of its
    choices when it has any."""
    if value is None and param.nullable:
        return None, None
    converted, ok = convert_value(value, param.type)
    if not ok:
        if param.type is ParamType.INT and type(value) is int:
            return value, f"must be an int of 64 bits, got {value!r:.80}"
        return value, (
            f"must be of type {type_text(param)}, got {type(value).__name__} {value!r:.80}"
        )
    if param.choices and not any(_same(converted, c, param.type) for c in param.choices):
        listed = ", ".join(repr(c) for c in param.choices[:20])
        more = f" (and {len(param.choices) - 20} more)" if len(param.choices) > 20 else ""
        message = f"must be one of {listed}{more}; got {converted!r:.80}"
        if isinstance(converted, str):
            words = [c for c in param.choices if isinstance(c, str)]
            close = difflib.get_close_matches(converted, words, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        return value, message
    return converted, None


def _same(value: Any, choice: Any, declared: ParamType) -> bool:
    """``value`` (converted) is ``choice``: compared as the type holds them (the choice ``1``
    of a float is ``1.0``), a bool never equal to a number."""
    choice = convert_value(choice, declared)[0]
    return isinstance(value, bool) == isinstance(choice, bool) and bool(value == choice)


def choice_problems(param: ParamSpec) -> list[str]:
    """What is wrong with ``param``'s ``choices``: one not of its type, one listed twice."""
    problems = []
    seen: list[Any] = []
    for choice in param.choices:
        if choice is None or not matches_type(choice, param.type):
            hint = " (declare it nullable to accept null)" if choice is None else ""
            if choice is None and param.nullable:
                hint = " (a nullable parameter takes null beside its choices)"
            problems.append(
                f"choice {choice!r:.80} of parameter {param.name!r} is not of its type "
                f"{param.type.value}{hint}"
            )
        elif any(_same(convert_value(choice, param.type)[0], s, param.type) for s in seen):
            problems.append(f"choice {choice!r:.80} of parameter {param.name!r} is listed twice")
        else:
            seen.append(choice)
    return problems


def convert_value(value: Any, declared: ParamType) -> tuple[Any, bool]:
    """Check ``value`` against ``declared``; return ``(normalized value, ok)``.

    bool is not an int; ints are floats (converted); tuples are lists (converted); a dict
    must have string keys. ``any`` accepts everything. An integer or real number of another
    type (``numpy.int64``, ``numpy.float32`` from a notebook) is taken as the Python int or
    float of the same value.
    """
    if declared is ParamType.ANY:
        return value, True
    if declared is ParamType.STR:
        return value, isinstance(value, str)
    if declared is ParamType.BOOL:
        return value, isinstance(value, bool)
    if declared is ParamType.INT:  # 64 bits, as expressions (CEL) count: no silent float
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            return value, False
        value = int(value)
        return value, INT_MIN <= value <= INT_MAX
    if declared is ParamType.FLOAT:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return (float(value) if ok else value), ok
    if declared is ParamType.LIST:
        ok = isinstance(value, list | tuple)
        return (list(value) if ok else value), ok
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return dict(value), True
    return value, False


def matches_type(value: Any, declared: ParamType) -> bool:
    """True when ``value`` is acceptable for a parameter of type ``declared``."""
    return convert_value(value, declared)[1]


def coerce_string(text: str, declared: ParamType) -> Any:
    """Parse a command-line string as a value of type ``declared``.

    int and float use Python's syntax (floats must be finite); bool accepts
    true/false/1/0/yes/no in any case; list and dict take JSON; ``any`` takes JSON and
    falls back to the raw string; str keeps the text. Raises ValueError when the text
    does not parse.
    """
    if declared is ParamType.STR:
        return text
    if declared is ParamType.INT:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"expected an int, got {text!r}") from None
    if declared is ParamType.FLOAT:
        return _parse_float(text)
    if declared is ParamType.BOOL:
        return _parse_bool(text)
    if declared is ParamType.ANY:
        try:
            return strict_json(text)
        except ValueError:
            return text
    return _parse_json_container(text, declared)


def _parse_float(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a float, got {text!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite float, got {text!r}")
    return number


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected a bool (true/false/1/0/yes/no), got {text!r}")


def _parse_json_container(text: str, declared: ParamType) -> Any:
    wanted = list if declared is ParamType.LIST else dict
    try:
        value = strict_json(text)
    except ValueError as error:
        raise ValueError(f"expected a JSON {declared.value}, got {text!r} ({error})") from None
    if not isinstance(value, wanted):
        raise ValueError(f"expected a JSON {declared.value}, got {text!r}")
    return value


def parse_assignments(items: list[str]) -> dict[str, str]:
    """Split command-line ``key=value`` items (at the first ``=``) into a dict.

    Raises :class:`ParameterError` listing every item without ``=``, with an empty key,
    or repeating a key.
    """
    result: dict[str, str] = {}
    problems: list[Problem] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            problems.append(Problem(f"expected key=value, got {item!r}"))
        elif not key:
            problems.append(Problem(f"missing parameter name in {item!r}"))
        elif key in result:
            problems.append(Problem(f"parameter {key!r} given twice", _where(key)))
        else:
            result[key] = value
    if problems:
        raise ParameterError(problems)
    return result

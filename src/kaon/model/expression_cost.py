"""Expression cost limits by construction: a worst-case estimate before anything runs.

CEL has no loops, but comprehensions (``map``, ``filter``, ``all``, ``exists``,
``exists_one``) chained or nested over large lists, and ``+`` applied to a value and itself,
still grow time and memory exponentially in the length of the source. The Rust evaluator
behind ``cel`` cannot be interrupted, so Kaon never starts an evaluation it cannot afford:
like cel-go's cost model, :func:`estimate` walks the expression's syntax tree once with an
upper bound on the size of every variable (a :class:`Shape`) and returns upper bounds on
the evaluation's time and on the largest value it builds. :class:`ExpressionBudget` holds
the limits (default 100 ms and 16 MiB).

The time unit is an estimated nanosecond, calibrated on the ``cel`` interpreter (see
``bench/expression_cost_bench.py``): every node evaluated, every value converted between
Python and CEL, every byte copied, compared or scanned has a price, and ``map`` / ``filter``
pay for copying their partial result at every step (the interpreter does so: their time is
quadratic in the list's length). A shape is the largest of its possible values (lists keep
their length and their largest element), so the estimate is an upper bound, never an
average.

Shapes come from actual values at run time (:func:`measure`) and, when validating a
definition, from literals and parameter defaults; what a definition cannot know (a step's
output, a required parameter) is assumed as small as possible (:data:`UNKNOWN`), so that
validation refuses what is over budget for any input, and the run-time check the rest.
"""

from __future__ import annotations

import datetime
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kaon.model.cel_syntax import (
    Binary,
    Call,
    Conditional,
    Field,
    Ident,
    Index,
    ListExpr,
    Literal,
    MapExpr,
    Member,
    Node,
    StructInit,
    Suffix,
    Unary,
)
from kaon.model.expression_budget import DEFAULT_BUDGET, ExpressionBudget

# -- prices, in estimated nanoseconds -------------------------------------------------------

NODE_NS: Final = 150
"""Evaluating one syntax node once."""
CALL_NS: Final = 300
"""Calling a function once (dispatch, argument list)."""
CONVERT_VALUE_NS: Final = 1_500
"""Converting one value between Python and CEL (each way)."""
CONVERT_ENTRY_NS: Final = 15_000
"""Converting one map entry from Python to CEL (hashing its key)."""
COPY_VALUE_NS: Final = 800
"""Copying one value inside the interpreter (a deep clone)."""
BYTE_NS: Final = 5
"""Copying, comparing, scanning or converting one byte of a string."""
REGEX_BYTE_NS: Final = 50
"""Matching one byte of a string against a regular expression."""
REGEX_CALL_NS: Final = 500_000
"""Calling ``matches`` once: the interpreter compiles the pattern at every call."""
REGEX_PATTERN_BYTE_NS: Final = 20_000
"""Compiling one byte of a pattern (times its counted repetitions, ``a{100}``)."""
REGEX_COMPILE_NS: Final = 60_000_000
"""Compiling a regular expression whose pattern is not a literal (its worst case)."""
PYTHON_CALL_NS: Final = 20_000
"""Calling Kaon's Python ``string()`` once, besides converting its argument."""

VALUE_BYTES: Final = 32
"""Memory taken by one value in the interpreter, besides its characters."""
MAX_DEPTH: Final = 32
"""Deepest nesting of lists and maps in a value an expression reads."""
MAX_FIELDS: Final = 64
"""Maps with at most this many string keys keep a shape per key."""
MACROS: Final = frozenset({"map", "filter", "all", "exists", "exists_one"})


class OverBudget(Exception):
    """A value or an evaluation exceeds its budget; the message says by how much."""


class Unreadable(Exception):
    """A value an expression cannot read: not JSON-like, a timestamp or a duration (a
    DataFrame, an array, a model). CEL would refuse it, or worse read an array's memory as
    bytes."""


_READABLE: Final = (bytes, bytearray, numbers.Number, datetime.date, datetime.timedelta)


def _readable(value: Any) -> None:
    """Raise :class:`Unreadable` unless an expression can read ``value`` (a value that is not
    a scalar, a string, a list or a mapping)."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        raise Unreadable(
            "a value of type datetime.date cannot be read by an expression (CEL has "
            "timestamps, not dates): return it as text (date.isoformat()) or as a datetime, or "
            "pass the output whole to a step as an input (`${{ steps.STEP.NAME }}`)"
        )
    if not isinstance(value, _READABLE) or isinstance(value, memoryview):
        kind = type(value)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        raise Unreadable(
            f"a value of type {name} cannot be read by an expression (only numbers, strings, "
            "booleans, null, lists, maps, timestamps and durations): pass the output whole "
            "to a step as an input (`${{ steps.STEP.NAME }}`) and read it there"
        )


# -- shapes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """Upper bounds on a value.

    ``kind`` is scalar, string, bytes, list, map or any; ``length`` counts characters
    (UTF-8 bytes), elements or entries; ``nodes`` the values it holds, itself included;
    ``entries`` the map entries it holds; ``bytes`` the bytes of its strings and scalars.
    ``item`` is the largest element of a list or value of a map, ``key`` the largest map key
    and ``fields`` the value of each string key of a small map (then every key is listed).
    """

    kind: str
    length: int = 0
    nodes: int = 1
    entries: int = 0
    bytes: int = 8
    item: Shape | None = None
    key: Shape | None = None
    fields: Mapping[str, Shape] | None = field(default=None, hash=False, compare=False)


SCALAR: Final = Shape("scalar")
UNKNOWN: Final = Shape("any", length=1, nodes=2, entries=1, bytes=16)
"""A value of which nothing is known at validation time: assumed as small as possible."""


def string_shape(length: int, kind: str = "string") -> Shape:
    """The shape of a string (or bytes) of ``length`` UTF-8 bytes."""
    return Shape(kind, length=length, nodes=1, bytes=max(length, 8))


def footprint(shape: Shape) -> int:
    """Bytes of memory a value of ``shape`` takes."""
    return shape.bytes + shape.nodes * VALUE_BYTES


def copy_ns(shape: Shape) -> int:
    """Time to copy a value of ``shape`` inside the interpreter."""
    return shape.nodes * COPY_VALUE_NS + shape.bytes * BYTE_NS


def convert_ns(shape: Shape) -> int:
    """Time to convert a value of ``shape`` between Python and CEL."""
    return shape.nodes * CONVERT_VALUE_NS + shape.entries * CONVERT_ENTRY_NS + shape.bytes * BYTE_NS


def item_of(shape: Shape) -> Shape:
    """The largest element of a list (or value of a map) of ``shape``."""
    if shape.item is not None:
        return shape.item
    return UNKNOWN if shape.kind == "any" else SCALAR


def key_of(shape: Shape) -> Shape:
    """The largest key of a map of ``shape`` (what comprehensions over a map bind)."""
    if shape.kind == "map":
        return shape.key if shape.key is not None else SCALAR
    if shape.kind == "list":
        return item_of(shape)
    return UNKNOWN if shape.kind == "any" else SCALAR


def field_of(shape: Shape, name: str) -> Shape:
    """The value of key ``name`` of a map of ``shape``."""
    if shape.fields is not None:
        found = shape.fields.get(name)
        return found if found is not None else SCALAR
    return item_of(shape)


def join(a: Shape, b: Shape) -> Shape:
    """The smallest shape that bounds both ``a`` and ``b``."""
    if a is b:
        return a
    fields: dict[str, Shape] | None = None
    if a.fields is not None and b.fields is not None and a.kind == b.kind == "map":
        fields = dict(a.fields)
        for name, value in b.fields.items():
            fields[name] = join(fields[name], value) if name in fields else value
        if len(fields) > MAX_FIELDS:
            fields = None
    return Shape(
        a.kind if a.kind == b.kind else "any",
        length=max(a.length, b.length),
        nodes=max(a.nodes, b.nodes),
        entries=max(a.entries, b.entries),
        bytes=max(a.bytes, b.bytes),
        item=_join_optional(a.item, b.item),
        key=_join_optional(a.key, b.key),
        fields=fields,
    )


def _join_optional(a: Shape | None, b: Shape | None) -> Shape | None:
    if a is None:
        return b
    if b is None:
        return a
    return join(a, b)


def list_shape(count: int, item: Shape) -> Shape:
    """A list of ``count`` elements, each bounded by ``item``."""
    return Shape(
        "list",
        length=count,
        nodes=1 + count * item.nodes,
        entries=count * item.entries,
        bytes=count * item.bytes,
        item=item,
    )


def concat(a: Shape, b: Shape) -> Shape:
    """The shape of ``a + b`` (numbers, strings, bytes or lists)."""
    if a.kind == "scalar" and b.kind == "scalar":
        return SCALAR
    kind = a.kind if a.kind == b.kind else "any"
    return Shape(
        kind,
        length=a.length + b.length,
        nodes=a.nodes + b.nodes,
        entries=a.entries + b.entries,
        bytes=a.bytes + b.bytes,
        item=_join_optional(a.item, b.item),
    )


# -- measuring actual values ----------------------------------------------------------------


_SCALAR_TYPES: Final = frozenset({int, float, bool, type(None)})
_SCALAR_NS: Final = CONVERT_VALUE_NS + 8 * BYTE_NS


class _Meter:
    """Measures values, giving up as soon as their conversion alone is over budget."""

    def __init__(self, budget: ExpressionBudget) -> None:
        self._budget = budget
        self._limit_ns = budget.time_ns
        self.spent_ns = 0

    def measure(self, value: Any, depth: int = 0) -> Shape:
        kind = type(value)
        if kind in _SCALAR_TYPES:
            self._charge(_SCALAR_NS)
            return SCALAR
        if kind is str:
            size = len(value) if value.isascii() else len(value.encode("utf-8", "replace"))
            shape = string_shape(size)
        elif kind is list or kind is tuple:
            return self._list(value, depth)
        elif kind is dict or isinstance(value, Mapping):
            return self._map(value, depth)
        elif isinstance(value, str):
            return self.measure(str(value), depth)
        elif isinstance(value, bytes):
            shape = string_shape(len(value), "bytes")
        else:  # numbers, timestamps; anything else is refused here
            _readable(value)
            shape = SCALAR
        self._charge(CONVERT_VALUE_NS + shape.bytes * BYTE_NS)
        return shape

    def _charge(self, ns: int) -> None:
        self.spent_ns += ns
        if self.spent_ns > self._limit_ns:
            raise OverBudget(f"its inputs alone take more than {_ms(self._limit_ns)} to convert")

    def _list(self, value: list[Any] | tuple[Any, ...], depth: int) -> Shape:
        if depth >= MAX_DEPTH:
            raise OverBudget(f"a value is nested more than {MAX_DEPTH} levels deep")
        self._charge(CONVERT_VALUE_NS)
        if self.spent_ns + len(value) * CONVERT_VALUE_NS > self._limit_ns:
            self._charge(len(value) * CONVERT_VALUE_NS)  # over budget: no need to look
        if all(type(element) in _SCALAR_TYPES for element in value):  # the common case
            self._charge(len(value) * _SCALAR_NS)
            count = len(value)
            return Shape("list", count, 1 + count, 0, 8 * count, SCALAR if count else None)
        item: Shape | None = None
        nodes, entries, size = 1, 0, 0
        for element in value:
            shape = self.measure(element, depth + 1)
            nodes += shape.nodes
            entries += shape.entries
            size += shape.bytes
            item = shape if item is None else join(item, shape)
        return Shape("list", len(value), nodes, entries, size, item)

    def _map(self, value: Mapping[Any, Any], depth: int) -> Shape:
        if depth >= MAX_DEPTH:
            raise OverBudget(f"a value is nested more than {MAX_DEPTH} levels deep")
        self._charge(CONVERT_VALUE_NS)
        if self.spent_ns + len(value) * CONVERT_ENTRY_NS > self._limit_ns:
            self._charge(len(value) * CONVERT_ENTRY_NS)  # over budget: no need to look
        item: Shape | None = None
        key: Shape | None = None
        fields: dict[str, Shape] | None = {} if len(value) <= MAX_FIELDS else None
        nodes, entries, size = 1, len(value), 0
        for name, element in value.items():
            self._charge(CONVERT_ENTRY_NS)
            key_shape = self.measure(name, depth + 1)
            shape = self.measure(element, depth + 1)
            if fields is not None:
                if isinstance(name, str):
                    fields[name] = shape
                else:
                    fields = None
            nodes += shape.nodes + key_shape.nodes
            entries += shape.entries
            size += shape.bytes + key_shape.bytes
            item = shape if item is None else join(item, shape)
            key = key_shape if key is None else join(key, key_shape)
        return Shape("map", len(value), nodes, entries, size, item, key, fields)


def measure(value: Any, budget: ExpressionBudget = DEFAULT_BUDGET) -> Shape:
    """The shape of an actual value.

    Raises :class:`OverBudget` as soon as converting the value to CEL alone would exceed
    ``budget`` (so measuring a huge value costs no more than the budget allows), or when it
    is nested more than :data:`MAX_DEPTH` levels deep.
    """
    return _Meter(budget).measure(value)


def measure_all(values: Mapping[str, Any], budget: ExpressionBudget) -> dict[str, Shape]:
    """Shapes of several variables, charged together against ``budget`` (see
    :func:`measure`)."""
    meter = _Meter(budget)
    return {name: meter.measure(value) for name, value in values.items()}


def _ms(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:,.1f} s"
    return f"{ns / 1e6:,.1f} ms"


def describe_bytes(size: int) -> str:
    """``size`` bytes in words (``16 MiB``)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} PiB"  # pragma: no cover - the loop always returns


def describe_time(ns: float) -> str:
    """``ns`` estimated nanoseconds in words (``3.2 s``)."""
    return _ms(ns)


# -- the estimate ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Estimate:
    """Upper bounds on one evaluation: time (estimated ns), the largest value built (bytes),
    and the result's shape."""

    time_ns: int
    peak_bytes: int
    result: Shape

    def over(self, budget: ExpressionBudget) -> str | None:
        """Why this estimate exceeds ``budget``, or None when it fits."""
        reasons: list[str] = []
        if self.time_ns > budget.time_ns:
            reasons.append(
                f"about {describe_time(self.time_ns)} (budget {describe_time(budget.time_ns)})"
            )
        if self.peak_bytes > budget.max_bytes:
            reasons.append(
                f"values of up to {describe_bytes(self.peak_bytes)} "
                f"(budget {describe_bytes(budget.max_bytes)})"
            )
        return " and ".join(reasons) if reasons else None


@dataclass(slots=True)
class _Cost:
    ns: int = 0
    peak: int = 0

    def built(self, shape: Shape) -> Shape:
        """Record a value the interpreter builds (its memory and the time to fill it)."""
        self.peak = max(self.peak, footprint(shape))
        self.ns += copy_ns(shape)
        return shape


def estimate(node: Node, variables: Mapping[str, Shape], *, convert: bool = True) -> Estimate:
    """Upper bounds on evaluating ``node`` with variables of the given shapes.

    A variable missing from ``variables`` is :data:`UNKNOWN`. With ``convert`` the time to
    convert the variables to CEL and the result back to Python is included.
    """
    cost = _Cost()
    result = _Estimator(cost).eval(node, variables)
    if convert:
        cost.ns += sum(convert_ns(shape) for shape in variables.values())
        cost.ns += convert_ns(result)
        cost.peak = max(cost.peak, footprint(result))
    return Estimate(cost.ns, cost.peak, result)


class _Estimator:
    """One walk over the tree; comprehension bodies are walked once with a multiplier."""

    def __init__(self, cost: _Cost) -> None:
        self.cost = cost

    def eval(self, node: Node, env: Mapping[str, Shape]) -> Shape:
        self.cost.ns += NODE_NS
        if isinstance(node, Literal):
            if node.kind in ("string", "bytes"):
                return string_shape(node.length, node.kind)
            return SCALAR
        if isinstance(node, Ident):
            return env.get(node.name, UNKNOWN)
        if isinstance(node, ListExpr):
            return self._list(node, env)
        if isinstance(node, MapExpr):
            return self._map(node.entries, env)
        if isinstance(node, Unary):
            self.eval(node.operand, env)
            self.cost.ns += NODE_NS * node.count
            return SCALAR
        if isinstance(node, Binary):
            return self._binary(node, env)
        if isinstance(node, Conditional):
            return self._conditional(node, env)
        if isinstance(node, Call):
            return self._call(node.function, None, node.args, env)
        assert isinstance(node, Member)
        shape = self.eval(node.head, env)
        for suffix in node.suffixes:
            shape = self._suffix(shape, suffix, env)
        return shape

    def _list(self, node: ListExpr, env: Mapping[str, Shape]) -> Shape:
        item: Shape | None = None
        for element in node.items:
            shape = self.eval(element, env)
            item = shape if item is None else join(item, shape)
        return self.cost.built(list_shape(len(node.items), item or SCALAR))

    def _map(self, entries: tuple[tuple[Node, Node], ...], env: Mapping[str, Shape]) -> Shape:
        fields: dict[str, Shape] | None = {}
        item: Shape | None = None
        key: Shape | None = None
        nodes, size, inner = 1, 0, 0
        for key_node, value_node in entries:
            key_shape = self.eval(key_node, env)
            shape = self.eval(value_node, env)
            name = key_node.text if isinstance(key_node, Literal) else None
            if fields is not None and name is not None and name not in fields:
                fields[name] = shape
            else:
                fields = None
            nodes += shape.nodes + key_shape.nodes
            size += shape.bytes + key_shape.bytes
            inner += shape.entries + key_shape.entries
            item = shape if item is None else join(item, shape)
            key = key_shape if key is None else join(key, key_shape)
        built = Shape("map", len(entries), nodes, len(entries) + inner, size, item, key, fields)
        return self.cost.built(built)

    def _binary(self, node: Binary, env: Mapping[str, Shape]) -> Shape:
        left = self.eval(node.first, env)
        for op, operand in node.rest:
            right = self.eval(operand, env)
            self.cost.ns += NODE_NS
            if op == "+":
                left = self.cost.built(concat(left, right))
            elif op in ("==", "!=", "<", "<=", ">", ">="):
                self.cost.ns += _compare_ns(left, right)
                left = SCALAR
            elif op == "in":
                self.cost.ns += _contains_ns(right, left)
                left = SCALAR
            else:  # - * / % && ||: numbers and booleans
                left = SCALAR
        return left

    def _conditional(self, node: Conditional, env: Mapping[str, Shape]) -> Shape:
        result: Shape | None = None
        branch_costs: list[int] = []
        for condition, value in node.branches:
            self.eval(condition, env)
            before = self.cost.ns
            shape = self.eval(value, env)
            branch_costs.append(self.cost.ns - before)
            self.cost.ns = before
            result = shape if result is None else join(result, shape)
        before = self.cost.ns
        shape = self.eval(node.otherwise, env)
        branch_costs.append(self.cost.ns - before)
        self.cost.ns = before + max(branch_costs)
        return shape if result is None else join(result, shape)

    def _suffix(self, shape: Shape, suffix: Suffix, env: Mapping[str, Shape]) -> Shape:
        if isinstance(suffix, Field):
            self.cost.ns += NODE_NS
            return field_of(shape, suffix.name)
        if isinstance(suffix, Index):
            key = suffix.key
            self.eval(key, env)
            self.cost.ns += NODE_NS
            if isinstance(key, Literal) and key.text is not None:
                return field_of(shape, key.text)
            return item_of(shape)
        if isinstance(suffix, StructInit):
            return self._map(suffix.entries, env)
        return self._call(suffix.name, shape, suffix.args, env)

    def _call(
        self, name: str, target: Shape | None, args: tuple[Node, ...], env: Mapping[str, Shape]
    ) -> Shape:
        self.cost.ns += CALL_NS
        if target is not None and name in MACROS and args and isinstance(args[0], Ident):
            return self._comprehension(name, target, args, env)
        if name == "has":
            for arg in args:  # has(a.b) selects without evaluating the field
                self.eval(arg, env)
            return SCALAR
        shapes = [self.eval(arg, env) for arg in args]
        if target is not None:
            shapes.insert(0, target)
        return _function(name, shapes, args, self.cost)

    def _comprehension(
        self, name: str, target: Shape, args: tuple[Node, ...], env: Mapping[str, Shape]
    ) -> Shape:
        count = target.length
        element = key_of(target)
        bound = dict(env)
        names = [a.name for a in args[:-1] if isinstance(a, Ident)]
        if name == "map" and len(args) == 3:  # map(x, predicate, transform)
            names = names[:1]
        for bound_name in names:
            bound[bound_name] = element
        body = _Cost()
        inner = _Estimator(body)
        shapes = [inner.eval(arg, bound) for arg in args[len(names) :]]
        self.cost.ns += count * (body.ns + NODE_NS)
        self.cost.peak = max(self.cost.peak, body.peak)
        if name == "map":
            result = list_shape(count, shapes[-1])
        elif name == "filter":
            result = list_shape(count, element)
        else:
            return SCALAR
        # map and filter copy their partial result at every step
        self.cost.ns += count * (count - 1) // 2 * copy_ns(result.item or SCALAR)
        return self.cost.built(result)


_SCALAR_FUNCTIONS: Final = frozenset(
    {"size", "int", "uint", "double", "bool", "duration", "timestamp", "type", "contains"}
    | {"startsWith", "endsWith", "exists", "all", "exists_one"}
)


def _function(name: str, shapes: list[Shape], args: tuple[Node, ...], cost: _Cost) -> Shape:
    """The result of a (non-macro) function call; ``shapes`` start with the receiver."""
    scanned = sum(s.bytes for s in shapes)
    if name == "size":
        return SCALAR
    if name == "matches":
        cost.ns += scanned * REGEX_BYTE_NS
        pattern = args[-1] if args else None
        if not (isinstance(pattern, Literal) and pattern.kind == "string"):
            cost.ns += REGEX_CALL_NS + REGEX_COMPILE_NS
        else:
            cost.ns += _pattern_ns(pattern)
        return SCALAR
    if name == "string":
        return _string(shapes, cost)
    if name == "bytes":
        cost.ns += scanned * BYTE_NS
        return cost.built(string_shape(sum(s.length for s in shapes), "bytes"))
    if name in _SCALAR_FUNCTIONS or name.startswith("get"):
        cost.ns += scanned * BYTE_NS
        return SCALAR
    if name in ("max", "min"):
        cost.ns += sum(_compare_ns(s, s) + s.length * NODE_NS for s in shapes)
        if len(shapes) == 1:
            return item_of(shapes[0])
    cost.ns += sum(copy_ns(s) for s in shapes)
    result: Shape | None = None  # anything else: assume it returns one of its arguments
    for shape in shapes:
        result = shape if result is None else join(result, shape)
    return result or SCALAR


def _string(shapes: list[Shape], cost: _Cost) -> Shape:
    """Kaon's ``string()``: a Python call that may write a list or map as JSON."""
    cost.ns += PYTHON_CALL_NS
    if not shapes:
        return SCALAR
    argument = shapes[0]
    cost.ns += 2 * convert_ns(argument)
    if argument.kind in ("string", "bytes"):
        return cost.built(argument)
    if argument.kind == "scalar":
        return string_shape(32)
    # JSON: each byte may become a 6-byte escape, each value needs punctuation and digits
    length = 6 * argument.bytes + 32 * argument.nodes
    cost.ns += length * BYTE_NS
    return cost.built(string_shape(length))


def _pattern_ns(pattern: Literal) -> int:
    """Compiling a literal regular expression: counted repetitions multiply its size."""
    text = pattern.text or ""
    factor = 1
    digits = ""
    for ch in text:
        if ch.isdigit():
            digits += ch
            continue
        if ch in "},}" and digits:
            factor *= max(int(digits[:7]), 1)
        digits = ""
    compile_ns = pattern.length * factor * REGEX_PATTERN_BYTE_NS
    return REGEX_CALL_NS + min(compile_ns, REGEX_COMPILE_NS)


def _compare_ns(a: Shape, b: Shape) -> int:
    smaller = a if footprint(a) <= footprint(b) else b
    return smaller.nodes * NODE_NS + smaller.bytes * BYTE_NS


def _contains_ns(container: Shape, needle: Shape) -> int:
    if container.kind == "map":
        return needle.bytes * BYTE_NS + NODE_NS
    if container.kind == "string":
        return (container.bytes + needle.bytes) * BYTE_NS
    return container.length * (_compare_ns(item_of(container), needle) + NODE_NS)


# -- a quick bound for expressions without comprehensions -----------------------------------


@dataclass(frozen=True, slots=True)
class LinearBound:
    """A cheap upper bound for an expression without comprehensions or ``matches``.

    Such an expression evaluates each of its ``nodes`` once, and every value it builds is
    made of at most ``leaves`` of its variables and literals (``string()`` may write a value
    out as JSON, up to :data:`JSON_FACTOR` times larger, ``string_calls`` times over). So its
    cost is bounded from the total size of its inputs alone, without walking the tree:
    :meth:`estimate` is O(1), and only expressions this bound does not clear need
    :func:`estimate`.
    """

    nodes: int
    leaves: int
    literal_bytes: int
    string_calls: int

    def estimate(self, inputs: Totals) -> Estimate:
        """An upper bound on evaluating with inputs of the given totals."""
        growth = self.leaves * JSON_FACTOR**self.string_calls
        nodes = (inputs.nodes + self.leaves) * growth
        largest = Shape(
            "any",
            nodes=nodes,
            entries=inputs.entries * growth,
            bytes=(inputs.bytes + self.literal_bytes) * growth,
        )
        per_node = NODE_NS + CALL_NS + PYTHON_CALL_NS + copy_ns(largest) + convert_ns(largest)
        time_ns = inputs.convert_ns + self.nodes * per_node
        return Estimate(time_ns + convert_ns(largest), footprint(largest), largest)


@dataclass(slots=True)
class Totals:
    """What all the values an expression reads hold together (see :func:`measure_totals`)."""

    nodes: int = 0
    entries: int = 0
    bytes: int = 0

    @property
    def convert_ns(self) -> int:
        """Time to convert them all to CEL."""
        values_ns = self.nodes * CONVERT_VALUE_NS + self.entries * CONVERT_ENTRY_NS
        return values_ns + self.bytes * BYTE_NS


def measure_totals(values: Mapping[str, Any], budget: ExpressionBudget) -> Totals:
    """Count the values, map entries and bytes in ``values``, cheaply (no shapes are built).

    Raises :class:`OverBudget` as soon as converting them alone would exceed ``budget``, or
    when a value is nested more than :data:`MAX_DEPTH` levels deep.
    """
    totals = Totals()
    limit = budget.time_ns
    for value in values.values():
        _count(value, totals, 0, limit)
    if totals.convert_ns > limit:
        raise OverBudget(f"its inputs alone take more than {_ms(limit)} to convert")
    return totals


def _count(value: Any, totals: Totals, depth: int, limit: float) -> None:
    kind = type(value)
    totals.nodes += 1
    if kind in _SCALAR_TYPES:
        totals.bytes += 8
    elif kind is str:
        totals.bytes += len(value) if value.isascii() else len(value.encode("utf-8", "replace"))
    elif kind is list or kind is tuple or kind is dict or isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            raise OverBudget(f"a value is nested more than {MAX_DEPTH} levels deep")
        if totals.convert_ns + len(value) * CONVERT_VALUE_NS > limit:
            raise OverBudget(f"its inputs alone take more than {_ms(limit)} to convert")
        if kind is list or kind is tuple:
            for element in value:
                _count(element, totals, depth + 1, limit)
        else:
            totals.entries += len(value)
            for key, element in value.items():
                _count(key, totals, depth + 1, limit)
                _count(element, totals, depth + 1, limit)
    elif isinstance(value, str | bytes):
        totals.bytes += len(value)
    else:
        _readable(value)
        totals.bytes += 8


JSON_FACTOR: Final = 38
"""``string()`` of a list or map writes each byte in at most 6 and each value in 32 more."""


def linear_bound(tree: Node) -> LinearBound | None:
    """The :class:`LinearBound` of ``tree``, or None when it has comprehensions or calls
    ``matches`` (then only :func:`estimate` bounds it)."""
    nodes = leaves = literal_bytes = string_calls = 0
    stack: list[Node] = [tree]
    while stack:
        node = stack.pop()
        nodes += 1
        if isinstance(node, Literal):
            leaves += 1
            literal_bytes += max(node.length, 8)
        elif isinstance(node, Ident):
            leaves += 1
        elif isinstance(node, ListExpr):
            stack.extend(node.items)
        elif isinstance(node, MapExpr):
            stack.extend(part for entry in node.entries for part in entry)
        elif isinstance(node, Unary):
            stack.append(node.operand)
        elif isinstance(node, Binary):
            stack.append(node.first)
            stack.extend(operand for _, operand in node.rest)
        elif isinstance(node, Conditional):
            stack.extend(part for branch in node.branches for part in branch)
            stack.append(node.otherwise)
        elif isinstance(node, Call):
            if node.function == "matches":
                return None
            string_calls += node.function == "string"
            stack.extend(node.args)
        else:
            assert isinstance(node, Member)
            stack.append(node.head)
            for suffix in node.suffixes:
                nodes += 1
                if isinstance(suffix, Index):
                    stack.append(suffix.key)
                elif isinstance(suffix, StructInit):
                    stack.extend(part for entry in suffix.entries for part in entry)
                elif not isinstance(suffix, Field):
                    if suffix.name in MACROS or suffix.name == "matches":
                        return None
                    string_calls += suffix.name == "string"
                    stack.extend(suffix.args)
    return LinearBound(nodes, leaves, literal_bytes, string_calls)

"""References the Python DSL hands around while a workflow function builds its graph.

A :class:`Ref` stands for a value known only at run time (a step's output, a parameter, the
current foreach item). Operators on refs build CEL source, so ``check["score"] > 0.8`` is the
expression ``steps.check.score > 0.8``. A ref also remembers which foreach/loop scopes it
needs, so that using ``seg.item`` outside its foreach is reported where it happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kaon.dsl._common import cel_literal, is_identifier, wrap
from kaon.errors import DefinitionError

UseKind = Literal["step", "item", "index", "iteration"]

_CEL_RESERVED = frozenset(
    {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for"}
    | {"function", "if", "import", "let", "loop", "package", "namespace", "return", "var", "void"}
    | {"while"}
)


@dataclass(frozen=True, slots=True, eq=False)
class Use:
    """A ref reads something that exists only in one scope: a step, an item, an index."""

    kind: UseKind
    scope: object  # the builder frame the thing belongs to
    name: str


def _operand(value: Any) -> tuple[str, tuple[Use, ...]]:
    if isinstance(value, Ref):
        return wrap(value._source), value._uses
    try:
        return cel_literal(value), ()
    except DefinitionError:
        raise DefinitionError(
            f"a {type(value).__name__} cannot be combined with a reference in an expression; "
            "use JSON values (numbers, strings, booleans, lists, dicts)"
        ) from None


class Ref:
    """A run-time value. Subscript it, compare it, do arithmetic on it; never branch on it.

    Supports ``ref["key"]``, ``ref[0]``, ``== != < <= > >=``, ``+ - * / %``, unary ``-``
    and ``&`` / ``|`` / ``~`` for CEL's ``&&`` / ``||`` / ``!``. ``str(ref)`` is the
    template ``${{ source }}``, so f-strings build string expressions.
    """

    __slots__ = ("_source", "_uses")

    def __init__(self, source: str, uses: tuple[Use, ...] = ()) -> None:
        self._source = source
        self._uses = uses

    @property
    def source(self) -> str:
        """The CEL source this ref stands for."""
        return self._source

    def __repr__(self) -> str:
        return f"<kaon ref {self._source}>"

    def __str__(self) -> str:
        return "${{ " + self._source + " }}"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __hash__(self) -> int:
        return id(self)

    if not TYPE_CHECKING:  # at run time only: a type checker still flags ``ref.x``

        def __getattr__(self, name: str) -> Any:
            # Only names Python did not find: an output read as an attribute (``f.accuracy``,
            # as Metaflow's ``self.x``) is told how outputs are read. Python's own lookups
            # (dunders, notebooks' ``_repr_html_``) get a plain AttributeError.
            if name.startswith("_"):
                raise AttributeError(name)
            raise AttributeError(
                f"the reference to {self._source} has no attribute {name!r}: read an output "
                f"or a key with a subscript, ref[{name!r}]"
            )

    def __getitem__(self, key: Any) -> Ref:
        base = wrap(self._source)
        if isinstance(key, Ref):
            return Ref(f"{base}[{key._source}]", self._uses + key._uses)
        if isinstance(key, str):
            if is_identifier(key) and key not in _CEL_RESERVED:
                return Ref(f"{base}.{key}", self._uses)
            return Ref(f"{base}[{cel_literal(key)}]", self._uses)
        if isinstance(key, int) and not isinstance(key, bool):
            return Ref(f"{base}[{key}]", self._uses)
        raise DefinitionError(
            f"a reference can be subscripted with a string, an int or another reference, "
            f"not {type(key).__name__}"
        )

    def _binary(self, op: str, other: Any, *, reflected: bool = False) -> Ref:
        mine = (wrap(self._source), self._uses)
        theirs = _operand(other)
        left, right = (theirs, mine) if reflected else (mine, theirs)
        return Ref(f"{left[0]} {op} {right[0]}", left[1] + right[1])

    def __eq__(self, other: object) -> Ref:  # type: ignore[override]
        return self._binary("==", other)

    def __ne__(self, other: object) -> Ref:  # type: ignore[override]
        return self._binary("!=", other)

    def __lt__(self, other: Any) -> Ref:
        return self._binary("<", other)

    def __le__(self, other: Any) -> Ref:
        return self._binary("<=", other)

    def __gt__(self, other: Any) -> Ref:
        return self._binary(">", other)

    def __ge__(self, other: Any) -> Ref:
        return self._binary(">=", other)

    def __add__(self, other: Any) -> Ref:
        return self._binary("+", other)

    def __radd__(self, other: Any) -> Ref:
        return self._binary("+", other, reflected=True)

    def __sub__(self, other: Any) -> Ref:
        return self._binary("-", other)

    def __rsub__(self, other: Any) -> Ref:
        return self._binary("-", other, reflected=True)

    def __mul__(self, other: Any) -> Ref:
        return self._binary("*", other)

    def __rmul__(self, other: Any) -> Ref:
        return self._binary("*", other, reflected=True)

    # Python's / is true division (5 / 2 == 2.5); CEL's / on two ints truncates (2). The
    # DSL is Python, so both sides are made doubles, as Python's result is a float.
    def _true_division(self, other: Any, *, reflected: bool = False) -> Ref:
        mine = (f"double({self._source})", self._uses)
        source, uses = _operand(other)
        theirs = (f"double({source})", uses)
        left, right = (theirs, mine) if reflected else (mine, theirs)
        return Ref(f"{left[0]} / {right[0]}", left[1] + right[1])

    def __truediv__(self, other: Any) -> Ref:
        return self._true_division(other)

    def __rtruediv__(self, other: Any) -> Ref:
        return self._true_division(other, reflected=True)

    def __mod__(self, other: Any) -> Ref:
        return self._binary("%", other)

    def __rmod__(self, other: Any) -> Ref:
        return self._binary("%", other, reflected=True)

    def __and__(self, other: Any) -> Ref:
        return self._binary("&&", other)

    def __rand__(self, other: Any) -> Ref:
        return self._binary("&&", other, reflected=True)

    def __or__(self, other: Any) -> Ref:
        return self._binary("||", other)

    def __ror__(self, other: Any) -> Ref:
        return self._binary("||", other, reflected=True)

    def __invert__(self) -> Ref:
        return Ref(f"!{wrap(self._source)}", self._uses)

    def __neg__(self) -> Ref:
        return Ref(f"-{wrap(self._source)}", self._uses)

    def __bool__(self) -> bool:
        raise DefinitionError(
            f"the run-time value {self._source!r} has no truth value while the workflow is "
            "defined; use kaon.when(...) instead of if, and & | ~ instead of and/or/not"
        )

    def __iter__(self) -> Any:
        raise DefinitionError(
            f"the run-time value {self._source!r} cannot be iterated while the workflow is "
            "defined; use kaon.foreach(...) instead of a for loop"
        )

    def __contains__(self, item: Any) -> bool:
        raise DefinitionError(
            f"'in' cannot test the run-time value {self._source!r}; "
            'write it as an expression, e.g. kaon.expr("x in steps.a.names")'
        )


class StepRef(Ref):
    """The output of a recorded step (``steps.<id>``)."""

    __slots__ = ("_scope", "_step_id")

    def __init__(self, step_id: str, scope: object) -> None:
        source = f"steps.{step_id}" if is_identifier(step_id) else f"steps[{cel_literal(step_id)}]"
        super().__init__(source, (Use("step", scope, step_id),))
        self._step_id = step_id
        self._scope = scope

    @property
    def id(self) -> str:
        """The step's id."""
        return self._step_id


class ParamRef(Ref):
    """A workflow parameter (``params.<name>``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        super().__init__(
            f"params.{name}" if is_identifier(name) else f"params[{cel_literal(name)}]"
        )
        self._name = name

    @property
    def name(self) -> str:
        """The parameter's name."""
        return self._name


def scoped_ref(kind: UseKind, variable: str, scope: object) -> Ref:
    """A ref to a variable bound only inside ``scope`` (a foreach item or index, an iteration)."""
    return Ref(variable, (Use(kind, scope, variable),))


def expr(source: str) -> Ref:
    """A raw CEL expression (``kaon.expr("params.k * 2")``), usable wherever a ref is."""
    if not isinstance(source, str) or not source.strip():
        raise DefinitionError(f"kaon.expr() takes a non-empty CEL source string, got {source!r}")
    return Ref(source.strip())

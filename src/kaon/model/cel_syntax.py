"""A parser of CEL's grammar into a small syntax tree, for static analysis (cost estimates).

The ``cel`` package compiles and runs expressions but exposes no syntax tree, so Kaon parses
the source itself, following the CEL language definition
(https://github.com/google/cel-spec/blob/master/doc/langdef.md)::

    Expr           = ConditionalOr ["?" ConditionalOr ":" Expr]
    ConditionalOr  = [ConditionalOr "||"] ConditionalAnd
    ConditionalAnd = [ConditionalAnd "&&"] Relation
    Relation       = [Relation Relop] Addition
    Addition       = [Addition ("+" | "-")] Multiplication
    Multiplication = [Multiplication ("*" | "/" | "%")] Unary
    Unary          = Member | "!" {"!"} Member | "-" {"-"} Member
    Member         = Primary | Member "." ["?"] SELECTOR ["(" [ExprList] ")"]
                   | Member "[" ["?"] Expr "]" | Member "{" [FieldInits] [","] "}"
    Primary        = ["."] IDENT ["(" [ExprList] ")"] | "(" Expr ")"
                   | "[" [ExprList] [","] "]" | "{" [MapInits] [","] "}" | LITERAL

Left-associative chains (``a + b - c``, ``a.f().g[0]``) and chains of conditionals are kept
flat (one node with a list of operands) so that long chains never make the tree, the parser
or its readers recurse deeply; only brackets nest, up to :data:`MAX_NESTING` levels.

:func:`parse` raises :class:`CelSyntaxError` on anything it does not understand. Kaon compiles
every expression with ``cel`` as well; this parser is only trusted for its tree's shape.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

MAX_NESTING: Final = 32
"""Deepest nesting of brackets, calls and conditionals a source may have."""


class CelSyntaxError(ValueError):
    """The source is not an expression this parser understands."""


# -- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant. ``kind`` is int, uint, double, string, bytes, bool or null; ``text`` is the
    literal's value for strings without escapes (else None) and ``length`` its length."""

    kind: str
    length: int = 0
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Ident:
    """A variable (or, as a call's function, a name)."""

    name: str


@dataclass(frozen=True, slots=True)
class ListExpr:
    """``[a, b, ...]``."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapExpr:
    """``{k: v, ...}`` (also a message construction ``T{f: v}``, as a map)."""

    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, slots=True)
class Call:
    """A global call ``f(args)``."""

    function: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Field:
    """A member suffix ``.name`` (``.?name`` when optional)."""

    name: str


@dataclass(frozen=True, slots=True)
class Index:
    """A member suffix ``[expr]`` (``[?expr]`` when optional)."""

    key: Node


@dataclass(frozen=True, slots=True)
class Method:
    """A member suffix ``.name(args)``: a receiver-style call or a macro (``map``...)."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class StructInit:
    """A member suffix ``{field: value, ...}`` (message construction)."""

    entries: tuple[tuple[Node, Node], ...]


Suffix = Field | Index | Method | StructInit


@dataclass(frozen=True, slots=True)
class Member:
    """``head`` followed by selections, indexes and method calls, left to right."""

    head: Node
    suffixes: tuple[Suffix, ...]


@dataclass(frozen=True, slots=True)
class Unary:
    """``!x`` or ``-x``; ``count`` repetitions of the operator."""

    op: str
    count: int
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    """A left-associative chain ``first op1 x1 op2 x2 ...`` of one precedence level."""

    first: Node
    rest: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class Conditional:
    """``c1 ? v1 : c2 ? v2 : ... : otherwise``."""

    branches: tuple[tuple[Node, Node], ...]
    otherwise: Node


Node = Literal | Ident | ListExpr | MapExpr | Call | Member | Unary | Binary | Conditional


# -- lexer ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n\f]+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:'''|\"\"\"|'|\"))
  | (?P<double>(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?))
  | (?P<int>0[xX][0-9a-fA-F]+[uU]?|\d+[uU]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`\n]+`)
  | (?P<op>\|\||&&|==|!=|<=|>=|\.\?|\[\?|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token: ``kind`` (string, double, int, ident, op, end) and its text."""

    kind: str
    text: str
    pos: int
    value: Literal | None = None


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source``, ending with an ``end`` token. Raises CelSyntaxError."""
    tokens: list[Token] = []
    pos, n = 0, len(source)
    while pos < n:
        match = _TOKEN.match(source, pos)
        if match is None:
            raise CelSyntaxError(f"unexpected character {source[pos]!r} at offset {pos}")
        kind = match.lastgroup
        assert kind is not None
        if kind == "string":
            end, literal = _string(source, match)
            tokens.append(Token("string", source[pos:end], pos, literal))
            pos = end
            continue
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", n))
    return tokens


def _string(source: str, match: re.Match[str]) -> tuple[int, Literal]:
    opener = match.group()
    prefix = opener.rstrip("'\"").lower()
    quote = opener[len(prefix) :]
    raw = "r" in prefix
    pos, n = match.end(), len(source)
    start = pos
    escaped = False
    while pos < n:
        if not raw and source[pos] == "\\":
            escaped = True
            pos += 2
            continue
        if source.startswith(quote, pos):
            body = source[start:pos]
            kind = "bytes" if "b" in prefix else "string"
            length = len(body.encode("utf-8", errors="surrogatepass"))
            text = body if not escaped and kind == "string" else None
            return pos + len(quote), Literal(kind, length, text)
        if len(quote) == 1 and source[pos] == "\n":
            break
        pos += 1
    raise CelSyntaxError(f"unterminated string literal at offset {match.start()}")


# -- parser --------------------------------------------------------------------------------

_LEVELS: Final = (
    frozenset({"||"}),
    frozenset({"&&"}),
    frozenset({"<", "<=", ">=", ">", "==", "!=", "in"}),
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%"}),
)


@functools.lru_cache(maxsize=4096)
def parse(source: str) -> Node:
    """The syntax tree of ``source``. Raises :class:`CelSyntaxError`."""
    parser = _Parser(tokenize(source))
    node = parser.expr()
    parser.expect_end()
    return node


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._pos = 0
        self._depth = 0

    # token helpers

    def _peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._pos + ahead, len(self._tokens) - 1)]

    def _at(self, text: str) -> bool:
        token = self._peek()
        return token.kind in ("op", "ident") and token.text == text

    def _take(self) -> Token:
        token = self._peek()
        self._pos += 1
        return token

    def _expect(self, text: str) -> None:
        if not self._at(text):
            token = self._peek()
            found = token.text or "end of input"
            raise CelSyntaxError(f"expected {text!r} at offset {token.pos}, found {found!r}")
        self._pos += 1

    def expect_end(self) -> None:
        token = self._peek()
        if token.kind != "end":
            raise CelSyntaxError(f"unexpected {token.text!r} at offset {token.pos}")

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise CelSyntaxError(f"expression nests more than {MAX_NESTING} levels deep")

    # grammar

    def expr(self) -> Node:
        self._enter()
        branches: list[tuple[Node, Node]] = []
        node = self._binary(0)
        while self._at("?"):
            self._take()
            value = self._binary(0)
            self._expect(":")
            branches.append((node, value))
            node = self._binary(0)
        self._depth -= 1
        if branches:
            return Conditional(tuple(branches), node)
        return node

    def _binary(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self._unary()
        ops = _LEVELS[level]
        first = self._binary(level + 1)
        rest: list[tuple[str, Node]] = []
        while self._peek().kind in ("op", "ident") and self._peek().text in ops:
            op = self._take().text
            rest.append((op, self._binary(level + 1)))
        return Binary(first, tuple(rest)) if rest else first

    def _unary(self) -> Node:
        if self._at("!") or self._at("-"):
            op = self._take().text
            count = 1
            while self._at(op):
                self._take()
                count += 1
            return Unary(op, count, self._member())
        return self._member()

    def _member(self) -> Node:
        head = self._primary()
        suffixes: list[Suffix] = []
        while True:
            if self._at(".") or self._at(".?"):
                self._take()
                name = self._ident()
                if self._at("("):
                    suffixes.append(Method(name, self._args(")")))
                else:
                    suffixes.append(Field(name))
            elif self._at("[") or self._at("[?"):
                self._take()
                key = self.expr()
                self._expect("]")
                suffixes.append(Index(key))
            elif self._at("{") and _is_type_name(head, suffixes):
                suffixes.append(StructInit(self._entries()))
            else:
                break
        return Member(head, tuple(suffixes)) if suffixes else head

    def _ident(self) -> str:
        token = self._take()
        if token.kind != "ident":
            raise CelSyntaxError(f"expected a name at offset {token.pos}, found {token.text!r}")
        return token.text.strip("`")

    def _args(self, close: str) -> tuple[Node, ...]:
        self._enter()
        self._take()  # the opening bracket
        items: list[Node] = []
        while not self._at(close):
            items.append(self.expr())
            if not self._at(","):
                break
            self._take()
        self._expect(close)
        self._depth -= 1
        return tuple(items)

    def _entries(self) -> tuple[tuple[Node, Node], ...]:
        self._enter()
        self._expect("{")
        entries: list[tuple[Node, Node]] = []
        while not self._at("}"):
            if self._at("?"):  # optional entry {?k: v}
                self._take()
            key = self.expr()
            self._expect(":")
            entries.append((key, self.expr()))
            if not self._at(","):
                break
            self._take()
        self._expect("}")
        self._depth -= 1
        return tuple(entries)

    def _primary(self) -> Node:
        token = self._peek()
        if token.kind == "string":
            self._take()
            assert token.value is not None
            return token.value
        if token.kind in ("int", "double"):
            self._take()
            kind = "double" if token.kind == "double" else "int"
            if kind == "int" and token.text[-1] in "uU":
                kind = "uint"
            return Literal(kind)
        if token.kind == "ident":
            return self._name()
        if self._at("."):  # a leading dot: a name in the root namespace
            self._take()
            return self._name()
        if self._at("("):
            self._enter()
            self._take()
            node = self.expr()
            self._expect(")")
            self._depth -= 1
            return node
        if self._at("["):
            return ListExpr(self._args("]"))
        if self._at("{"):
            return MapExpr(self._entries())
        raise CelSyntaxError(f"unexpected {token.text or 'end of input'!r} at offset {token.pos}")

    def _name(self) -> Node:
        name = self._ident()
        if name in ("true", "false"):
            return Literal("bool")
        if name == "null":
            return Literal("null")
        if self._at("("):
            return Call(name, self._args(")"))
        return Ident(name)


def _is_type_name(head: Node, suffixes: list[Suffix]) -> bool:
    """``T{...}`` or ``a.b.T{...}``: a message construction follows a (qualified) name."""
    return isinstance(head, Ident) and all(isinstance(s, Field) for s in suffixes)

"""Which fields of which steps an expression reads: static paths under ``steps``.

``steps.check.ok && size(steps.check.regions) > 1`` reads ``check.ok`` and
``check.regions``, never ``check.model``. The engine uses these paths to hand an expression
only the outputs it names (:func:`step_paths`), so a condition next to a 300 MB model never
loads the model.

A path stops at the first selection that is not a field name or a string-literal index
(``steps.fe[index]``, ``steps.check.items.map(...)``): the value reached so far is read whole.
A step used bare (``size(steps.check)``, ``steps.check == x``) is read whole (its path is
empty). Paths are only given when the tree agrees with the step references found by
:mod:`kaon.model.expressions`; otherwise the caller reads every referenced step whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kaon.model import cel_syntax as syn

Path = tuple[str, ...]
StepPaths = Mapping[str, frozenset[Path]]


def step_paths(
    tree: syn.Node, bound: frozenset[str], step_refs: frozenset[str]
) -> StepPaths | None:
    """The paths read under each ``steps.X`` of ``tree`` (``X -> {path after X}``).

    None when they cannot be known: ``steps`` is used without a literal step name, is
    shadowed by a comprehension variable, or the tree disagrees with ``step_refs``.
    """
    if "steps" in bound:
        return None
    found: dict[str, set[Path]] = {}
    for path in _uses(tree):
        if not path:
            return None  # ``steps`` itself, or ``steps[expr]``
        found.setdefault(path[0], set()).add(path[1:])
    if frozenset(found) != step_refs:
        return None
    return {step: frozenset(paths) for step, paths in found.items()}


def _uses(node: syn.Node) -> Iterator[Path]:
    """Every static path under ``steps`` in ``node`` (without the ``steps`` root)."""
    stack: list[syn.Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, syn.Ident):
            if current.name == "steps":
                yield ()
        elif isinstance(current, syn.Member):
            if isinstance(current.head, syn.Ident) and current.head.name == "steps":
                path, rest = _static_prefix(current.suffixes)
                yield path
            else:
                stack.append(current.head)
                rest = current.suffixes
            stack.extend(_suffix_children(rest))
        else:
            stack.extend(_children(current))


def _static_prefix(suffixes: tuple[syn.Suffix, ...]) -> tuple[Path, tuple[syn.Suffix, ...]]:
    """The leading field names (and string-literal indexes) and the suffixes after them."""
    path: list[str] = []
    for position, suffix in enumerate(suffixes):
        if isinstance(suffix, syn.Field):
            path.append(suffix.name)
        elif (
            isinstance(suffix, syn.Index)
            and isinstance(suffix.key, syn.Literal)
            and suffix.key.kind == "string"
            and suffix.key.text is not None
        ):
            path.append(suffix.key.text)
        else:
            return tuple(path), suffixes[position:]
    return tuple(path), ()


def _suffix_children(suffixes: tuple[syn.Suffix, ...]) -> Iterator[syn.Node]:
    for suffix in suffixes:
        if isinstance(suffix, syn.Index):
            yield suffix.key
        elif isinstance(suffix, syn.Method):
            yield from suffix.args
        elif isinstance(suffix, syn.StructInit):
            for key, value in suffix.entries:
                yield key
                yield value


def _children(node: syn.Node) -> Iterator[syn.Node]:
    if isinstance(node, syn.ListExpr | syn.Call):
        yield from node.items if isinstance(node, syn.ListExpr) else node.args
    elif isinstance(node, syn.MapExpr):
        for key, value in node.entries:
            yield key
            yield value
    elif isinstance(node, syn.Unary):
        yield node.operand
    elif isinstance(node, syn.Binary):
        yield node.first
        yield from (operand for _, operand in node.rest)
    elif isinstance(node, syn.Conditional):
        for condition, value in node.branches:
            yield condition
            yield value
        yield node.otherwise

"""What may be stored, and how anything stored is shown: bounded, valid text only.

Every value a caller hands the server to keep (token groups, signal parameters, run labels
and parameters, workflow properties) passes :func:`check_value` at the boundary: its strings
must be valid Unicode that encodes to UTF-8 (no lone surrogates), its nesting at most
:data:`MAX_DEPTH` deep and its size bounded. A row stored before these checks existed can
still hold anything, so reads pass what they show through :func:`readable`, which never
raises: an unencodable string becomes U+FFFD, a too-deep subtree a marker string.
"""

from __future__ import annotations

import math
from typing import Any

from kaon.errors import DefinitionError, Location, Problem
from kaon.model.text import readable_text

__all__ = [
    "MAX_DEPTH",
    "MAX_STRING",
    "TOO_DEEP",
    "UnsafeValueError",
    "check_text",
    "check_value",
    "readable",
    "readable_text",
]

MAX_DEPTH = 32
"""How deep a stored JSON value may nest (objects and arrays)."""

MAX_STRING = 1_000_000
"""The longest string a stored value may hold, in characters."""

TOO_DEEP = "<nested too deep>"


class UnsafeValueError(DefinitionError):
    """A value that cannot be stored safely (HTTP 422)."""


def check_text(text: str, where: str = "") -> None:
    """Raise UnsafeValueError unless ``text`` encodes to UTF-8 and is not too long."""
    problem = _text_problem(text)
    if problem:
        raise UnsafeValueError(Problem(problem, Location(None, field=where or None)))


def check_value(value: Any, where: str = "", *, max_depth: int = MAX_DEPTH) -> None:
    """Raise UnsafeValueError unless ``value`` (decoded JSON) nests at most ``max_depth``
    deep, every string in it (keys too) is valid, bounded text and every number finite
    (Python's JSON decoder reads ``NaN``, ``Infinity`` and ``1e400`` as floats that no
    store can write)."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
        elif isinstance(item, dict | list | tuple):
            problem = f"nested deeper than {max_depth} levels" if depth >= max_depth else None
            if problem is None:
                pairs = item.items() if isinstance(item, dict) else enumerate(item)
                for key, child in pairs:
                    key_path = f"{path}.{key}" if path else str(key)
                    if isinstance(key, str) and _text_problem(key):
                        problem = f"key {_text_problem(key)}"
                        break
                    stack.append((child, _shown(key_path), depth + 1))
        elif isinstance(item, float) and not math.isfinite(item):
            problem = "NaN and Infinity are not JSON values"
        else:
            problem = None
        if problem:
            raise UnsafeValueError(Problem(problem, Location(None, field=_shown(path) or None)))


def readable(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` made safe to show: unencodable strings repaired, deep subtrees replaced.

    Never raises; returns plain JSON types (unknown objects become their ``repr``)."""
    return _readable(value, max_depth)


def _readable(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return readable_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict | list | tuple):
        if depth <= 0:
            return TOO_DEEP
        if isinstance(value, dict):
            return {readable_text(str(k)): _readable(v, depth - 1) for k, v in value.items()}
        return [_readable(v, depth - 1) for v in value]
    return readable_text(repr(value))


def _text_problem(text: str) -> str | None:
    if len(text) > MAX_STRING:
        return f"a string is longer than {MAX_STRING:,} characters"
    if "\x00" in text:
        return "holds a NUL character (U+0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate?)"
    return None


def _shown(path: str) -> str:
    """A field path fit for a message (itself repaired, and short)."""
    return readable_text(path)[:200]

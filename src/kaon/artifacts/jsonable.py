"""Cheap checks of whether a value is plain JSON, and how big its compact JSON can be.

A step's small outputs go inline into the state store, so :func:`inline_json` runs once per
step on the hot path and must cost microseconds. It walks the value once, accepting only the
*exact* types that survive a JSON round trip (``dict`` with ``str`` keys, ``list``, ``str``,
``int``, finite ``float``, ``bool``, ``None``; subclasses such as enums are rejected so that
they round-trip through another serializer instead of coming back as plain values), and
``tuple``, which comes back as a list (the value is normalized to one here, so the producer's
run and a reader of the store see the same value). While walking it adds up an upper bound
of the compact JSON size; only when that bound exceeds the limit is ``json.dumps`` run to
measure exactly.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 100  # deeper values (or cycles) are not treated as JSON

# Upper bounds of the compact JSON text of scalars (ensure_ascii=True, so chars == bytes).
_INT_BOUND = 21  # "-9223372036854775808" and any int in the 64-bit range
_FLOAT_BOUND = 24  # "-2.2250738585072014e-308"
_STR_CHAR_BOUND = 12  # a non-BMP char becomes a surrogate pair "\\ud83d\\ude00"
_INT_LOW, _INT_HIGH = -(2**63), 2**64


class _NotJson(Exception):
    """Raised inside the walk when a value is not plain JSON."""


def _walk(value: Any, depth: int) -> tuple[Any, int]:
    """Return ``(normalized value, upper bound of its compact JSON size)`` or raise _NotJson.

    The normalized value is ``value`` itself unless a tuple had to become a list.
    """
    kind = type(value)
    if kind is str:
        return value, len(value) * _STR_CHAR_BOUND + 2
    if value is None or kind is bool:
        return value, 5
    if kind is int:
        if _INT_LOW <= value < _INT_HIGH:
            return value, _INT_BOUND
        return value, len(str(value))  # may raise ValueError past the int/str digit limit
    if kind is float:
        if not math.isfinite(value):
            raise _NotJson
        return value, _FLOAT_BOUND
    if depth >= MAX_DEPTH:
        raise _NotJson
    if kind is dict:
        return _walk_dict(value, depth)
    if kind is list or kind is tuple:
        return _walk_list(value, depth)
    raise _NotJson


def _walk_dict(value: dict[Any, Any], depth: int) -> tuple[Any, int]:
    size = 2
    changed = False
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str:
            raise _NotJson
        normal, item_size = _walk(item, depth + 1)
        changed = changed or normal is not item
        out[key] = normal
        size += len(key) * _STR_CHAR_BOUND + 4 + item_size  # quotes, colon, comma
    return (out if changed else value), size


def _walk_list(value: list[Any] | tuple[Any, ...], depth: int) -> tuple[Any, int]:
    size = 2
    changed = type(value) is tuple
    out: list[Any] = []
    for item in value:
        normal, item_size = _walk(item, depth + 1)
        changed = changed or normal is not item
        out.append(normal)
        size += item_size + 1
    return (out if changed else value), size


def normalize_json(value: Any) -> tuple[bool, Any]:
    """``(True, normalized value)`` if ``value`` is plain JSON, else ``(False, None)``.

    Normalized means tuples turned into lists. Never raises.
    """
    try:
        normal, _ = _walk(value, 0)
    except (_NotJson, ValueError, RecursionError):
        return False, None
    return True, normal


def dumps_compact(value: Any) -> str:
    """Compact JSON text of a plain JSON value (no spaces, ASCII only, NaN rejected)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def inline_json(value: Any, limit: int) -> tuple[bool, Any]:
    """``(True, normalized value)`` when ``value`` is plain JSON of at most ``limit`` bytes.

    The size is that of :func:`dumps_compact`'s output. Returns ``(False, None)`` otherwise;
    never raises.
    """
    # Fast paths for the commonest step results.
    if (value is None or type(value) is bool) and limit >= 5:
        return True, value
    try:
        normal, bound = _walk(value, 0)
    except (_NotJson, ValueError, RecursionError):
        return False, None
    if bound <= limit:
        return True, normal
    try:
        size = len(dumps_compact(normal))
    except (ValueError, TypeError, RecursionError):
        return False, None
    return (True, normal) if size <= limit else (False, None)

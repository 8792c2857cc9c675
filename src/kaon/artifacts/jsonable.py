"""Cheap checks of whether a value is plain JSON, and how big its compact JSON can be.

A step's small outputs go inline into the state store, so :func:`inline_json` runs once per
step on the hot path and must cost microseconds. It walks the value once, accepting only the
*exact* types that survive a JSON round trip (``dict`` with ``str`` keys, ``list``, ``str``,
``int``, finite ``float``, ``bool``, ``None``; subclasses such as enums are rejected so that
they round-trip through another serializer instead of coming back as plain values), and
``tuple``: an inline :class:`~kaon.model.values.Literal` records where its tuples are
(:func:`~kaon.model.values.encode_ref`), so a tuple comes back a tuple. A JSON *text* cannot
say so: :func:`is_plain_json` (what the ``json`` serializer and a notebook's ``record``
write as JSON) refuses tuples, which then go to a serializer that keeps them. While walking
it adds up an upper bound of the compact JSON size; only when that bound exceeds the limit is
``json.dumps`` run to measure exactly.
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


def _walk(value: Any, depth: int, tuples: bool) -> int:
    """The upper bound of ``value``'s compact JSON size, or raise _NotJson (a tuple is JSON
    when ``tuples``)."""
    kind = type(value)
    if kind is str:
        return len(value) * _STR_CHAR_BOUND + 2
    if value is None or kind is bool:
        return 5
    if kind is int:
        if _INT_LOW <= value < _INT_HIGH:
            return _INT_BOUND
        return len(str(value))  # may raise ValueError past the int/str digit limit
    if kind is float:
        if not math.isfinite(value):
            raise _NotJson
        return _FLOAT_BOUND
    if depth >= MAX_DEPTH:
        raise _NotJson
    if kind is dict:
        size = 2
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJson
            size += len(key) * _STR_CHAR_BOUND + 4 + _walk(item, depth + 1, tuples)
        return size
    if kind is list or (kind is tuple and tuples):
        size = 2
        for item in value:
            size += _walk(item, depth + 1, tuples) + 1
        return size
    raise _NotJson


def _bound(value: Any, tuples: bool) -> int | None:
    try:
        return _walk(value, 0, tuples)
    except (_NotJson, ValueError, RecursionError):
        return None


def is_plain_json(value: Any) -> bool:
    """True when ``value`` is what parsing its JSON text gives back (no tuples). Never raises."""
    return _bound(value, False) is not None


def is_literal_json(value: Any) -> bool:
    """True when ``value`` is plain JSON or holds tuples where plain JSON holds lists: a
    :class:`~kaon.model.values.Literal` keeps it exactly. Never raises."""
    return _bound(value, True) is not None


def dumps_compact(value: Any) -> str:
    """Compact JSON text of a plain JSON value (no spaces, ASCII only, NaN rejected)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def inline_json(value: Any, limit: int) -> bool:
    """True when ``value`` can be an inline Literal: :func:`is_literal_json` and at most
    ``limit`` bytes of :func:`dumps_compact`'s output. Never raises."""
    # Fast paths for the commonest step results.
    if (value is None or type(value) is bool) and limit >= 5:  # "false" is the longest
        return True
    bound = _bound(value, True)
    if bound is None:
        return False
    if bound <= limit:
        return True
    try:
        size = len(dumps_compact(value))
    except (ValueError, TypeError, RecursionError):
        return False
    return size <= limit

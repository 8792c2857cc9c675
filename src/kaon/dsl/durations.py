"""Durations as people write them (``1h30m``, ``10m``, ``45s``, ``500ms``) and as seconds.

Both front ends accept a duration as a number of seconds or as a string of one or more
``<number><unit>`` parts, units ``d``, ``h``, ``m``, ``s`` and ``ms``. Parsing is exact
(decimal arithmetic), so :func:`format_duration` and :func:`parse_duration` round-trip.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from kaon.errors import DefinitionError, Location, Problem

_UNITS: dict[str, Decimal] = {
    "d": Decimal(86400),
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|d|h|m|s)")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_FORMAT_ORDER: tuple[tuple[str, int], ...] = (
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)


def _fail(value: object, location: Location, why: str) -> DefinitionError:
    hint = "use seconds or a string such as '1h30m', '10m', '45s', '500ms'"
    return DefinitionError(Problem(f"invalid duration {value!r}: {why}; {hint}", location))


def parse_duration(value: object, location: Location = Location()) -> float:
    """Return ``value`` in seconds.

    ``value`` is a non-negative number of seconds (``12.5``, ``10``), a numeric string, a
    string of ``<number><unit>`` parts (``"1h30m"``, ``"500ms"``, ``"1.5s"``), or a
    :class:`datetime.timedelta`.
    Raises :class:`DefinitionError` located at ``location`` for anything else (a negative,
    infinite or boolean value, an unknown unit, an empty string).
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(value, location, f"expected a number or a string, got {type(value).__name__}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise _fail(value, location, "must be a finite number of seconds >= 0")
        return float(value)
    text = value.strip().replace(" ", "")
    if not text:
        raise _fail(value, location, "empty")
    if _NUMBER.fullmatch(text):
        return float(Decimal(text))
    total = Decimal(0)
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        try:
            total += Decimal(match.group(1)) * _UNITS[match.group(2)]
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise _fail(value, location, "not a number") from exc
        position = match.end()
    if position != len(text) or position == 0:
        raise _fail(value, location, f"cannot read {text[position:]!r}")
    return float(total)


def format_duration(seconds: float) -> str:
    """Render ``seconds`` the way people write it (``5400`` -> ``"1h30m"``).

    Whole milliseconds use units; anything finer is written as decimal seconds. The result
    always parses back to exactly ``seconds``. Raises :class:`DefinitionError` for a
    negative or non-finite value.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise _fail(seconds, Location(), "must be a finite number of seconds >= 0")
    millis = round(seconds * 1000)
    if float(Decimal(millis) / 1000) == seconds:
        if millis == 0:
            return "0s"
        parts: list[str] = []
        for unit, size in _FORMAT_ORDER:
            count, millis = divmod(millis, size)
            if count:
                parts.append(f"{count}{unit}")
        return "".join(parts)
    return f"{format(Decimal(repr(seconds)), 'f')}s"

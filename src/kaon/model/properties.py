"""Workflow properties: what can be changed without a new version, and its checks.

Properties (``kaon workflow set``, ``PATCH /workflows/{name}``) are kept as JSON. The ones
Kaon reads are checked when they are set, each problem located at ``properties.<key>``: a
``run_strategy`` that is not a strategy, a ``concurrency`` that is not a positive int, an
``alerts`` object with unknown keys or malformed URLs, durations or deadlines. Other keys
are the user's own metadata, except one that looks like a misspelt known key
(``run_strategi``), which is refused with the name it resembles.
"""

from __future__ import annotations

import datetime as dt
import difflib
import urllib.parse
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kaon.errors import Location, ParameterError, Problem


class RunStrategy(StrEnum):
    """How overlapping runs of one workflow are handled (see :mod:`kaon.triggers.strategies`)."""

    PARALLEL = "parallel"
    SEQUENTIAL = "sequential"
    STRICT_SEQUENTIAL = "strict_sequential"
    FIRST_ONLY = "first_only"
    LAST_ONLY = "last_only"


KNOWN = ("run_strategy", "concurrency", "alerts")
MAX_RUNS = 1_000_000  # a run strategy's concurrency: runs of one workflow at once
ALERT_KEYS = ("on_failure", "on_success", "on_late", "max_duration_s", "deadline")
_URL_KEYS = ("on_failure", "on_success", "on_late")


SET: Final = "(set)"
REMOVED: Final = "(removed)"
_PLAIN_KEYS = ("run_strategy", "concurrency")  # Kaon's own settings: no secret in them
_PLAIN_ALERT_KEYS = ("max_duration_s", "deadline")


def audited_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Property ``changes`` as the audit trail keeps them: every key, but a value only where
    it cannot be a secret (``run_strategy``, ``concurrency``, an alert's ``max_duration_s``
    and ``deadline``). Alert webhook URLs and the user's own keys (which may hold anything)
    are :data:`SET`; a removed key is :data:`REMOVED`. The trail is read by whichever group
    owns the workflow later, and by admins: a webhook URL grants whoever holds it a way to
    post into a team's channel. Idempotent (an entry already redacted stays as it is)."""
    return {str(key): _audited(str(key), value) for key, value in changes.items()}


def _audited(key: str, value: Any) -> Any:
    if value is None:
        return REMOVED
    if key in _PLAIN_KEYS:
        return value
    if key == "alerts" and isinstance(value, Mapping):
        return {
            str(k): v if k in _PLAIN_ALERT_KEYS else REMOVED if v is None else SET
            for k, v in value.items()
        }
    return value if value in (SET, REMOVED) else SET


def parse_deadline(text: str) -> tuple[dt.time, ZoneInfo]:
    """``"HH:MM"`` or ``"HH:MM Area/City"`` as a time and a zone (UTC by default).

    Raises ValueError for anything else.
    """
    parts = text.split()
    if len(parts) not in (1, 2):
        raise ValueError(f"deadline {text!r}: expected 'HH:MM' or 'HH:MM Area/City'")
    hour, _, minute = parts[0].partition(":")
    try:
        at = dt.time(int(hour), int(minute))
        zone = ZoneInfo(parts[1] if len(parts) == 2 else "UTC")
    except (ValueError, ZoneInfoNotFoundError) as error:
        raise ValueError(f"deadline {text!r}: expected 'HH:MM' or 'HH:MM Area/City'") from error
    return at, zone


def check_properties(changes: Mapping[str, Any]) -> None:
    """Raise ParameterError listing what is wrong with the property ``changes`` (``None``
    values remove keys and are always fine)."""
    problems = [p for key, value in changes.items() for p in _problems(key, value)]
    if problems:
        raise ParameterError(problems)


def _problems(key: str, value: Any) -> list[Problem]:
    where = Location(field=f"properties.{key}")
    if value is None:
        return []
    if key == "run_strategy":
        names = ", ".join(s.value for s in RunStrategy)
        if value not in {s.value for s in RunStrategy}:
            return [Problem(f"unknown run strategy {value!r:.60}: use one of {names}", where)]
        return []
    if key == "concurrency":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RUNS:
            return [
                Problem(
                    f"concurrency must be an int from 1 to {MAX_RUNS:,}, got {value!r:.60}", where
                )
            ]
        return []
    if key == "alerts":
        return _alert_problems(value, where)
    close = difflib.get_close_matches(key, KNOWN, n=1, cutoff=0.75)
    if close and key != close[0]:
        return [Problem(f"unknown property {key!r}: did you mean {close[0]!r}?", where)]
    return []


def _is_http_url(url: Any) -> bool:
    """``url`` is an http(s) URL with a host (and a valid port, if any), without spaces or
    control characters: one a webhook can be POSTed to (``http://[::1`` is not)."""
    if not isinstance(url, str) or any(c.isspace() or not c.isprintable() for c in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not one
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _alert_problems(alerts: Any, where: Location) -> list[Problem]:
    if not isinstance(alerts, Mapping):
        return [Problem(f"alerts must be an object, got {type(alerts).__name__}", where)]
    problems: list[Problem] = []
    for key, value in alerts.items():
        at = where.with_field(str(key))
        if key not in ALERT_KEYS:
            known = ", ".join(ALERT_KEYS)
            problems.append(Problem(f"unknown alert setting {key!r:.60}: use {known}", at))
        elif key in _URL_KEYS:
            urls = [value] if isinstance(value, str) else value
            if not isinstance(urls, list) or not all(_is_http_url(u) for u in urls):
                problems.append(Problem(f"{key} must be http(s) URLs, got {value!r:.80}", at))
        elif key == "max_duration_s":
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(Problem(f"max_duration_s must be > 0, got {value!r:.60}", at))
        elif key == "deadline":
            try:
                if not isinstance(value, str):
                    raise ValueError(f"deadline must be a string, got {value!r:.60}")
                parse_deadline(value)
            except ValueError as error:
                problems.append(Problem(str(error), at))
    return problems

"""Data-arrival triggers: poll an fsspec URL template and fire once per new path.

The template's ``{date}`` / ``{date:%Y/%m/%d}`` fields are filled with today's date and the
``lookback_days`` before it, in the trigger's time zone; ``*`` / ``?`` / ``[...]`` glob.
Which paths already fired is the trigger store's business (one firing per path); a path
that already exists when the trigger is first seen fires too (its data was never processed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import fsspec

from kaon.errors import ConfigurationError
from kaon.model.triggers import DataTriggerSpec, render_path

_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class DataArrival:
    """A path that exists, and the date whose template produced it."""

    path: str
    date: str  # ISO date


def candidate_dates(trigger: DataTriggerSpec, now: float) -> list[dt.date]:
    """Today (in the trigger's time zone) and the ``lookback_days`` before, oldest first."""
    today = dt.datetime.fromtimestamp(now, ZoneInfo(trigger.timezone)).date()
    return [today - dt.timedelta(days=n) for n in range(trigger.lookback_days, -1, -1)]


def find_arrivals(trigger: DataTriggerSpec, now: float) -> list[DataArrival]:
    """Every path of the template that exists now, for each candidate date, oldest first.

    Raises :class:`ConfigurationError` when the URL's protocol is not available (an fsspec
    backend that is not installed); other I/O failures count as "not there yet".
    """
    found: list[DataArrival] = []
    seen: set[str] = set()
    for day in candidate_dates(trigger, now):
        url = render_path(trigger.path, day)
        for path in _existing(url):
            if path not in seen:
                seen.add(path)
                found.append(DataArrival(path, day.isoformat()))
    return found


def _existing(url: str) -> list[str]:
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise ConfigurationError(f"cannot poll {url!r}: {error}") from error
    protocol = _protocol(fs)
    try:
        if any(ch in path for ch in _GLOB):
            return sorted(_unstrip(protocol, p) for p in fs.glob(path))
        return [url] if fs.exists(path) else []
    except (OSError, ValueError):
        return []


def _protocol(fs: Any) -> str:
    protocol = fs.protocol
    return str(protocol[0] if isinstance(protocol, tuple | list) else protocol)


def _unstrip(protocol: str, path: str) -> str:
    if protocol in ("file", "local"):
        return path
    return f"{protocol}://{path.lstrip('/')}"

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

from kaon.artifacts import fsspec_options
from kaon.errors import ConfigurationError, KaonError
from kaon.model.triggers import DataTriggerSpec, render_path

_GLOB = frozenset("*?[")


class TriggerPollError(KaonError):
    """A data trigger's storage could not be polled (this trigger only: the others go on)."""


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
    backend that is not installed) and :class:`TriggerPollError` when the storage cannot be
    asked (an unreachable endpoint, refused credentials); a missing folder is "not there
    yet". S3 URLs get the artifact store's endpoint (``$KAON_S3_ENDPOINT_URL``).
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
        fs, path = fsspec.core.url_to_fs(url, **_poll_options(url))
    except (ImportError, ValueError) as error:
        raise ConfigurationError(f"cannot poll {url!r}: {error}") from error
    protocol = _protocol(fs)
    try:
        if any(ch in path for ch in _GLOB):
            return sorted(_unstrip(protocol, p) for p in fs.glob(path))
        return [url] if fs.exists(path) else []
    except (FileNotFoundError, NotADirectoryError):
        return []
    except Exception as error:  # a backend's own errors: unreachable endpoint, credentials
        raise TriggerPollError(f"cannot poll {url!r}: {type(error).__name__}: {error}") from None


def _poll_options(url: str) -> dict[str, Any]:
    """The artifact store's options, and for S3 short time limits and a single retry: a poll
    that cannot reach its storage gives up within seconds and tries again at the next poll,
    instead of holding up the other triggers' pass."""
    options = fsspec_options(url)
    if options:
        options["config_kwargs"] = {
            "connect_timeout": 3,
            "read_timeout": 10,
            "retries": {"max_attempts": 1},
        }
    return options


def _protocol(fs: Any) -> str:
    protocol = fs.protocol
    return str(protocol[0] if isinstance(protocol, tuple | list) else protocol)


def _unstrip(protocol: str, path: str) -> str:
    if protocol in ("file", "local"):
        return path
    return f"{protocol}://{path.lstrip('/')}"

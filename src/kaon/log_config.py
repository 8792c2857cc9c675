"""Kaon's logging, configured in one place: a level and a format for everything Kaon logs.

The level comes from ``--log-level``, else ``KAON_LOG_LEVEL``, else the command's default
(``warning`` for the CLI, ``info`` for ``kaon server``). ``KAON_LOG_FORMAT=json`` writes one
JSON object per line (``ts``, ``level``, ``logger``, ``message``, ``exc_info``), for log
collectors; the default is one line of text. Alembic's per-migration INFO lines are kept
below the level unless it is ``debug``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Literal

from kaon.errors import ConfigurationError

LogLevel = Literal["debug", "info", "warning", "error"]
LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")
LEVEL_VARIABLE = "KAON_LOG_LEVEL"
FORMAT_VARIABLE = "KAON_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
# Chatty libraries, kept at WARNING unless the level is debug.
QUIET_LOGGERS = ("alembic", "alembic.runtime.migration", "httpx", "httpcore")

# The level `--log-level` gave for this process, if any (set by the CLI's root options).
_chosen: list[str | None] = [None]


class _Handler(logging.Handler):
    """Kaon's handler on the root logger (recognised, and replaced, when configured again).

    It writes to the ``sys.stderr`` of the moment, so a stream swapped since (by a test
    runner, a daemon) is never written to after it is closed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UNIX seconds), ``level``, ``logger``, ``message``,
    and ``exc_info`` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": round(record.created, 6),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def choose_level(level: str | None) -> None:
    """Remember ``--log-level`` for this process (None: not given)."""
    _chosen[0] = level


def configure_logging(default: LogLevel = "warning") -> str:
    """Install Kaon's handler on the root logger (replacing one installed before) at the level
    in force, and return that level. Raises :class:`ConfigurationError` naming
    ``KAON_LOG_LEVEL`` or ``KAON_LOG_FORMAT`` for an unknown value."""
    level = (_chosen[0] or os.environ.get(LEVEL_VARIABLE) or default).lower()
    if level not in LEVELS:
        raise ConfigurationError(
            f"{LEVEL_VARIABLE}: unknown log level {level!r}; choose one of {', '.join(LEVELS)}"
        )
    style = (os.environ.get(FORMAT_VARIABLE) or "text").lower()
    if style not in ("text", "json"):
        raise ConfigurationError(f"{FORMAT_VARIABLE}: unknown log format {style!r}; text or json")
    handler = _Handler()
    handler.setFormatter(JsonFormatter() if style == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    return level

"""The SIGINT/SIGTERM handlers that stop an engine, and only in the engine's own process.

``kaon run`` and the server's parts stop their engine on SIGINT and SIGTERM. With the inline
executor a step runs in the engine's process, and a process it forks (``os.fork``,
multiprocessing's ``fork`` start method) is a copy that would keep those handlers: SIGTERM
would ask the child's copy of the engine (or the halting thread, which the child does not
have) to stop and leave the child running, so ``Process.terminate()`` and
``Pool.terminate()`` no longer end it, and Ctrl-C would not interrupt it. Handlers installed
with :func:`install` are replaced, in a forked child, by the default handling.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_installed: list[Handler] = []  # this process's engine handlers (never the child's)


def install(handler: Handler) -> dict[signal.Signals, Any]:
    """Handle SIGINT and SIGTERM with ``handler`` (in the main thread); returns the handlers
    replaced, for :func:`restore`."""
    _installed.append(handler)
    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


def restore(previous: dict[signal.Signals, Any]) -> None:
    """Put back the handlers :func:`install` replaced."""
    for sig, old in previous.items():
        signal.signal(sig, old)
    in_use = [signal.getsignal(sig) for sig in STOP_SIGNALS]
    _installed[:] = [handler for handler in _installed if handler in in_use]


def _default_in_child() -> None:
    """(A forked child.) Default handling of the signals an engine handler holds."""
    if not _installed:
        return
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(sig) in _installed:
                default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
                signal.signal(sig, default)
    _installed.clear()


os.register_at_fork(after_in_child=_default_in_child)

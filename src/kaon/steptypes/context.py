"""The context a running step sees: who it is, and how it talks back to the engine.

Python steps get it with :func:`kaon.context`; shell steps get the same facts as environment
variables and talk back through the line protocol documented in :mod:`kaon.steptypes.shell`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from kaon.errors import KaonError
from kaon.executors.base import EventSink
from kaon.model.events import (
    AttemptKey,
    LogLine,
    LogStream,
    MetricReported,
    ProgressReported,
    SignalEmitted,
)


@dataclass
class StepContext:
    """What a running step may read and report.

    ``step`` is the step run's path (``segments[3].train``); ``item`` and ``index`` are set
    inside a foreach body, ``iteration`` inside a loop body; ``attempt`` is 1-based.
    """

    key: AttemptKey
    step: str
    workflow: str
    params: Mapping[str, Any]
    emit: EventSink
    item: Any = None
    index: int | None = None
    iteration: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """Id of the run."""
        return self.key[0]

    @property
    def attempt(self) -> int:
        """1-based attempt number."""
        return self.key[2]

    def log(self, text: str, stream: LogStream = "log") -> None:
        """Record a log line."""
        for line in str(text).splitlines() or [""]:
            self.emit(LogLine(self.key, time.time(), stream, line))

    def progress(
        self, done: float | None = None, total: float | str | None = None, message: str = ""
    ) -> None:
        """Report progress: ``progress(done, total)`` counts units (``progress(30, 200)``:
        the CLI shows 30/200 with a bar and an ETA); ``progress(fraction)`` gives a fraction
        in [0, 1]; ``progress(None, message=...)`` a message only. A string second argument
        is a message (``progress(0.5, "halfway")``)."""
        if isinstance(total, str):
            message, total = total, None
        fraction: float | None = None
        count: float | None = None
        if done is not None and total is not None:
            if float(total) > 0:  # a total of 0 units says nothing about how far along
                count, total = max(float(done), 0.0), float(total)
                fraction = min(count / total, 1.0)
            else:
                total = None
        elif done is not None:
            fraction = min(max(float(done), 0.0), 1.0)
        else:
            total = None
        self.emit(ProgressReported(self.key, time.time(), fraction, message, count, total))

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        """Report a named number (``step`` orders repeated values, such as epochs)."""
        self.emit(MetricReported(self.key, time.time(), str(name), float(value), step))

    def emit_signal(self, name: str, **params: Any) -> None:
        """Send a signal: it may start runs of workflows triggered by it and wakes steps
        waiting for it. ``params`` must be JSON values."""
        self.emit(SignalEmitted(self.key, time.time(), str(name), dict(params)))


_current: ContextVar[StepContext | None] = ContextVar("kaon_step_context", default=None)


def current_context() -> StepContext:
    """The context of the step running in this thread. Raises KaonError outside a step."""
    ctx = _current.get()
    if ctx is None:
        raise KaonError("kaon.context() is only available while a step runs")
    return ctx


def set_context(ctx: StepContext | None) -> Any:
    """Bind ``ctx`` to the current thread; returns a token for :func:`reset_context`."""
    return _current.set(ctx)


def reset_context(token: Any) -> None:
    """Undo :func:`set_context`."""
    _current.reset(token)

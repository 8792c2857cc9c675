"""The context a running step sees: who it is, and how it talks back to the engine.

Python steps get it with :func:`kaon.context`; shell steps get the same facts as environment
variables and talk back through the line protocol documented in :mod:`kaon.steptypes.shell`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from kaon.executors.base import EventSink
from kaon.model.events import (
    MAX_METRIC_NAME_CHARS,
    MAX_SIGNALS_PER_ATTEMPT,
    AttemptKey,
    ExecutorEvent,
    LogLine,
    LogStream,
    MetricReported,
    ProgressReported,
    SignalEmitted,
)
from kaon.model.params import json_problem


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
    signals_sent: int = field(default=0, repr=False)  # by this attempt, see emit_signal

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
        """Report a named number (``step`` orders repeated values, such as epochs).

        Raises ``ValueError`` for a value that is not a finite number (NaN, infinity), as
        :func:`kaon.notebook.metric` does: the state store and the JSON outputs hold finite
        numbers only; and for a name longer than
        :data:`~kaon.model.events.MAX_METRIC_NAME_CHARS` characters."""
        name = str(name)
        if len(name) > MAX_METRIC_NAME_CHARS:
            raise ValueError(
                f"metric name {name[:40]!r}... of {len(name):,} characters is longer than "
                f"{MAX_METRIC_NAME_CHARS}"
            )
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"metric {name} = {value!r} is not a finite number")
        self.emit(MetricReported(self.key, time.time(), name, number, step))

    def emit_signal(self, name: str, **params: Any) -> None:
        """Send a signal: it may start runs of workflows triggered by it and wakes steps
        waiting for it. ``name`` must be a signal name ``kaon signal`` accepts and ``params``
        JSON values (ValueError otherwise); an attempt sends at most
        :data:`~kaon.model.events.MAX_SIGNALS_PER_ATTEMPT` (ValueError past them: the step
        knows, where a dropped signal would be a silent loss)."""
        from kaon.model.specs import signal_name_problem

        why = signal_name_problem(name)
        if why is not None:
            raise ValueError(why)
        problem = json_problem(params)
        if problem is not None:
            raise ValueError(f"the params of signal {name!r} are not JSON values: {problem}")
        if self.signals_sent >= MAX_SIGNALS_PER_ATTEMPT:
            raise ValueError(
                f"signal {name!r} not sent: an attempt sends at most "
                f"{MAX_SIGNALS_PER_ATTEMPT:,} signals (each may start runs)"
            )
        self.signals_sent += 1
        self.emit(SignalEmitted(self.key, time.time(), str(name), dict(params)))


_current: ContextVar[StepContext | None] = ContextVar("kaon_step_context", default=None)


def current_context() -> StepContext:
    """The context of the step running in this thread.

    Outside a run (a step called as a plain function, in a unit test) it is a
    :class:`RecordingContext`, bound on first use, whose reports a test can assert on.
    """
    ctx = _current.get()
    if ctx is None:
        ctx = RecordingContext()
        _current.set(ctx)
    return ctx


def set_context(ctx: StepContext | None) -> Any:
    """Bind ``ctx`` to the current thread; returns a token for :func:`reset_context`."""
    return _current.set(ctx)


def reset_context(token: Any) -> None:
    """Undo :func:`set_context`."""
    _current.reset(token)


class RecordingContext(StepContext):
    """The context of a step called outside a run: it records what the step reports.

    ``events`` holds every report in order; :attr:`metrics`, :attr:`logs`,
    :attr:`progress_reports` and :attr:`signals` are views of it for assertions::

        with kaon.test_context(params={"k": 3}, item="eu") as ctx:
            train(data)
        assert ctx.metrics["rmse"] == [0.9, 0.8]
    """

    def __init__(
        self,
        *,
        step: str = "test",
        workflow: str = "test",
        params: Mapping[str, Any] | None = None,
        item: Any = None,
        index: int | None = None,
        iteration: int | None = None,
    ) -> None:
        self.events: list[ExecutorEvent] = []
        super().__init__(
            key=("test", 0, 1),
            step=step,
            workflow=workflow,
            params=dict(params or {}),
            emit=self.events.append,
            item=item,
            index=index,
            iteration=iteration,
        )

    @property
    def metrics(self) -> dict[str, list[float]]:
        """Every value reported per metric name, in order."""
        found: dict[str, list[float]] = {}
        for event in self.events:
            if isinstance(event, MetricReported):
                found.setdefault(event.name, []).append(event.value)
        return found

    @property
    def logs(self) -> list[str]:
        """Every log line recorded with :meth:`log`."""
        return [e.text for e in self.events if isinstance(e, LogLine)]

    @property
    def progress_reports(self) -> list[tuple[float | None, str]]:
        """Every progress report: ``(fraction, message)``."""
        return [(e.fraction, e.message) for e in self.events if isinstance(e, ProgressReported)]

    @property
    def signals(self) -> list[tuple[str, dict[str, Any]]]:
        """Every signal sent: ``(name, params)``."""
        return [(e.name, dict(e.params)) for e in self.events if isinstance(e, SignalEmitted)]

    def clear(self) -> None:
        """Forget what was recorded."""
        self.events.clear()


@contextmanager
def test_context(
    *,
    step: str = "test",
    workflow: str = "test",
    params: Mapping[str, Any] | None = None,
    item: Any = None,
    index: int | None = None,
    iteration: int | None = None,
) -> Iterator[RecordingContext]:
    """Bind a fresh :class:`RecordingContext` (with these facts) for the ``with`` block: what
    :func:`kaon.context` returns inside it."""
    ctx = RecordingContext(
        step=step, workflow=workflow, params=params, item=item, index=index, iteration=iteration
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


test_context.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest to collect

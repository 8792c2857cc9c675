"""Typed, past-tense events that executors report about step attempts.

Events are the contract between executors and the engine: executors only report, the engine
alone writes state. The same events, once applied, feed the CLI's live view and the audit log.
Every event names the attempt it is about by its ``key``: ``(run id, step run id, attempt number)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from typing import Literal as TypingLiteral

from kaon.model.pickling import by_fields
from kaon.model.values import ValueRef

LogStream = TypingLiteral["stdout", "stderr", "log"]
ArtifactStoreFailure = TypingLiteral["", "refused", "unavailable"]
AttemptKey = tuple[str, int, int]  # (run id, step run id, attempt number)


@by_fields
@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why an attempt failed.

    ``platform`` is True when Kaon's machinery failed (a worker died, an artifact store was
    unreachable): such failures count against the platform retry budget, not the user's.
    ``bases`` names the exception's base classes, nearest first, so ``retry_on:
    [ConnectionError]`` retries a subclass of it. ``artifact_store`` says how the artifact
    store failed, for a platform failure of it: ``"refused"`` (no credentials, access denied,
    no such bucket: nothing changes until its configuration is fixed, so the attempt is not
    retried) or ``"unavailable"`` (an outage: retried after a growing pause, see
    :func:`kaon.engine.outages.step_retry_pause`).
    """

    error_type: str
    message: str
    traceback: str = ""
    platform: bool = False
    timeout: bool = False
    bases: tuple[str, ...] = ()
    artifact_store: ArtifactStoreFailure = ""

    def summary(self) -> str:
        """One line for tables: ``Type: message`` (first line of the message)."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.error_type}: {first}" if first else self.error_type


@by_fields
@dataclass(frozen=True, slots=True)
class StepStarted:
    """An attempt began executing on a worker."""

    key: AttemptKey
    at: float
    worker: str = ""


@by_fields
@dataclass(frozen=True, slots=True)
class LogLine:
    """A line the step wrote to stdout, stderr or its logger."""

    key: AttemptKey
    at: float
    stream: LogStream
    text: str


MAX_PROGRESS_MESSAGE_CHARS = 1_000
"""The longest progress message recorded: longer ones keep their head and tail."""


@by_fields
@dataclass(frozen=True, slots=True)
class ProgressReported:
    """The step reported how far along it is (``fraction`` in [0, 1], or just a message);
    ``done`` of ``total`` units when it counted them (30 of 200 batches)."""

    key: AttemptKey
    at: float
    fraction: float | None
    message: str = ""
    done: float | None = None
    total: float | None = None


MAX_METRIC_NAME_CHARS = 200
"""The longest metric name recorded: each is stored with every value and listed in every view
of the run's metrics."""

MAX_SIGNALS_PER_ATTEMPT = 1000
"""The most signals one attempt sends: each is a row, and may start a run of every workflow a
signal trigger of its name serves (a loop of 20,000 ``emit_signal`` calls stored 20,000)."""


@by_fields
@dataclass(frozen=True, slots=True)
class MetricReported:
    """The step reported a named number (``step`` orders repeated values, like epochs); its
    name is at most :data:`MAX_METRIC_NAME_CHARS` characters."""

    key: AttemptKey
    at: float
    name: str
    value: float
    step: int | None = None


@by_fields
@dataclass(frozen=True, slots=True)
class SignalEmitted:
    """The step sent a signal (it may start triggered runs and wake waiting steps)."""

    key: AttemptKey
    at: float
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@by_fields
@dataclass(frozen=True, slots=True)
class StepSucceeded:
    """An attempt finished; ``outputs`` maps output names to stored values."""

    key: AttemptKey
    at: float
    outputs: Mapping[str, ValueRef] = field(default_factory=dict)


@by_fields
@dataclass(frozen=True, slots=True)
class StepFailed:
    """An attempt finished with an error; ``outputs`` holds what it kept (see
    :class:`~kaon.errors.StepError`), recorded with the failure and never passed on."""

    key: AttemptKey
    at: float
    error: ErrorInfo
    outputs: Mapping[str, ValueRef] = field(default_factory=dict)


@by_fields
@dataclass(frozen=True, slots=True)
class LogStored:
    """An attempt's log passed its budget: ``ref`` is the whole log, stored as a file artifact
    (recorded with lineage as the attempt's output :data:`LOG_OUTPUT`, never passed on)."""

    key: AttemptKey
    at: float
    ref: ValueRef


LOG_OUTPUT = "kaon.log"  # the name the full log of an attempt is recorded under

ExecutorEvent = (
    StepStarted
    | LogLine
    | LogStored
    | ProgressReported
    | MetricReported
    | SignalEmitted
    | StepSucceeded
    | StepFailed
)

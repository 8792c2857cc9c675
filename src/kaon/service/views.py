"""Typed views of runs, step runs, attempts and logs.

These pydantic models are the documented ``--json`` schema of the CLI and, later, the HTTP
API's response models: one definition for both. Times are Unix seconds (floats); durations
are seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Self, cast

from pydantic import BaseModel, ConfigDict, Field

from kaon.model.status import StepStatus
from kaon.model.values import ArtifactRef, Literal, RefDict, RefList, ValueRef, decode_ref
from kaon.service.safety import readable
from kaon.store.base import AttemptRecord, LogRecord, MetricRecord, RunRecord, StepRunRecord


def _duration(start: float | None, end: float | None, now: float | None) -> float | None:
    if start is None:
        return None
    stop = end if end is not None else now
    return None if stop is None else round(max(stop - start, 0.0), 6)


def step_duration(row: StepRunRecord, now: float | None) -> float | None:
    """How long a step run has taken: from its start to its end (or ``now``), in seconds.

    A skipped step shows only the time it worked: a task starts with its first attempt and a
    container with its children, but a wait step skipped while it waited did no work (it
    never ran, and has no attempt), so it shows none, like a step skipped before it
    started."""
    if row.status is StepStatus.SKIPPED and row.kind == "wait":
        return None
    return _duration(row.started_at, row.ended_at, now)


class View(BaseModel):
    """Base of the typed views: each builds its validator on first use, not at import (a
    command that shows one view does not pay for the others).

    The service builds views from the store's typed records with ``model_construct``
    (trusted values, already of the fields' types; the builders below convert enums and
    times): showing a view then builds no validator at all, which is most of the cost of a
    short command's first view. Its serializer is built when it is first dumped (``--json``,
    the HTTP API)."""

    model_config = ConfigDict(defer_build=True)

    @classmethod
    def of(cls, **values: Any) -> Self:
        """A view of trusted ``values`` (no validation): ``model_construct`` with the default
        factories of the fields not given called here, as pydantic would otherwise read each
        factory's signature on every call (``inspect.signature(list)``, a third of a
        millisecond)."""
        for name, info in cls.__pydantic_fields__.items():
            if name not in values and info.default_factory is not None:
                values[name] = cast("Callable[[], Any]", info.default_factory)()
        return cls.model_construct(**values)


class ErrorView(View):
    """Why something failed: the original error type and message, and its traceback."""

    type: str
    message: str
    traceback: str = ""
    platform: bool = False
    timeout: bool = False

    @property
    def summary(self) -> str:
        """``Type: first line of the message``."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.type}: {first}" if first else self.type


class OutputView(View):
    """One output of a step: inline value or a stored artifact's description."""

    kind: str = Field(description="value | artifact | list | dict")
    value: Any = None
    hash: str | None = None
    serializer: str | None = None
    size: int | None = None
    type: str | None = None
    items: int | None = Field(default=None, description="number of entries of a list or dict")


class AttemptView(View):
    """One attempt of a task step."""

    number: int
    status: str
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    worker: str = ""
    error: ErrorView | None = None


class StepRunView(View):
    """One step run (a task, a container, a foreach item or a loop iteration)."""

    path: str
    step_id: str
    kind: str
    status: str
    index: int | None = None
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    reason: str = ""
    error: ErrorView | None = None
    outputs: dict[str, OutputView] = Field(default_factory=dict)
    children: dict[str, int] = Field(
        default_factory=dict, description="foreach items / loop iterations by status"
    )
    attempt_list: list[AttemptView] = Field(default_factory=list)


class RunView(View):
    """A run: its workflow, parameters and status."""

    id: str
    workflow: str
    status: str
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    error: str | None = None
    restarts: int = 0
    executor: str = ""
    definition_hash: str = ""
    owner: str | None = None
    priority: int = 0
    waiting: str | None = Field(
        default=None,
        description="why a pending run waits (its workflow's run strategy), when read alone",
    )


class MetricView(View):
    """A number a step reported (a cached step: the execution it reused reported it, and
    ``reused_from`` names that step run as ``RUN:PATH``)."""

    path: str
    name: str
    value: float
    step: int | None = None
    at: float
    reused_from: str | None = None


class RunDetail(RunView):
    """A run with its step runs and metrics (``kaon show --json``)."""

    steps: list[StepRunView] = Field(default_factory=list)
    metrics: list[MetricView] = Field(
        default_factory=list, description="the run's first metric values (1,000 by default)"
    )
    metrics_truncated: bool = Field(default=False, description="more metrics than listed")
    tasks: dict[str, int] = Field(
        default_factory=dict, description="task step runs by status, all levels included"
    )


class LogView(View):
    """A log line of a step attempt (``kaon logs --json``)."""

    path: str
    attempt: int
    at: float
    stream: str
    text: str


def run_view(record: RunRecord, now: float | None = None) -> RunView:
    """The view of a run record."""
    return RunView.of(
        id=record.id,
        workflow=record.workflow,
        status=record.status.value,
        params=readable(record.params),
        created_at=record.created_at,
        started_at=record.started_at,
        ended_at=record.ended_at,
        duration_s=_duration(record.started_at, record.ended_at, now),
        error=record.error,
        restarts=record.restarts,
        executor=record.executor,
        definition_hash=record.definition_hash,
        owner=record.owner,
        priority=record.priority,
    )


class PausedStepView(View):
    """A step held at a breakpoint: the inputs it would receive (paused ``before``) or the
    outputs it produced and has not passed on yet (paused ``after``)."""

    path: str
    moment: str = Field(description="before | after")
    inputs: dict[str, OutputView] = Field(default_factory=dict)
    outputs: dict[str, OutputView] = Field(default_factory=dict)


def paused_step_view(
    path: str, moment: str, inputs: Mapping[str, ValueRef], outputs: Mapping[str, ValueRef]
) -> PausedStepView:
    """The view of a held step (values inline, blobs by hash)."""
    return PausedStepView.of(
        path=path,
        moment=moment,
        inputs={name: output_view(ref) for name, ref in inputs.items()},
        outputs={name: output_view(ref) for name, ref in outputs.items()},
    )


def error_view(data: dict[str, Any] | None) -> ErrorView | None:
    """The view of a stored error dict."""
    if not data:
        return None
    return ErrorView.of(
        type=str(data.get("type", "Error")),
        message=str(data.get("message", "")),
        traceback=str(data.get("traceback", "")),
        platform=bool(data.get("platform", False)),
        timeout=bool(data.get("timeout", False)),
    )


def output_view(ref: ValueRef) -> OutputView:
    """A short description of an output reference (values inline, blobs by hash)."""
    if isinstance(ref, Literal):
        return OutputView.of(kind="value", value=ref.value)
    if isinstance(ref, ArtifactRef):
        return OutputView.of(
            kind="artifact",
            hash=ref.hash,
            serializer=ref.serializer,
            size=ref.size,
            type=ref.type_name or None,
        )
    if isinstance(ref, RefList):
        return OutputView.of(kind="list", items=len(ref.items))
    assert isinstance(ref, RefDict)
    return OutputView.of(kind="dict", items=len(ref.items))


def step_view(
    row: StepRunRecord,
    attempts: list[AttemptRecord] | None = None,
    children: dict[str, int] | None = None,
    now: float | None = None,
) -> StepRunView:
    """The view of a step run row with its attempts."""
    outputs = {name: output_view(decode_ref(data)) for name, data in (row.outputs or {}).items()}
    return StepRunView.of(
        path=row.path,
        step_id=row.step_id,
        kind=row.kind,
        status=row.status.value,
        index=row.index,
        attempts=len(attempts) if attempts is not None else row.attempts,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=step_duration(row, now),
        reason=row.reason,
        error=error_view(row.error),
        outputs=outputs,
        children=children or {},
        attempt_list=[
            AttemptView.of(
                number=a.number,
                status=a.status,
                started_at=a.started_at,
                ended_at=a.ended_at,
                duration_s=_duration(a.started_at, a.ended_at, now),
                worker=a.worker,
                error=error_view(a.error),
            )
            for a in attempts or []
        ],
    )


def log_view(record: LogRecord, path: str) -> LogView:
    """The view of a log record."""
    return LogView.of(
        path=path, attempt=record.attempt, at=record.at, stream=record.stream, text=record.text
    )


def metric_view(record: MetricRecord, path: str, reused_from: str | None = None) -> MetricView:
    """The view of a metric record (of the step run at ``path``, or reused by it)."""
    return MetricView.of(
        path=path,
        name=record.name,
        value=record.value,
        step=record.step,
        at=record.at,
        reused_from=reused_from,
    )

"""The state machine: run and step statuses, their groups, and the one transition table.

Everything that changes a status goes through :func:`check_run_transition` or
:func:`check_step_transition`; an illegal transition raises
:class:`~kaon.errors.IllegalTransitionError`. Side effects never live here: the engine emits
events after a transition is committed.
"""

from __future__ import annotations

from enum import StrEnum

from kaon.errors import IllegalTransitionError


class RunStatus(StrEnum):
    """Status of one run of a workflow."""

    PENDING = "pending"  # created (or restarted), no engine has started it yet
    RUNNING = "running"  # an engine is advancing it (or will, on resume)
    PAUSED = "paused"  # a step waits at a breakpoint for `kaon continue`; the rest goes on
    SUCCEEDED = "succeeded"  # every step finished and the run's trigger rules were met
    FAILED = "failed"  # a step failed under a failure mode that fails the run, or it timed out
    CANCELLED = "cancelled"  # killed by a user

    @property
    def is_terminal(self) -> bool:
        """True when no engine will advance the run without a restart."""
        return self in RUN_TERMINAL


RUN_TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
RUN_ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED})


class StepStatus(StrEnum):
    """Status of one step run (a task, a container, a foreach item or loop iteration)."""

    PENDING = "pending"  # waiting for its dependencies
    QUEUED = "queued"  # ready; waiting for an executor slot or a concurrency limit
    RUNNING = "running"  # an attempt is executing, or the container's children are
    RETRYING = "retrying"  # an attempt failed and the next one waits for its backoff
    WAITING = "waiting"  # waiting for an external signal
    PAUSED = "paused"  # held at a breakpoint (before it starts, or after it succeeded)
    SUCCEEDED = "succeeded"  # finished; its outputs are recorded
    CACHED = "cached"  # not executed: outputs reused from an earlier identical execution
    FAILED = "failed"  # the last attempt failed and no retry is left
    SKIPPED = "skipped"  # not executed: condition false, upstream skipped/failed, or a user
    CANCELLED = "cancelled"  # stopped by a kill, a fail-fast, or a run timeout

    @property
    def is_terminal(self) -> bool:
        """True when the step run needs nothing more from the engine."""
        return self in STEP_TERMINAL

    @property
    def is_success(self) -> bool:
        """True when downstream steps may consume its outputs."""
        return self in STEP_SUCCESS


STEP_TERMINAL = frozenset(
    {
        StepStatus.SUCCEEDED,
        StepStatus.CACHED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    }
)
STEP_SUCCESS = frozenset({StepStatus.SUCCEEDED, StepStatus.CACHED})
STEP_ACTIVE = frozenset(
    {
        StepStatus.PENDING,
        StepStatus.QUEUED,
        StepStatus.RUNNING,
        StepStatus.RETRYING,
        StepStatus.WAITING,
        StepStatus.PAUSED,
    }
)
# Statuses a restart from failed steps puts back to PENDING.
STEP_RESTARTABLE = frozenset({StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.SKIPPED})

_S = StepStatus
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    _S.PENDING: frozenset(
        {
            _S.QUEUED,
            _S.RUNNING,
            _S.WAITING,
            _S.SKIPPED,
            _S.CANCELLED,
            _S.CACHED,
            _S.FAILED,
            _S.PAUSED,
        }
    ),
    # Continued: back to pending (paused before) or succeeded (paused after); or skipped,
    # cancelled by a kill.
    _S.PAUSED: frozenset(
        {_S.PENDING, _S.SUCCEEDED, _S.CACHED, _S.SKIPPED, _S.CANCELLED, _S.FAILED}
    ),
    _S.WAITING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELLED, _S.SKIPPED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.SKIPPED, _S.CANCELLED, _S.CACHED, _S.FAILED}),
    _S.RUNNING: frozenset(
        {_S.SUCCEEDED, _S.FAILED, _S.RETRYING, _S.CANCELLED, _S.SKIPPED, _S.QUEUED, _S.PAUSED}
    ),
    _S.RETRYING: frozenset({_S.QUEUED, _S.RUNNING, _S.CANCELLED, _S.SKIPPED, _S.FAILED}),
    _S.SUCCEEDED: frozenset({_S.PENDING}),
    _S.CACHED: frozenset({_S.PENDING}),
    _S.FAILED: frozenset({_S.PENDING, _S.SKIPPED}),
    _S.SKIPPED: frozenset({_S.PENDING}),
    _S.CANCELLED: frozenset({_S.PENDING, _S.SKIPPED}),
}

_R = RunStatus
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    _R.PENDING: frozenset({_R.RUNNING, _R.CANCELLED}),
    _R.RUNNING: frozenset({_R.SUCCEEDED, _R.FAILED, _R.CANCELLED, _R.PAUSED}),
    _R.PAUSED: frozenset({_R.RUNNING, _R.FAILED, _R.CANCELLED}),
    # A restart queues a finished run again (an engine's claim then starts it).
    _R.SUCCEEDED: frozenset({_R.PENDING}),
    _R.FAILED: frozenset({_R.PENDING}),
    _R.CANCELLED: frozenset({_R.PENDING}),
}


def check_step_transition(old: StepStatus, new: StepStatus, what: str = "step") -> None:
    """Raise :class:`IllegalTransitionError` unless ``old -> new`` is allowed for a step run."""
    if new not in STEP_TRANSITIONS[old]:
        raise IllegalTransitionError(f"{what}: cannot go from {old.value} to {new.value}")


def check_run_transition(old: RunStatus, new: RunStatus, what: str = "run") -> None:
    """Raise :class:`IllegalTransitionError` unless ``old -> new`` is allowed for a run."""
    if new not in RUN_TRANSITIONS[old]:
        raise IllegalTransitionError(f"{what}: cannot go from {old.value} to {new.value}")


def paused_seconds(changes: list[tuple[float, str]], began: float, now: float) -> float:
    """How long a run was paused between ``began`` and ``now``, from its status changes
    (``(at, status)`` in order; paused from a ``paused`` change to the next other one)."""
    paused = 0.0
    since: float | None = None
    for at, status in changes:
        if status == RunStatus.PAUSED.value:
            since = at if since is None else since
        elif since is not None:
            paused += max(0.0, min(at, now) - max(since, began))
            since = None
    if since is not None:
        paused += max(0.0, now - max(since, began))
    return paused

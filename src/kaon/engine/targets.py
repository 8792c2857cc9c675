"""Checking the step a user acts on (skip, cancel, continue) before the command is sent.

An engine applies a step command later, in its own turn, and can only record a refusal as an
event. What can be known now is checked now, so that the answer to the user is the truth: a
path that names no step of the run's workflow is not found; a step that already finished, or
one inside a foreach item or loop iteration that has not started yet, cannot be acted on.
"""

from __future__ import annotations

from kaon.engine.operations import not_a_step, parse_path, run_spec
from kaon.errors import InvalidActionError, NotFoundError
from kaon.model.specs import ForeachSpec, GraphSpec, LoopSpec, body_of
from kaon.model.status import StepStatus
from kaon.model.text import did_you_mean
from kaon.store.base import RunRecord, StateStore, StepRunRecord


def check_step_target(
    store: StateStore, record: RunRecord, path: str, *, paused: bool = False
) -> None:
    """Refuse an action on step ``path`` of the active run ``record`` that its engine would
    refuse: NotFoundError when no step of the workflow has that path; InvalidActionError
    when the step has finished (or, with ``paused``, is not held at a breakpoint) or when the
    item or iteration it belongs to has not started. DefinitionError for a malformed path."""
    parts = parse_path(path)
    graph: GraphSpec | None = run_spec(store, record).graph
    shown = ""
    frames: list[str] = []  # the paths of the rows that must exist before the step's can
    for position, (step_id, index) in enumerate(parts):
        steps = graph.by_id() if graph is not None else {}
        step = steps.get(step_id)
        where = f"inside {shown}" if shown else "at the top level"
        if step is None:
            hint = did_you_mean(step_id, steps)
            raise NotFoundError(
                f"run {record.id} has no step {path!r}: no {step_id!r} {where}{hint}"
            )
        shown = f"{shown}.{step_id}" if shown else step_id
        repeated = isinstance(step, ForeachSpec | LoopSpec)
        if index is not None and not repeated:
            raise NotFoundError(f"run {record.id} has no step {path!r}: {shown} has no items")
        last = position == len(parts) - 1
        if not last:
            if repeated and index is None:
                raise NotFoundError(
                    f"run {record.id} has no step {path!r}: name one item or iteration of "
                    f"{shown} ({shown}[0].…)"
                )
            graph = body_of(step)
            if graph is None:
                raise NotFoundError(f"run {record.id} has no step {path!r}: {shown} has no steps")
            frames.append(shown)
        if index is not None:
            shown = f"{shown}[{index}]"
            if last:
                raise not_a_step(shown, step_id)
            frames.append(shown)
    for frame in frames:
        row = _row(store, record.id, frame)
        if row is None:
            raise InvalidActionError(f"{frame} of run {record.id} has not started yet")
        if row.status.is_terminal:
            raise InvalidActionError(f"{frame} of run {record.id} is already {row.status.value}")
    row = _row(store, record.id, path)
    if row is not None and row.status.is_terminal:
        raise InvalidActionError(f"step {path} of run {record.id} is already {row.status.value}")
    if paused and (row is None or row.status is not StepStatus.PAUSED):
        status = "pending" if row is None else row.status.value
        raise InvalidActionError(f"step {path} of run {record.id} is {status}, not paused")


def _row(store: StateStore, run_id: str, path: str) -> StepRunRecord | None:
    try:
        return store.get_step_run(run_id, path)
    except NotFoundError:
        return None

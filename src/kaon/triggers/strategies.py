"""Run strategies: what happens when runs of one workflow overlap.

A workflow's ``run_strategy`` and ``concurrency`` are properties in the registry (no new
version to change them). The engine asks :func:`admit` before it claims a pending run
(``Engine.serve(admit=...)``); :func:`on_run_created` applies the same decisions at once
when a trigger or a person creates a run, so a dropped run shows as cancelled immediately.

* ``parallel`` (default): up to ``concurrency`` runs at once (no limit when unset); the
  others wait, higher run priority first, then oldest first.
* ``sequential``: one run at a time, in that order (a queue).
* ``strict_sequential``: like sequential, but after a failed run the workflow is blocked:
  nothing more starts until someone calls :func:`unblock`.
* ``first_only``: a new run while another is active is dropped (cancelled with reason
  "dropped by first-only strategy").
* ``last_only``: a new run cancels the active ones (a kill command to a running run);
  it starts once they are gone.

A run counts as *active* when it is running or an engine has claimed it (holds its lease).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from kaon.engine import operations
from kaon.errors import InvalidActionError, KaonError, NotFoundError
from kaon.model.properties import RunStrategy
from kaon.model.status import RunStatus
from kaon.store.base import RunRecord, StateStore

DROPPED_REASON = "dropped by first-only strategy"
UNBLOCKED_PREFIX = "strategy:unblocked:"
"""The trigger-state keys that record when each workflow was last unblocked."""
_BLOCK_KEY = UNBLOCKED_PREFIX + "{workflow}"
_QUEUE_LIMIT = 10_000


DEFAULT_PROPERTIES: dict[str, Any] = {"run_strategy": "parallel", "concurrency": None}


def workflow_properties(store: StateStore, name: str) -> dict[str, Any]:
    """The workflow's registry properties over :data:`DEFAULT_PROPERTIES`.

    Read through the registry when ``store`` is a SQL store; a workflow that is not
    registered (a run started with ``kaon run``) gets the defaults.
    """
    found: dict[str, Any] = dict(DEFAULT_PROPERTIES)
    try:
        from kaon.store.registry import SQLRegistryStore
        from kaon.store.sql import SQLStore
    except ImportError:  # pragma: no cover - the registry ships with Kaon
        return found
    if isinstance(store, SQLStore):
        with contextlib.suppress(NotFoundError):
            found.update(SQLRegistryStore(store).get_workflow(name).properties or {})
    return found


def strategy_of(properties: dict[str, Any]) -> tuple[RunStrategy, int | None]:
    """The strategy and concurrency limit named by properties (unknown values: parallel)."""
    try:
        strategy = RunStrategy(str(properties.get("run_strategy") or "parallel"))
    except ValueError:
        strategy = RunStrategy.PARALLEL
    limit = properties.get("concurrency")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        limit = None
    return strategy, limit


def _active(record: RunRecord) -> bool:
    return record.status in (RunStatus.RUNNING, RunStatus.PAUSED) or (
        record.status is RunStatus.PENDING and record.owner is not None
    )


def _open_runs(store: StateStore, workflow: str) -> list[RunRecord]:
    """Pending and running runs of ``workflow``, oldest first: the head of its queue (the
    oldest ``_QUEUE_LIMIT``), which is where admission decides; never a window of the newest
    that could hide the oldest."""
    return store.list_runs(
        workflow=workflow,
        statuses=[RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED],
        limit=_QUEUE_LIMIT,
        oldest_first=True,
    )


def is_blocked(store: StateStore, workflow: str) -> bool:
    """True when a run of a strict-sequential workflow failed after its last unblock: when
    the run failed counts, not when it was created (a run queued before the unblock, or an
    old run restarted after it, that fails after it blocks again)."""
    return blocking_run(store, workflow) is not None


def blocking_run(store: StateStore, workflow: str) -> RunRecord | None:
    """The run whose failure blocks ``workflow``: the last to fail, if it failed after the
    workflow's last unblock (one indexed read: :meth:`StateStore.last_ended_run`)."""
    return store.last_ended_run(workflow, RunStatus.FAILED, after=_unblocked_at(store, workflow))


def _unblocked_at(store: StateStore, workflow: str) -> float:
    from kaon.store.sql import SQLStore
    from kaon.store.triggers import SQLTriggerStore

    if not isinstance(store, SQLStore):
        return 0.0
    state = SQLTriggerStore(store).get_state(_BLOCK_KEY.format(workflow=workflow)) or {}
    return float(state.get("at", 0.0))


def unblock(store: StateStore, workflow: str, *, now: float | None = None) -> bool:
    """Let a strict-sequential workflow run again after a failure; True when it was
    blocked. Raises InvalidActionError on a store without trigger tables."""
    from kaon.store.sql import SQLStore
    from kaon.store.triggers import SQLTriggerStore

    if not isinstance(store, SQLStore):
        raise InvalidActionError("unblocking needs a SQL store")
    was_blocked = is_blocked(store, workflow)
    at = time.time() if now is None else now
    SQLTriggerStore(store).put_state(_BLOCK_KEY.format(workflow=workflow), {"at": at}, at)
    return was_blocked


def admit(
    store: StateStore,
    run: RunRecord,
    *,
    properties: Callable[[StateStore, str], dict[str, Any]] = workflow_properties,
) -> bool:
    """Whether the engine may claim ``run`` now under its workflow's strategy.

    A running run (an orphan being recovered) is always admitted. For a pending run this
    may also act: first-only cancels ``run`` when another is active, last-only cancels or
    kills the older ones. Never raises for a run that vanished or finished meanwhile.
    """
    if run.status is not RunStatus.PENDING:
        return run.status in (RunStatus.RUNNING, RunStatus.PAUSED)
    strategy, limit = strategy_of(properties(store, run.workflow))
    if strategy is RunStrategy.PARALLEL and limit is None:
        return True
    if strategy is RunStrategy.LAST_ONLY:
        others = [r for r in _open_runs(store, run.workflow) if r.id != run.id]
        return _last_only(store, run, others, [r for r in others if _active(r)])
    if strategy is RunStrategy.STRICT_SEQUENTIAL and is_blocked(store, run.workflow):
        return False
    places = (limit or 1) if strategy is RunStrategy.PARALLEL else 1
    place = store.queue_place(run, places)
    if strategy is RunStrategy.FIRST_ONLY and place.active:
        _cancel(store, run.id, DROPPED_REASON)
        return False
    # A queue: the run is among the first waiting runs (claiming order: higher priority
    # first, then the oldest) that fit in the places the active runs leave.
    return place.active < places and place.ahead < places - place.active


def waiting_reason(
    store: StateStore,
    run: RunRecord,
    *,
    properties: Callable[[StateStore, str], dict[str, Any]] = workflow_properties,
) -> str | None:
    """Why a pending run waits, in words a person can act on (None: nothing holds it back
    but the engine's next claim): a blocked strict-sequential workflow (and how to unblock
    it), the run ahead of it in a sequential queue, the concurrency limit reached."""
    if run.status is not RunStatus.PENDING:
        return None
    strategy, limit = strategy_of(properties(store, run.workflow))
    if strategy is RunStrategy.PARALLEL and limit is None:
        return None
    blocking = (
        blocking_run(store, run.workflow) if strategy is RunStrategy.STRICT_SEQUENTIAL else None
    )
    if blocking is not None:
        return (
            f"workflow {run.workflow} is blocked after run {blocking.id} failed "
            "(run strategy strict_sequential): "
            f"nothing starts until it is unblocked (kaon unblock {run.workflow}, or "
            "Unblock on its page)"
        )
    if strategy in (RunStrategy.SEQUENTIAL, RunStrategy.STRICT_SEQUENTIAL):
        active = [r for r in store.active_runs(run.workflow, 2) if r.id != run.id]
        if active:
            return f"waits for run {active[0].id} (run strategy {strategy.value}: one at a time)"
    if strategy is RunStrategy.PARALLEL and limit is not None:
        busy = store.queue_place(run, limit).active
        if busy >= limit:
            return f"waits: {busy} runs of {run.workflow} are active (concurrency {limit})"
    return None


def _last_only(
    store: StateStore, run: RunRecord, others: list[RunRecord], active: list[RunRecord]
) -> bool:
    newer = [r for r in others if (r.created_at, r.id) > (run.created_at, run.id)]
    if newer:
        _cancel(store, run.id, f"superseded by run {newer[-1].id} (last-only strategy)")
        return False
    for older in others:
        if _active(older):
            _kill(store, older.id, f"superseded by run {run.id} (last-only strategy)")
        else:
            _cancel(store, older.id, f"superseded by run {run.id} (last-only strategy)")
    return not active


def on_run_created(
    store: StateStore,
    run: RunRecord,
    *,
    properties: Callable[[StateStore, str], dict[str, Any]] = workflow_properties,
) -> None:
    """Apply the strategy's immediate effects to a new run (first-only drop, last-only
    cancellation of older runs) without waiting for the engine. Never raises KaonError."""
    strategy, _limit = strategy_of(properties(store, run.workflow))
    if strategy not in (RunStrategy.FIRST_ONLY, RunStrategy.LAST_ONLY):
        return
    try:
        admit(store, store.get_run(run.id), properties=properties)
    except KaonError:
        return


def _cancel(store: StateStore, run_id: str, reason: str) -> None:
    with contextlib.suppress(InvalidActionError, NotFoundError):  # finished meanwhile
        operations.cancel_run(store, run_id, by="run strategy", reason=reason)


def _kill(store: StateStore, run_id: str, reason: str) -> None:
    if any(c.kind == "kill" for c in store.pending_commands(run_id)):
        return
    operations.send_command(store, run_id, "kill", {"reason": reason}, by="run strategy")

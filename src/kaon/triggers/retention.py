"""Run retention: which finished runs are past their time, and deleting them a batch at a time.

Used by ``kaon gc --runs-older-than AGE`` (all at once, then the blobs they freed) and by the
server's trigger loop (``kaon server --retention AGE``: one bounded batch per pass, so a pass
never stalls the loop). A run is past retention when it finished (succeeded, failed or
cancelled) longer than the age ago and is not among the ``keep_last`` newest finished runs of
its workflow (see :meth:`kaon.store.base.StateStore.expired_runs`).

The server's retention deletes trigger firings older than the same age too (they are the
triggers' history and their de-duplication keys; see :func:`expire_firings`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kaon.errors import InvalidActionError, LeaseError
from kaon.store.base import RunRecord, StateStore

if TYPE_CHECKING:  # the trigger store imports SQLAlchemy: `kaon gc` on SQLite does not
    from kaon.store.triggers import TriggerStore

log = logging.getLogger(__name__)

_EVERY = 2**62  # "no limit"
RETENTION_ACTOR = "retention"
"""Who the audit trail says deleted a run past retention."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Delete finished runs older than ``max_age_s`` but the ``keep_last`` newest of each
    workflow (only ``workflow``'s runs when given); a server's pass deletes at most ``batch``
    runs (see :func:`apply`) and ``firing_batch`` trigger firings claimed more than
    ``max_age_s`` ago (see :func:`expire_firings`)."""

    max_age_s: float
    keep_last: int = 0
    workflow: str | None = None
    batch: int = 20
    firing_batch: int = 1000


@dataclass(slots=True)
class RetentionOutcome:
    """What a retention pass did: the runs it deleted and those it had to leave (an engine
    held them, or they were restarted meanwhile; the next pass tries again)."""

    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def expired(
    store: StateStore, policy: RetentionPolicy, *, limit: int = _EVERY, now: float | None = None
) -> list[RunRecord]:
    """The runs ``policy`` deletes now, oldest first, at most ``limit``."""
    at = time.time() if now is None else now
    return store.expired_runs(
        before=at - policy.max_age_s,
        keep_last=policy.keep_last,
        workflow=policy.workflow,
        limit=limit,
    )


def delete(store: StateStore, runs: list[RunRecord]) -> RetentionOutcome:
    """Delete ``runs`` one at a time; a run that may not be deleted now is skipped."""
    outcome = RetentionOutcome()
    for run in runs:
        try:
            store.delete_runs([run.id], by=RETENTION_ACTOR)
        except (InvalidActionError, LeaseError) as refused:
            log.info("retention: run %s kept for now: %s", run.id, refused)
            outcome.skipped.append(run.id)
        else:
            outcome.deleted.append(run.id)
    return outcome


REPAIR_ACTOR = "repair"
"""Who the audit trail says finished a deletion its deleter abandoned."""


def finish_abandoned(store: StateStore, *, limit: int = 20) -> list[str]:
    """Finish the deletions whose deleter died midway (``DELETE /runs/{id}``, ``kaon runs
    delete``, retention killed after claiming a run), at most ``limit``; the runs deleted.
    A server's trigger loop calls it whether or not it has a retention policy."""
    done: list[str] = []
    for run_id in store.abandoned_deletions(limit=limit):
        try:
            if store.delete_runs([run_id], by=REPAIR_ACTOR):
                done.append(run_id)
        except (InvalidActionError, LeaseError) as refused:
            log.info("deletion of run %s not finished for now: %s", run_id, refused)
    if done:
        log.info("finished the interrupted deletion of %d run(s)", len(done))
    return done


def apply(
    store: StateStore,
    policy: RetentionPolicy,
    *,
    budget_s: float = 2.0,
    now: float | None = None,
) -> RetentionOutcome:
    """One bounded pass (the server's trigger loop): delete at most ``policy.batch`` runs
    past retention, starting no new one after ``budget_s`` seconds; the rest wait for the
    next pass. Each run's rows go in bounded transactions (see
    :meth:`StateStore.delete_runs`)."""
    started = time.monotonic()
    runs = expired(store, policy, limit=policy.batch, now=now)
    outcome = RetentionOutcome()
    for run in runs:
        if time.monotonic() - started > budget_s:
            break
        done = delete(store, [run])
        outcome.deleted += done.deleted
        outcome.skipped += done.skipped
    if outcome.deleted:
        log.info("retention: deleted %d run(s)", len(outcome.deleted))
    return outcome


def expire_firings(triggers: TriggerStore, policy: RetentionPolicy, *, now: float) -> int:
    """Delete one batch (``policy.firing_batch``) of the trigger firings claimed more than
    ``policy.max_age_s`` before ``now``, oldest first, in one statement; how many went.

    A firing is the trigger's history and the de-duplication key of what it fired. Those
    a de-duplication still needs stay (see
    :meth:`kaon.store.triggers.TriggerStore.delete_expired_firings`): claimed ones, whose
    run the repair pass still creates, data triggers' (one per path, found again by each
    poll for as long as the path exists) and a backfill's not marked finished (how the
    backfill counts its open runs). The others are safe to delete: a cron
    slot, a backfill slot and a signal's id are behind their trigger's cursor, never
    fired again; a ``dedupe`` expression's key or a sender's key de-duplicates within the
    retention age. ``keep_last`` does not apply: a run kept keeps its trigger in its
    labels."""
    count = triggers.delete_expired_firings(
        before=now - policy.max_age_s, limit=policy.firing_batch
    )
    if count:
        log.info("retention: deleted %d trigger firing(s)", count)
    return count

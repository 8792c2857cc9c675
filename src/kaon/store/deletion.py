"""Deleting finished runs and every row that belongs to them, in bounded transactions.

What :meth:`kaon.store.sql.SQLStore.delete_runs` does, for each run:

1. **Claim.** One conditional update makes the run's ``owner`` :data:`DELETING` with a lease
   of :data:`CLAIM_S` seconds, renewed with every transaction of the deletion, only if the
   run is finished (succeeded, failed or cancelled) and no engine holds a live lease on it.
   No engine can take the run from then on, and a restart refuses it. A second call finds
   the claim and goes on; a claim that lapsed (its deleter was killed) is taken over by
   :func:`abandoned` (by one caller only), for a server's trigger loop to finish the job.
2. **Cache entries** made from the run are deleted first, so no new run reuses its outputs
   while it goes. A later run with the same inputs simply misses and executes the step.
3. **Its rows, table by table**: every table with a ``run_id`` column (found from the schema,
   so a new table is covered) except those in :data:`KEPT`, oldest rows first (by primary
   key), at most ``chunk_rows`` rows per transaction: a run of 100,000 foreach items never
   holds the write lock for long nor needs one huge statement.
4. **Lineage handed on.** A step run of another run that reused this run's outputs from the
   cache (``cached_from`` names this run) has no artifact record of its own: before this
   run's records go, theirs are copied to it (once: a step run that has records is skipped),
   so ``kaon gc`` never frees a blob a kept run still reads.
5. **Idempotency keys** whose stored answer names the run are forgotten.
6. **Audited**: a ``run.delete`` entry names the run, its workflow and who deleted it (the
   API's caller, ``retention`` for the server's retention and ``kaon gc``, ``cli``), however
   the deletion was asked for.
7. **The run's row, last.** A crash anywhere before leaves the run listed (finished, claimed)
   with some of its rows; calling again finishes the job.

Kept: trigger firings (their de-duplication keys make a cron slot or a consumed signal fire
at most once, whatever happens to the run; they still name the deleted run), signals (a
signal a step sent names its run in ``source_run_id``), the audit trail, and other runs'
``cached_from`` texts (which keep naming the deleted run). Alert deliveries of the run are
deleted, pending ones included.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from kaon.errors import InvalidActionError, LeaseError
from kaon.model.status import RunStatus
from kaon.store._lite import like_pattern
from kaon.store.base import DELETING_OWNER, ArtifactRecord, WriteBatch

if TYPE_CHECKING:
    from kaon.store.sql import SQLStore

DELETING = DELETING_OWNER
"""The ``owner`` of a run being deleted."""

CLAIM_S = 60.0
"""How long a deletion's claim on a run lasts without a renewal (each transaction of the
deletion renews it): after that its deleter is taken for dead and the deletion is finished
by whoever finds it (:func:`abandoned`)."""

KEPT = frozenset({"trigger_firings"})
"""Tables with a ``run_id`` column whose rows outlive the run (see the module's text)."""

_FIRST = ("cache_entries",)  # before anything: no new cache hit on the run
_LAST = ("artifacts", "attempts", "step_runs")  # after the lineage is handed on
_IDEMPOTENCY_WINDOW_S = 3600.0  # a key is reserved before its run is created


def run_tables() -> list[str]:
    """Every table of the state store with a ``run_id`` column, but those in :data:`KEPT`,
    in the order :func:`delete_runs` empties them."""
    from kaon.store.schema import metadata

    found = sorted(
        name for name, table in metadata.tables.items() if "run_id" in table.c and name not in KEPT
    )
    middle = [name for name in found if name not in _FIRST and name not in _LAST]
    return [*_FIRST, *middle, *_LAST]


def delete_runs(
    store: SQLStore,
    run_ids: Iterable[str],
    *,
    chunk_rows: int = 1000,
    by: str = "",
    by_token: str | None = None,
) -> int:
    """Delete the finished runs ``run_ids`` and their rows (see the module's text); returns
    how many runs were deleted (an unknown id, or a run already deleted, counts for none).
    Each run deleted is recorded in the audit trail (``run.delete`` by ``by``, and the id
    of the token ``by_token`` when a token did it).

    Every run is checked before any is touched: an active run raises InvalidActionError,
    a run an engine holds a live lease on raises LeaseError, and nothing is deleted."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    ids = list(dict.fromkeys(run_ids))
    for run_id in ids:
        _check(store, run_id)
    deleted = 0
    for run_id in ids:
        deleted += _delete_run(store, run_id, chunk_rows, by or "local", by_token)
    return deleted


def _check(store: SQLStore, run_id: str) -> None:
    rows = store.query(("run",), run_id=run_id)
    if not rows:
        return
    status = RunStatus(rows[0]["status"])
    if not status.is_terminal:
        raise InvalidActionError(
            f"run {run_id} is {status.value}; only a finished run can be deleted (kill it first)"
        )
    owner = rows[0]["owner"]
    live = owner is not None and owner != DELETING
    if live and store.query(("lease_live", store.dialect), run_id=run_id):
        raise LeaseError(
            f"run {run_id} is held by engine {owner}; it can be deleted once that engine lets it go"
        )


def _delete_run(
    store: SQLStore, run_id: str, chunk_rows: int, by: str, by_token: str | None
) -> int:
    params = _claim(run_id)
    with store._transaction(f"claiming run {run_id} for deletion") as tx:
        claimed = tx.execute(("mark_deleting", store.dialect), params)
    if claimed != 1:
        if not store.query(("run_exists",), run_id=run_id):
            return 0  # unknown, or deleted meanwhile
        _check(store, run_id)  # explains why (it was restarted, or taken, meanwhile)
        raise InvalidActionError(f"run {run_id} cannot be deleted now; try again")
    row = store.query(("run",), run_id=run_id)[0]
    created_at = float(row["created_at"])
    for table in run_tables():
        if table == "artifacts":
            _hand_on_lineage(store, run_id, chunk_rows)
        _delete_rows(store, table, run_id, chunk_rows)
    _audit(store, run_id, str(row["workflow"]), by, by_token)
    with store._transaction(f"deleting run {run_id}") as tx:
        tx.execute(
            ("delete_idempotency_of_run",),
            {
                "since": created_at - _IDEMPOTENCY_WINDOW_S,
                "pattern": like_pattern(f'"{run_id}"'),
            },
        )
        tx.execute(("delete_run",), {"run_id": run_id, "marker": DELETING})
    return 1


def _audit(store: SQLStore, run_id: str, workflow: str, by: str, by_token: str | None) -> None:
    """Record the deletion in the audit trail (kept after the run), before the run's row
    goes: a crash in between leaves the run claimed, and the call that finishes the job
    records it again rather than never."""
    from kaon.store.registry import AUDIT_TOKEN_ID, AuditRecord, SQLRegistryStore

    data: dict[str, str] = {"workflow": workflow}
    if by_token is not None:
        data[AUDIT_TOKEN_ID] = by_token
    record = AuditRecord(time.time(), by, "run.delete", f"run:{run_id}", data)
    SQLRegistryStore(store).add_audit(record)


def _delete_rows(store: SQLStore, table: str, run_id: str, chunk_rows: int) -> None:
    """Delete ``run_id``'s rows of ``table``, ``chunk_rows`` per transaction."""
    claim = _claim(run_id)
    while True:
        with store._transaction(f"deleting rows of run {run_id} in {table}") as tx:
            tx.execute(("renew_deleting", store.dialect), claim)
            done = tx.execute(("delete_run_rows", table), {"run_id": run_id, "limit": chunk_rows})
        if done < chunk_rows:
            return


def _claim(run_id: str) -> dict[str, Any]:
    """The parameters of a deletion's claim on ``run_id`` (taken or renewed)."""
    return {"run_id": run_id, "marker": DELETING, "claim_s": CLAIM_S}


def abandoned(store: SQLStore, limit: int) -> list[str]:
    """Runs whose deletion was claimed and not renewed for :data:`CLAIM_S` seconds (its
    deleter died midway), oldest first, at most ``limit``, each taken over (its claim
    renewed, only if still lapsed: two servers never finish the same one): the caller
    finishes them with :func:`delete_runs`."""
    found = store.query(("abandoned_deletions", store.dialect), marker=DELETING, limit=limit)
    taken = []
    for row in found:
        run_id = str(row["id"])
        with store._transaction(f"taking over the deletion of run {run_id}") as tx:
            if tx.execute(("take_abandoned_deletion", store.dialect), _claim(run_id)) == 1:
                taken.append(run_id)
    return taken


def cache_users(store: SQLStore, run_id: str, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` step runs of other runs whose ``cached_from`` names ``run_id``."""
    params = _users_params(run_id, limit)
    return store.query(("cached_from_run",), **params)


def _users_params(run_id: str, limit: int) -> dict[str, Any]:
    # ':' is followed by ';' in code point order: [low, high) holds every "run_id:<path>".
    return {
        "run_id": run_id,
        "low": f"{run_id}:",
        "high": f"{run_id};",
        "after_from": "",
        "after_run": "",
        "after_id": -1,
        "limit": limit,
    }


def _hand_on_lineage(store: SQLStore, run_id: str, chunk_rows: int) -> None:
    """Copy ``run_id``'s artifact records to the step runs of other runs that reused them
    from the cache and have none of their own, ``chunk_rows`` step runs at a time."""
    prefix = f"{run_id}:"
    params = _users_params(run_id, chunk_rows)
    while True:
        users = store.query(("cached_from_run",), **params)
        if not users:
            return
        _copy_lineage(store, run_id, users, len(prefix))
        with store._transaction(f"renewing the deletion's claim on run {run_id}") as tx:
            tx.execute(("renew_deleting", store.dialect), _claim(run_id))
        last = users[-1]
        params.update(after_from=last["cached_from"], after_run=last["run_id"], after_id=last["id"])
        if len(users) < chunk_rows:
            return


def _copy_lineage(
    store: SQLStore, run_id: str, users: Sequence[dict[str, Any]], prefix_length: int
) -> None:
    by_run: dict[str, list[dict[str, Any]]] = {}
    for row in users:
        by_run.setdefault(row["run_id"], []).append(row)
    pending: list[dict[str, Any]] = []
    for other, rows in by_run.items():
        ids = [row["id"] for row in rows]
        have = {
            r["step_run_id"]
            for r in store.query(("step_runs_with_artifacts",), run_id=other, ids=ids)
        }
        pending.extend(row for row in rows if row["id"] not in have)
    if not pending:
        return
    sources = sorted({row["cached_from"][prefix_length:] for row in pending})
    records: dict[str, list[dict[str, Any]]] = {}
    for row in store.query(("artifacts_at_paths",), run_id=run_id, paths=sources):
        records.setdefault(row["path"], []).append(row)
    now = time.time()
    batch = WriteBatch()
    for row in pending:
        for source in records.get(row["cached_from"][prefix_length:], ()):
            fields = {k: v for k, v in source.items() if k != "id"}
            fields.update(run_id=row["run_id"], step_run_id=row["id"], created_at=now)
            fields["path"] = row["path"]
            batch.artifacts.append(ArtifactRecord(**fields))
    store.write(batch)

"""Changes to runs that no engine is driving: create, restart, skip, cancel.

Each function builds one :class:`~kaon.store.base.WriteBatch` and commits it; the run is then
picked up by an engine (``resume``) like any other. Runs an engine holds are changed through
commands instead (see :class:`~kaon.engine.engine.Engine`).
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from kaon.engine.nodes import CONDITION_FALSE, NOT_TAKEN, USER_SKIP
from kaon.errors import (
    DefinitionError,
    FencingError,
    InvalidActionError,
    Location,
    NotFoundError,
    Problem,
    StoreError,
)
from kaon.model.cache_policy import CachePolicy
from kaon.model.codec import spec_hash, workflow_from_dict, workflow_to_dict
from kaon.model.graph import compile_graph
from kaon.model.spec_cache import SPECS
from kaon.model.specs import (
    GraphSpec,
    WorkflowSpec,
    body_of,
)
from kaon.model.status import (
    STEP_ACTIVE,
    STEP_SUCCESS,
    RunStatus,
    StepStatus,
    check_run_transition,
)
from kaon.model.tenancy import DEFAULT_POOL, pools_named
from kaon.model.text import did_you_mean
from kaon.model.values import RETURN, Literal, encode_outputs
from kaon.store.base import (
    DELETING_OWNER,
    STEP_RUN_RESET,
    CommandRecord,
    DefinitionRecord,
    EventRecord,
    Fence,
    RunRecord,
    StateStore,
    StepRunRecord,
    WriteBatch,
)

_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)(?:\[([0-9]+)\])?")


def new_run_id() -> str:
    """A new run id: sortable by creation time, unique without coordination.

    48 random bits after the second: thousands of runs created in one second (a backlog, a
    backfill, an API under load) collide with a probability of about 1e-8 (24 bits gave a
    collision in one of ~30 seconds with 1,000 runs each)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"


def create_run(
    store: StateStore,
    spec: WorkflowSpec,
    params: Mapping[str, Any],
    *,
    source: str = "",
    executor: str = "",
    labels: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    stored_hash: str | None = None,
    priority: int | None = None,
    origin: str = "",
) -> RunRecord:
    """Store the definition (once per content hash) and a new pending run of it.

    ``stored_hash``: the definition is already stored under this hash (a registry version),
    so neither hash nor store it again: starting a run is then one small insert.
    ``priority``: the run's (default: the workflow's). ``origin``: who may drive it (see
    :data:`~kaon.store.base.LOCAL_ORIGIN`; default: any engine serving the store). Raises
    DefinitionError when a step names a pool that does not exist (see :func:`check_pools`).
    """
    check_pools(store, spec)
    batch = WriteBatch()
    record = add_run(
        batch,
        spec,
        params,
        source=source,
        executor=executor,
        labels=labels,
        run_id=run_id,
        stored_hash=stored_hash,
        priority=priority,
        origin=origin,
    )
    store.write(batch)
    return record


def add_run(
    batch: WriteBatch,
    spec: WorkflowSpec,
    params: Mapping[str, Any],
    *,
    source: str = "",
    executor: str = "",
    labels: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    stored_hash: str | None = None,
    priority: int | None = None,
    origin: str = "",
) -> RunRecord:
    """Add a new pending run of ``spec`` (and its definition, unless ``stored_hash`` names
    it) to ``batch``, for callers that create many runs in one write; see
    :func:`create_run` (which also checks the spec's pools)."""
    now = time.time()
    definition_hash = stored_hash or spec_hash(spec)
    record = RunRecord(
        id=run_id or new_run_id(),
        workflow=spec.name,
        definition_hash=definition_hash,
        status=RunStatus.PENDING,
        params=dict(params),
        created_at=now,
        executor=executor,
        labels=dict(labels or {}),
        priority=spec.priority if priority is None else priority,
        origin=origin,
    )
    if stored_hash is None:  # hashed here: the spec is the stored one's equal
        SPECS.put(definition_hash, spec)
        batch.definitions.append(
            DefinitionRecord(definition_hash, spec.name, workflow_to_dict(spec), source, now)
        )
    batch.runs.append(record)
    batch.events.append(EventRecord(record.id, "run", now, {"status": "pending"}))
    return record


def check_pools(store: StateStore, spec: WorkflowSpec) -> None:
    """Raise DefinitionError naming each step (and field) whose pool does not exist; the
    ``default`` pool always does. Reads the store only when a pool is named."""
    named = pools_named(spec)
    if not named:
        return
    known = {p.name for p in store.pools()}
    problems = [
        Problem(
            f"{owner}: pool {pool!r} does not exist"
            f" (pools: {', '.join(sorted(known | {DEFAULT_POOL}))}); an administrator"
            f" creates it with `kaon pool set {pool} --slots N`",
            where,
        )
        for pool, owner, where in named
        if pool not in known
    ]
    if problems:
        raise DefinitionError(problems)


def parse_path(path: str) -> list[tuple[str, int | None]]:
    """Split ``segments[3].train`` into ``[("segments", 3), ("train", None)]``."""
    parts: list[tuple[str, int | None]] = []
    for piece in path.split("."):
        match = _PATH_PART.fullmatch(piece)
        if match is None:
            message = f"malformed step path {path!r} (at {piece!r}): expected STEP, "
            message += "STEP[INDEX] or parts of those joined by dots (each[3].train)"
            raise DefinitionError([Problem(message, Location(field="path"))])
        parts.append((match.group(1), int(match.group(2)) if match.group(2) else None))
    return parts


def _downstream(graph: GraphSpec, step_id: str) -> set[str]:
    """``step_id`` and every step after it in ``graph``."""
    successors = compile_graph(graph).successors
    seen = {step_id}
    todo = [step_id]
    while todo:
        for nxt in successors[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


class _RunRows:
    """Step run rows of a run, indexed for restart planning: those a restart from the failed
    steps may redo and the containers around them (:meth:`redoable`), and the levels read
    on the way (:meth:`children_of`, :meth:`include`). What is inside a row the restart
    redoes whole is reset in the database (``WriteBatch.resets_below``), never read."""

    def __init__(self, store: StateStore, run_id: str, rows: Iterable[StepRunRecord]) -> None:
        self._store, self._run_id = store, run_id
        self.by_id = {row.id: row for row in rows}
        self._by_path = {row.path: row for row in self.by_id.values()}
        self._levels: dict[int | None, list[StepRunRecord]] = {}  # the levels read whole

    @classmethod
    def redoable(cls, store: StateStore, run_id: str) -> _RunRows:
        """The rows that did not succeed and their ancestors (one indexed lookup per
        container): 3 failed items among 10,000 read a dozen rows, not 10,100."""
        statuses = [s for s in StepStatus if s not in STEP_SUCCESS]
        found = cls(store, run_id, store.step_runs(run_id, all_levels=True, statuses=statuses))
        for row in list(found.by_id.values()):
            found.include(row)
        return found

    def include(self, row: StepRunRecord) -> None:
        """Add ``row`` and the containers around it (read by path where not read yet)."""
        while True:
            self.by_id[row.id] = row
            self._by_path[row.path] = row
            if row.parent_id is None or row.parent_id in self.by_id:
                return
            path = _parent_path(row.path)
            parent = self._by_path.get(path) or self._store.get_step_run(self._run_id, path)
            if parent.id != row.parent_id:
                raise StoreError(
                    f"run {self._run_id}: step run {row.path} names parent {row.parent_id}, "
                    f"but the row at {path} is {parent.id}"
                )
            row = parent

    def children_of(self, parent_id: int | None) -> list[StepRunRecord]:
        """The rows directly inside ``parent_id`` (None: the top level), read once."""
        level = self._levels.get(parent_id)
        if level is None:
            level = self._levels[parent_id] = self._store.step_runs(
                self._run_id, parent_id=parent_id
            )
            for child in level:
                self.by_id.setdefault(child.id, child)
                self._by_path.setdefault(child.path, child)
        return level

    def ancestors(self, row: StepRunRecord) -> list[StepRunRecord]:
        chain: list[StepRunRecord] = []
        parent = row.parent_id
        while parent is not None:
            parent_row = self.by_id[parent]
            chain.append(parent_row)
            parent = parent_row.parent_id
        return chain


def _parent_path(path: str) -> str:
    """The path of the row holding ``path``: ``fe[3].x`` -> ``fe[3]`` -> ``fe``."""
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def _frame_graph(spec: WorkflowSpec, rows: _RunRows, frame_row_id: int | None) -> GraphSpec:
    """The graph executed by the frame whose row is ``frame_row_id`` (None: the top level)."""
    if frame_row_id is None:
        return spec.graph
    chain = [rows.by_id[frame_row_id], *rows.ancestors(rows.by_id[frame_row_id])]
    graph = spec.graph
    for row in reversed(chain):
        if row.kind in ("item", "iteration"):
            continue  # the frame row of a container: same body as the container
        step = graph.by_id().get(row.step_id)
        body = body_of(step) if step is not None else None
        if body is None:
            raise InvalidActionError(f"cannot find the definition of {row.path}")
        graph = body
    return graph


def restart_run(
    store: StateStore,
    run_id: str,
    *,
    from_path: str | None = None,
    by: str = "",
    force: bool = False,
    only: bool = False,
) -> RunRecord:
    """Put a finished run back in the queue: failed, cancelled and skipped steps become
    pending, and so does the run, which an engine claims as it claims a new run (so the
    workflow's run strategy admits it: a restart waits its turn behind a sequential
    workflow's running run, instead of running beside it).

    With ``from_path``, that step, everything after it in its graph, everything inside it,
    and the containers around it run again too; with ``only`` as well, nothing else (other
    failed steps stay failed: "retry this item"). Succeeded steps elsewhere keep their outputs
    (each finished foreach item included). With ``force``, the steps it resets execute
    without a cache lookup (see :mod:`kaon.model.cache_policy`). Raises InvalidActionError
    for an active run.
    """
    record = store.get_run(run_id)
    if not record.status.is_terminal:
        raise InvalidActionError(
            f"run {run_id} is {record.status.value}; only a finished run can be restarted"
        )
    if record.owner == DELETING_OWNER:
        raise InvalidActionError(f"run {run_id} is being deleted")
    spec = run_spec(store, record)
    if only and from_path is None:
        raise InvalidActionError("restarting only a step needs the step (--from STEP)")
    plan = plan_restart(store, spec, run_id, from_path=from_path, only=only)
    check_run_transition(record.status, RunStatus.PENDING, f"run {run_id}")
    now = time.time()
    batch = WriteBatch()
    for row_id in sorted(plan.reset):
        batch.update_step_run(run_id, row_id, **STEP_RUN_RESET)
    batch.resets_below.extend((run_id, row_id) for row_id in sorted(plan.below))
    # A new attempt at the run: its time limit (the workflow's timeout_s) counts from when an
    # engine starts it again (RunState.start sets started_at).
    policy = CachePolicy.from_labels(record.labels)
    labels = dataclasses.replace(policy, restart_force=force).with_labels(record.labels)
    batch.update_run(
        run_id,
        status=RunStatus.PENDING,
        started_at=None,
        ended_at=None,
        error=None,
        restarts=record.restarts + 1,
        labels=labels,
    )
    data = {
        "action": "restart",
        "from": from_path,
        "by": by,
        "reset": len(plan.reset),  # rows reset one by one
        "redone_whole": plan.redone_whole,  # and all inside them
        "force": force,
        "only": only,
    }
    batch.events.append(EventRecord(run_id, "action", now, data))
    # Written only if the run is still as read: a deletion (another replica's, retention's)
    # that claimed it meanwhile would otherwise delete a running run, or hold it forever.
    batch.fence = Fence(record.owner, {run_id: record.lease_epoch})
    try:
        store.write(batch)
    except FencingError:
        raise InvalidActionError(
            f"run {run_id} changed while it was being restarted (it is being deleted, or an "
            "engine took it); look at it again"
        ) from None
    return store.get_run(run_id)


@dataclasses.dataclass(frozen=True)
class RestartPlan:
    """What a restart redoes: the step runs it resets one by one (``reset``), and among them
    those it redoes whole (``below``: every row inside them is reset too, in the database),
    with their paths (``redone_whole``)."""

    reset: frozenset[int]
    below: frozenset[int]
    redone_whole: list[str]


def plan_restart(
    store: StateStore,
    spec: WorkflowSpec,
    run_id: str,
    *,
    from_path: str | None = None,
    only: bool = False,
) -> RestartPlan:
    """The rows :func:`restart_run` resets (it writes nothing). Only the rows that did not
    succeed (and their containers) are read: a restart from a step adds the levels it goes
    through, and what is inside a row it redoes whole is never read."""
    rows = _RunRows(store, run_id, ()) if only else _RunRows.redoable(store, run_id)
    reset: set[int] = set()
    below: set[int] = set()  # rows redone whole: every row inside them is reset too
    decided: list[StepRunRecord] = []  # branches not taken: redone only if decided again
    for row in list(rows.by_id.values()):
        if row.status in STEP_SUCCESS or row.reason == USER_SKIP:
            continue
        if row.status is StepStatus.SKIPPED and row.reason.startswith((CONDITION_FALSE, NOT_TAKEN)):
            decided.append(row)
        else:
            reset.add(row.id)
    if from_path is not None:
        below |= _restart_cone(spec, rows, run_id, from_path, store)
    below |= _decided_again(spec, rows, reset | below, decided)
    reset |= below
    # A container with anything to redo is redone: its children decide what really runs.
    for row_id in list(reset):
        reset.update(r.id for r in rows.ancestors(rows.by_id[row_id]))
    whole = sorted(rows.by_id[r].path for r in below)
    return RestartPlan(frozenset(reset), frozenset(below), whole)


def _restart_cone(
    spec: WorkflowSpec, rows: _RunRows, run_id: str, path: str, store: StateStore
) -> set[int]:
    """The rows a restart from ``path`` redoes whole: the target, and, level by level
    outwards, the steps after each enclosing container in its graph (not the container
    itself, which :func:`restart_run` reopens as it reopens every container of a row it
    redoes), and the iterations of a loop after the one holding the target."""
    parse_path(path)
    target = store.get_step_run(run_id, path)
    rows.include(target)
    cone: set[int] = {target.id}
    for row in [target, *rows.ancestors(target)]:
        if row.kind == "iteration":  # the iterations after it depended on it: redo them too
            for later in rows.children_of(row.parent_id):
                if later.index is not None and row.index is not None and later.index > row.index:
                    cone.add(later.id)
        if row.kind in ("item", "iteration"):
            continue
        graph = _frame_graph(spec, rows, row.parent_id)
        after = _downstream(graph, row.step_id)
        for sibling in rows.children_of(row.parent_id):
            if sibling.step_id in after and (sibling.id != row.id or row is target):
                cone.add(sibling.id)
    return cone


def _decided_again(
    spec: WorkflowSpec, rows: _RunRows, redone: set[int], decided: list[StepRunRecord]
) -> set[int]:
    """The rows of ``decided`` (steps skipped as a branch not taken) after a step that
    ``redone`` redoes, or after a container around one, in the same graph: their condition
    is decided again (the rows inside the ones redone whole are reset anyway). The others
    keep their decision, and the containers around them are not reopened."""
    if not decided:
        return set()
    by_frame: dict[int | None, list[StepRunRecord]] = defaultdict(list)
    for row in decided:
        by_frame[row.parent_id].append(row)
    again: set[int] = set()
    starts = {a.id: a for r in redone for a in (rows.by_id[r], *rows.ancestors(rows.by_id[r]))}
    for row in starts.values():
        skipped = by_frame.get(row.parent_id)
        if not skipped or row.kind in ("item", "iteration"):
            continue
        after = _downstream(_frame_graph(spec, rows, row.parent_id), row.step_id)
        again.update(sibling.id for sibling in skipped if sibling.step_id in after)
    return again


def not_a_step(path: str, step_id: str) -> InvalidActionError:
    """The refusal of an action on ``path``, an item or iteration of ``step_id``: actions take
    a step (one inside it, or the foreach or loop itself), on an active run or a finished one."""
    return InvalidActionError(
        f"{path} is an item or iteration, not a step: act on a step inside it ({path}.…) "
        f"or on {step_id}"
    )


def skip_step(
    store: StateStore,
    run_id: str,
    path: str,
    *,
    output: Any = None,
    has_output: bool = False,
    by: str = "",
) -> None:
    """Mark a step of a finished run as skipped by a user (downstream sees ``output``)."""
    record = store.get_run(run_id)
    if not record.status.is_terminal:
        raise InvalidActionError(f"run {run_id} is {record.status.value}: send a command instead")
    spec = run_spec(store, record)
    parts = parse_path(path)
    step_id, index = parts[-1]
    if index is not None:  # the restart after it would run the item's failed steps again
        raise not_a_step(path, step_id)
    try:
        row, existing = store.get_step_run(run_id, path), True
    except NotFoundError:
        row, existing = _new_row_for_path(store, spec, run_id, path, parts), False
    if row.status in STEP_SUCCESS:
        raise InvalidActionError(f"step {path} already {row.status.value}; nothing to skip")
    outputs = encode_outputs({RETURN: Literal(output)}) if has_output else {}
    batch = WriteBatch()
    if existing:
        batch.update_step_run(
            run_id,
            row.id,
            status=StepStatus.SKIPPED,
            reason=USER_SKIP,
            outputs=outputs,
            error=None,
            ended_at=time.time(),
        )
    else:
        row.status, row.reason, row.outputs = StepStatus.SKIPPED, USER_SKIP, outputs
        batch.insert_step_run(row)
    batch.events.append(
        EventRecord(run_id, "action", time.time(), {"action": "skip", "path": path, "by": by})
    )
    store.write(batch)


def _new_row_for_path(
    store: StateStore,
    spec: WorkflowSpec,
    run_id: str,
    path: str,
    parts: list[tuple[str, int | None]],
) -> StepRunRecord:
    """A row for a step that never started (only possible at the top level)."""
    if len(parts) != 1 or parts[0][1] is not None:
        raise NotFoundError(f"run {run_id} has no step run at {path!r}")
    steps = spec.graph.by_id()
    step = steps.get(parts[0][0])
    if step is None:
        hint = did_you_mean(parts[0][0], steps)
        raise NotFoundError(f"workflow {spec.name} has no step {parts[0][0]!r}{hint}")
    return StepRunRecord(
        run_id=run_id,
        id=store.max_step_run_id(run_id) + 1,
        path=path,
        step_id=step.id,
        kind=step.kind,
        status=StepStatus.SKIPPED,
        created_at=time.time(),
    )


def cancel_run(store: StateStore, run_id: str, *, by: str = "", reason: str = "") -> None:
    """Cancel a run no engine drives (never started, or its engine died)."""
    record = store.get_run(run_id)
    if record.status.is_terminal:
        raise InvalidActionError(f"run {run_id} is already {record.status.value}")
    now = time.time()
    why = reason or f"killed by {by or 'a user'}"
    batch = WriteBatch()
    close_active_steps(store, batch, run_id, now, why)
    batch.update_run(
        run_id,
        status=RunStatus.CANCELLED,
        ended_at=now,
        error=why,
        owner=None,
        lease_until=None,
    )
    batch.events.append(EventRecord(run_id, "run", now, {"status": "cancelled", "error": why}))
    store.write(batch)


def close_active_steps(
    store: StateStore, batch: WriteBatch, run_id: str, now: float, why: str
) -> None:
    """Add to ``batch`` the end of every step of ``run_id`` still active in the store (waiting
    and paused ones too), cancelled for ``why``, and of their running attempts."""
    active = sorted(STEP_ACTIVE)
    for row in store.step_runs(run_id, all_levels=True, statuses=active):
        batch.update_step_run(run_id, row.id, status=StepStatus.CANCELLED, reason=why, ended_at=now)
    for attempt in store.attempts(run_id):
        if attempt.status == "running":
            key = (run_id, attempt.step_run_id, attempt.number)
            batch.update_attempt(key, status="cancelled", ended_at=now)


def send_command(
    store: StateStore, run_id: str, kind: str, payload: Mapping[str, Any], *, by: str = ""
) -> None:
    """Ask the engine holding ``run_id`` to do something (kill, skip)."""
    batch = WriteBatch()
    batch.commands.append(CommandRecord(run_id, kind, dict(payload), time.time(), by))
    store.write(batch)


def run_spec(store: StateStore, record: RunRecord) -> WorkflowSpec:
    """The workflow spec a run was created from."""
    return workflow_from_dict(store.get_definition(record.definition_hash).spec)

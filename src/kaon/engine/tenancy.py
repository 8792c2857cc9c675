"""Admission by pools, tag permits, priorities and fair share between owner groups.

The engine asks :class:`Tenancy` which ready attempts to start when it has room for some.
With no pool or permit configured, one owner group among the runs held and no priority set,
:attr:`Tenancy.active` is False and the engine keeps its plain path (oldest run first): this
module costs nothing then.

Otherwise every turn orders the ready attempts of the touched runs by

1. the run's priority, then the step's (higher first);
2. fair share: the owner group with the fewest attempts in flight in the step's pool goes
   first, so a group's 5,000-item sweep does not starve another group's pipeline. The count
   is this engine's attempts (from memory, exact) plus, in pools that have a row, the live
   holds of the runs other engines lease (:meth:`~kaon.store.base.StateStore.pool_load`: one
   grouped query, read only when the candidates span several (pool, group) queues and trusted
   for :data:`LOAD_TTL_S`), so replicas sharing a store share fairly;
3. the oldest run, then the order the run queued them in;

and starts, in that order, those that fit their pool's slots and quotas and their tags'
permits. When a pool or permit applies, the engine sends the ordered candidates (a few times
its room) to :meth:`~kaon.store.base.StateStore.claim_holds`: one transaction that locks the
limit rows, counts every engine's live holds, and grants in order at most the room of those
that fit (the holds of attempts that ended this turn are deleted first). Only then are the
granted attempts recorded and dispatched; a hold is also deleted in the very write that
records its attempt's end, and the holds of a run an engine takes over are reconciled with the
attempts it re-attached. Holds of a dead engine stop counting when its lease lapses (its
attempts are fenced off by then). A crash between the claim and the turn's write leaves holds
without attempts: they stop counting with the lease and are deleted by the takeover.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kaon.engine.nodes import Node
from kaon.engine.runstate import RunState
from kaon.errors import KaonError
from kaon.executors.base import TaskRequest
from kaon.model.events import AttemptKey
from kaon.model.specs import TaskSpec, WorkflowSpec
from kaon.model.status import StepStatus
from kaon.model.tenancy import DEFAULT_POOL
from kaon.store.base import (
    HoldClaim,
    HoldKey,
    PermitRecord,
    PoolRecord,
    StateStore,
    WriteBatch,
)

log = logging.getLogger("kaon.engine")

REFRESH_S = 1.0  # how often pools and permits are read again
GROUP_TTL_S = 5.0  # how long a workflow's owner group is remembered
LOAD_TTL_S = 0.5  # how long the other engines' attempts per (pool, group) are trusted
SCAN_PER_RUN = 256  # ready steps of one run considered per turn (the first ones queued)
_STARTABLE = (StepStatus.PENDING, StepStatus.QUEUED, StepStatus.RETRYING)
_EPSILON = 1e-9


def _amount(name: str, value: float) -> str:
    """``value`` of resource ``name`` as a person reads it (memory in GiB, MiB or bytes)."""
    if name != "memory":
        return f"{value:g}"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:g} bytes"


def uses_tenancy(spec: WorkflowSpec) -> bool:
    """Whether a workflow sets a pool, priority or tags anywhere (subworkflows included)."""
    if spec.priority or spec.defaults.pool != DEFAULT_POOL:
        return True
    for _path, step in spec.graph.walk():
        if step.pool is not None or step.priority or step.tags:
            return True
        sub = getattr(step, "spec", None)
        if isinstance(sub, WorkflowSpec) and uses_tenancy(sub):
            return True
    return False


def _rank(cand: _Candidate, share: int) -> tuple[int, int, int, float, str, int]:
    """Admission order: priorities, then the group's share of the pool, then age."""
    o = cand.order
    return (o[0], o[1], share, o[2], o[3], o[4])


def pool_of(node: Node) -> str:
    """The pool an attempt of ``node`` takes a slot of."""
    return node.spec.pool or node.frame.defaults.pool


@dataclass(slots=True)
class _Run:
    """What admission knows of a held run."""

    group: str
    priority: int
    flagged: bool  # sets priorities, pools or tags, or has a priority


@dataclass(slots=True)
class _Candidate:
    """A ready attempt; ``order``: (-run priority, -step priority, run's creation, run id,
    position in the queue)."""

    order: tuple[int, int, float, str, int]
    state: RunState
    node: Node
    pool: str
    group: str


class Tenancy:
    """One engine's admission by pools, permits, priorities and fair share."""

    def __init__(
        self,
        store: StateStore,
        owner: str,
        group_of: Callable[[str], str | None] | None,
        monotonic: Callable[[], float],
    ) -> None:
        self.store = store
        self.owner = owner
        self.group_of = group_of
        self.monotonic = monotonic
        self.pools: dict[str, PoolRecord] = {}
        self.permits: dict[str, PermitRecord] = {}
        self.held: dict[AttemptKey, HoldClaim] = {}  # attempts holding rows in the store
        # Holds released in this turn's batch, not committed yet: this turn's claim deletes
        # them first (an ended attempt frees its slot at once, not a turn later).
        self.releasing: list[HoldClaim] = []
        self._runs: dict[str, _Run] = {}
        self._groups: dict[str, int] = {}  # held runs per owner group
        self._flagged = 0
        self._next_refresh = 0.0
        self._group_cache: dict[str, tuple[str, float]] = {}  # workflow -> (group, until)
        self._others: dict[tuple[str, str], int] = {}  # other engines' holds per (pool, group)
        self._others_until = 0.0
        self.active = False

    # -- configuration and the runs held --------------------------------------------------

    def refresh(self, *, force: bool = False) -> None:
        """Read pools and permits again (every :data:`REFRESH_S`); keeps the last known
        ones when the store cannot be read."""
        now = self.monotonic()
        if not force and now < self._next_refresh:
            return
        self._next_refresh = now + REFRESH_S
        try:
            self.pools = {p.name: p for p in self.store.pools()}
            self.permits = {p.tag: p for p in self.store.permits()}
        except KaonError as error:
            log.warning("reading pools and permits failed, keeping the last ones: %s", error)
        self._update()

    @property
    def limited(self) -> bool:
        """Whether any pool or permit exists (holds are claimed only then)."""
        return bool(self.pools or self.permits)

    def track(self, state: RunState, spec_flagged: bool) -> None:
        """A run is held: note its owner group and priority."""
        if state.id in self._runs:
            return
        group = self.group(state.record.workflow)
        entry = _Run(group, state.record.priority, spec_flagged or state.record.priority != 0)
        self._runs[state.id] = entry
        state.tenant_group = group
        self._groups[group] = self._groups.get(group, 0) + 1
        self._flagged += entry.flagged
        self._update()

    def group(self, workflow: str) -> str:
        """The workflow's owner group ("" for none), looked up at most every GROUP_TTL_S."""
        if self.group_of is None:
            return ""
        now = self.monotonic()
        known = self._group_cache.get(workflow)
        if known is not None and known[1] > now:
            return known[0]
        try:
            group = self.group_of(workflow) or ""
        except KaonError:
            group = known[0] if known is not None else ""
        if len(self._group_cache) >= 4096:
            self._group_cache.clear()
        self._group_cache[workflow] = (group, now + GROUP_TTL_S)
        return group

    def untrack(self, run_id: str) -> None:
        """A run is let go or finished: forget it and the holds it had in memory."""
        entry = self._runs.pop(run_id, None)
        if entry is not None:
            left = self._groups[entry.group] - 1
            if left:
                self._groups[entry.group] = left
            else:
                del self._groups[entry.group]
            self._flagged -= entry.flagged
            self._update()
        if self.held:
            for key in [k for k in self.held if k[0] == run_id]:
                del self.held[key]

    def _update(self) -> None:
        self.active = self.limited or len(self._groups) > 1 or self._flagged > 0

    def reconcile(self, state: RunState) -> None:
        """After loading a run (a takeover, a resume): delete the holds its previous engine
        left but for the attempts re-attached, which keep theirs."""
        if not self.limited:  # (a run without step rows may have holds: claimed before
            return  # its engine's batch was committed)
        entry = self._runs.get(state.id)
        group = entry.group if entry is not None else ""
        keep = {
            key: self._claim_of(state.id, node, group, key[2])
            for key, node in state.inflight.items()
        }
        self.store.release_holds(state.id, [(c.step_path, c.attempt) for c in keep.values()])
        self.held.update(keep)

    def release_ended(self, batch: WriteBatch, finished: Iterable[str]) -> None:
        """Release, in ``batch``, the holds of attempts it records as ended and of runs that
        finished."""
        if not self.held:
            return
        for key, changes in batch.attempt_updates.items():
            if "ended_at" in changes:
                claim = self.held.pop(key, None)
                if claim is not None:
                    batch.holds_released.append(claim.key)
                    self.releasing.append(claim)
        for run_id in finished:
            for key in [k for k in self.held if k[0] == run_id]:
                claim = self.held.pop(key)
                batch.holds_released.append(claim.key)
                self.releasing.append(claim)

    # -- dispatch -------------------------------------------------------------------------

    def dispatch(
        self,
        states: Sequence[RunState],
        busy: Iterable[RunState],
        free: int,
        start: Callable[[RunState, Node], TaskRequest | None],
        batch: WriteBatch,
        refuse: Callable[[RunState, Node, str], None],
    ) -> int:
        """Start ready attempts of ``states`` in admission order while ``free`` allows and
        limits fit (``busy``: every held run with attempts in flight, for fair share).
        ``start`` starts one (None: it did not, e.g. a cache hit, or its run failed); the
        holds of one that did not start are released in ``batch``. ``refuse`` fails one
        that can never fit its pool (it asks for more than the pool's quota), with the
        reason. Returns the room left."""
        if free <= 0:
            return free
        running = self._running(busy)
        buckets = self._candidates(states)
        if len(buckets) > 1 and self.pools:  # a choice between queues: count every engine's
            for key, count in self._other_engines().items():
                running[key] = running.get(key, 0) + count
        limited = self.limited
        # With limits, more candidates than room: the store skips those that do not fit.
        want = min(max(free * 4, free + 32), SCAN_PER_RUN) if limited else free
        chosen: list[tuple[_Candidate, HoldClaim]] = []
        while buckets and len(chosen) < want:
            # The best head of the (pool, group) queues; a group's share counts what it got.
            best = min(buckets, key=lambda b: _rank(buckets[b][-1], running.get(b, 0)))
            queue = buckets[best]
            cand = queue.pop()
            if not queue:
                del buckets[best]
            claim = self._claim_of(cand.state.id, cand.node, cand.group)
            reason = self.refusal(claim)
            if reason is not None:  # waiting would be forever: it fails now
                refuse(cand.state, cand.node, reason)
                continue
            chosen.append((cand, claim))
            running[best] = running.get(best, 0) + 1
        claims = [claim for _cand, claim in chosen]
        if any(map(self._limits, claims)):
            granted = self._claim(claims, free)
        else:
            granted = {claim.key for claim in claims[:free]}
        for cand, claim in chosen:
            if claim.key not in granted:
                continue  # no room in its pool or permit (every engine's): a later turn
            request = start(cand.state, cand.node)
            if request is None:
                if self._limits(claim):
                    batch.holds_released.append(claim.key)
                    self.releasing.append(claim)
                continue
            if self._limits(claim):
                self.held[request.key] = claim
            free -= 1
        return free

    def refusal(self, claim: HoldClaim) -> str | None:
        """Why ``claim`` can never be granted (it asks for more than its pool's quota on
        its own), or None. A pool an administrator lowers later refuses the attempts that
        wait for it then."""
        pool = self.pools.get(claim.pool)
        if pool is None:
            return None
        for name, quota, asked in (
            ("cpus", pool.cpus, claim.cpus),
            ("memory", None if pool.memory is None else float(pool.memory), float(claim.memory)),
            ("gpus", pool.gpus, claim.gpus),
        ):
            if quota is not None and asked and asked > quota + _EPSILON:
                return (
                    f"the step asks for {_amount(name, asked)} {name}, and pool {pool.name!r}"
                    f" offers {_amount(name, quota)} at most; lower the request or ask an"
                    f" administrator for a larger pool (kaon pool set {pool.name} --{name} N)"
                )
        return None

    def _limits(self, claim: HoldClaim) -> bool:
        """Whether any pool or permit limits ``claim`` (it takes rows in the store)."""
        return claim.pool in self.pools or bool(claim.tags)

    @staticmethod
    def _running(busy: Iterable[RunState]) -> dict[tuple[str, str], int]:
        """This engine's attempts in flight per (pool, owner group)."""
        counts: dict[tuple[str, str], int] = {}
        for state in busy:
            group = state.tenant_group
            for node in state.inflight.values():
                key = (pool_of(node), group)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _other_engines(self) -> dict[tuple[str, str], int]:
        """The attempts other engines run per (pool, owner group), in pools with a row: read
        from the store at most every :data:`LOAD_TTL_S` (the last known on a store error)."""
        now = self.monotonic()
        if now >= self._others_until:
            self._others_until = now + LOAD_TTL_S
            try:
                self._others = self.store.pool_load(other_than=self.owner)
            except KaonError as error:
                log.warning("reading the other engines' load failed, keeping the last: %s", error)
        return self._others

    def _candidates(self, states: Sequence[RunState]) -> dict[tuple[str, str], list[_Candidate]]:
        """The ready attempts of ``states`` per (pool, owner group), best last."""
        buckets: dict[tuple[str, str], list[_Candidate]] = {}
        seq = 0
        for state in states:
            if state.finished:
                continue
            entry = self._runs.get(state.id)
            group = entry.group if entry is not None else ""
            priority = entry.priority if entry is not None else 0
            for count, node in enumerate(state.ready):
                if count >= SCAN_PER_RUN:
                    break
                if node.status not in _STARTABLE or not isinstance(node.spec, TaskSpec):
                    continue
                if state.draining and not node.finishing:
                    continue
                pool = pool_of(node)
                seq += 1
                order = (
                    -priority,
                    -(node.spec.priority or 0),
                    state.record.created_at,
                    state.id,
                    seq,
                )
                cand = _Candidate(order, state, node, pool, group)
                buckets.setdefault((pool, group), []).append(cand)
        for queue in buckets.values():
            queue.sort(key=lambda c: c.order, reverse=True)
        return buckets

    def _claim_of(
        self, run_id: str, node: Node, group: str, number: int | None = None
    ) -> HoldClaim:
        """What an attempt of ``node`` (its next one unless ``number``) holds."""
        spec = node.spec
        asked = spec.resources
        return HoldClaim(
            run_id=run_id,
            step_path=node.path,
            attempt=node.next_number if number is None else number,
            pool=pool_of(node),
            tags=tuple(t for t in spec.tags if t in self.permits),
            group=group,
            cpus=float(asked.cpus or 0.0) if asked is not None else 0.0,
            memory=int(asked.memory or 0) if asked is not None else 0,
            gpus=float(asked.gpus or 0.0) if asked is not None else 0.0,
        )

    def _claim(self, claims: list[HoldClaim], room: int) -> set[HoldKey]:
        """Claim in order, in one transaction, the holds of at most ``room`` claims that
        fit; the holds of attempts that ended this turn are released first."""
        try:
            answers = self.store.claim_holds(
                self.owner, claims, release=[c.key for c in self.releasing], limit=room
            )
        except KaonError as error:
            log.warning("claiming pool slots and permits failed, retrying: %s", error)
            return set()
        self.releasing.clear()  # deleted by the claim (the batch's deletes find nothing)
        return {c.key for c, ok in zip(claims, answers, strict=True) if ok}

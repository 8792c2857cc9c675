"""In-memory state the engine keeps for the runs it holds: frames of nodes.

A *frame* is one execution of a graph: the run's top-level graph, one foreach item's body,
one loop iteration's body, or a subworkflow's graph. A *node* is one step of a frame. Only
frames that are still active live in memory: a finished foreach item's frame is folded into
its container's results and dropped, which keeps a 100,000-item foreach in bounded memory.

Nothing here touches the store; the engine records every change it makes to these objects in
the turn's write batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kaon.engine.memo import CacheKey
from kaon.engine.spool import LazyItems, ResultSpool
from kaon.model.graph import CompiledGraph
from kaon.model.specs import (
    FailureMode,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    RetrySpec,
    StepDefaults,
    StepSpec,
    TriggerRule,
)
from kaon.model.status import STEP_SUCCESS, StepStatus
from kaon.model.values import Literal, ValueRef
from kaon.store.base import AttemptRecord, StepRunRecord

USER_SKIP = "skipped by user"


@dataclass(eq=False)
class Node:
    """One step of a frame. ``row_id`` is set once the step run has a row in the store."""

    spec: StepSpec
    frame: Frame
    status: StepStatus = StepStatus.PENDING
    row_id: int | None = None
    deps_left: int = 0
    attempts: int = 0  # user-code failures counted against the retry policy
    platform_attempts: int = 0  # platform failures counted against the platform budget
    next_number: int = 1  # number of the next attempt row
    outputs: dict[str, ValueRef] | None = None
    reason: str = ""
    running: tuple[str, int, int] | None = None  # key of the attempt in flight
    deadline: float | None = None
    retry_at: float | None = None
    queued: bool = False
    # Its attempt was lost while running (its worker or the engine stopped) and it waits to
    # run again: a draining run (``finish_running``) starts no new step but lets this one end.
    finishing: bool = False
    started_at: float | None = None
    foreach: ForeachState | None = None
    loop: LoopState | None = None
    sub: Frame | None = None
    user_output: ValueRef | None = None  # value given with a user skip
    cache: CacheKey | None = None  # the cache key of a cacheable execution in progress
    probe: tuple[CacheKey | None, Any] | None = None  # looked-up key and cache entry, if any
    inputs: dict[str, ValueRef] | None = None  # inputs resolved by the cache probe
    input_hashes: list[str] = field(default_factory=list)  # blobs it read (lineage)

    # The step run's path, e.g. ``segments[3].train``: set once (a node never changes frames),
    # as a field, so that every node's attributes share one layout (a cached_property added
    # later gives each node a dict of its own, and slows every attribute read of it).
    path: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.path = self.frame.prefix + self.spec.id

    @property
    def retry(self) -> RetrySpec:
        """The retry policy in force (the step's, else its workflow's default)."""
        return self.spec.retry or self.frame.defaults.retry

    @property
    def timeout_s(self) -> float | None:
        """The attempt timeout in force, if any."""
        return (
            self.spec.timeout_s
            if self.spec.timeout_s is not None
            else (self.frame.defaults.timeout_s)
        )

    @property
    def on_failure(self) -> FailureMode:
        """The failure mode in force."""
        return self.spec.on_failure or self.frame.defaults.on_failure

    @property
    def holds_failures(self) -> bool:
        """True for a container that holds the failures inside it: ``on_failure: ignore``, or
        a foreach with ``min_success`` (its items' failures count against that fraction)."""
        if self.on_failure is FailureMode.IGNORE:
            return True
        return self.weighs_failures

    @property
    def weighs_failures(self) -> bool:
        """True for a foreach with ``min_success``: its items' failures decide nothing before
        its items end (a stop before then cancels it, as it would one with no failed item)."""
        return isinstance(self.spec, ForeachSpec) and self.spec.min_success is not None

    @property
    def failure_ignored(self) -> bool:
        """True when this node failed under the ``ignore`` failure mode."""
        return self.status is StepStatus.FAILED and self.on_failure is FailureMode.IGNORE

    @property
    def failure_effect(self) -> FailureMode:
        """What this node's failure does to the run: its own mode, bounded by the modes of
        the containers around it. A failure inside a foreach, loop or subworkflow is first
        that container's: under a container whose mode is ``ignore`` it stops nothing (the
        container runs on, ends ``failed``, and the run goes on past it); under one whose
        mode is ``finish_running`` it drains the run rather than stopping it at once."""
        mode = self.on_failure
        container = self.frame.container
        while container is not None and mode is not FailureMode.IGNORE:
            if container.holds_failures:
                return FailureMode.IGNORE
            outer = container.on_failure
            if outer is FailureMode.FINISH_RUNNING:
                mode = outer
            container = container.frame.container
        return mode

    @property
    def done(self) -> bool:
        """True once the node is terminal."""
        return self.status.is_terminal

    @property
    def counts_as_success(self) -> bool:
        """True when downstream may consume it: succeeded, cached, or skipped by a user."""
        return self.status in STEP_SUCCESS or (
            self.status is StepStatus.SKIPPED and self.reason == USER_SKIP
        )


@dataclass(eq=False)
class Frame:
    """One execution of a graph. ``scope`` is the frame whose steps are visible from here."""

    graph: GraphSpec
    compiled: CompiledGraph
    prefix: str
    params: dict[str, Any]
    defaults: StepDefaults
    container: Node | None = None
    row_id: int | None = None  # the frame's own row (foreach item / loop iteration)
    scope: Frame | None = None
    bindings: dict[str, Any] = field(default_factory=dict)
    # Bound names whose value is not plain JSON (a foreach item that is a date, a numpy
    # scalar, a DataFrame): the reference it is stored under in the artifact store. A step
    # input naming one takes that reference, as any non-JSON value travels between steps.
    stored: dict[str, ValueRef] = field(default_factory=dict)
    index: int | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    remaining: int = 0
    finished: bool = False
    # When its row had already ended (a failed item reopened on resume, to rebuild what its
    # failure decided; an item a restart --only does not reach): closing it again leaves the
    # row as it ended.
    ended_at: float | None = None

    def lookup(self, step_id: str) -> Node | None:
        """The node ``step_id`` visible from this frame (own steps first, then enclosing)."""
        frame: Frame | None = self
        while frame is not None:
            node = frame.nodes.get(step_id)
            if node is not None:
                return node
            frame = frame.scope
        return None

    def variables(self) -> dict[str, Any]:
        """Bound names visible here (item, index, iteration...), inner frames winning."""
        chain: list[Frame] = []
        frame: Frame | None = self
        while frame is not None:
            chain.append(frame)
            frame = frame.scope
        merged: dict[str, Any] = {}
        for f in reversed(chain):
            merged.update(f.bindings)
        return merged

    def variable_ref(self, name: str) -> ValueRef | None:
        """The reference of the bound name ``name`` visible here (inner frames winning):
        where its value is stored, or the value itself as a literal; None when unbound."""
        frame: Frame | None = self
        while frame is not None:
            if name in frame.bindings:
                return frame.stored.get(name) or Literal(frame.bindings[name])
            frame = frame.scope
        return None

    def walk_nodes(self) -> Iterator[Node]:
        """Every node of this frame and of the active frames below it."""
        for node in self.nodes.values():
            yield node
            for child in child_frames(node):
                yield from child.walk_nodes()


@dataclass(eq=False)
class ForeachState:
    """Progress of a foreach: its items (decoded as expanded), the window of active item frames,
    and the finished items' outputs (spooled to disk, see :mod:`kaon.engine.spool`): its memory
    does not grow with its number of items."""

    spec: ForeachSpec
    items: LazyItems
    limit: int
    next_index: int = 0
    active: dict[int, Frame] = field(default_factory=dict)
    results: ResultSpool = field(default_factory=ResultSpool)  # finished items' outputs
    finished: set[int] = field(default_factory=set)  # items found finished on resume
    failed: int = 0
    failed_by_cancel: int = 0  # of the failed items, those failed only by a person's cancel
    restore: dict[int, Any] = field(default_factory=dict)  # item rows found on resume
    # What the next items to reopen are rebuilt from, by item row id: read a window at a
    # time (see ContainerSteps._item_rows), each taken out as its item opens.
    read_ahead: dict[int, FrameRows] = field(default_factory=dict)
    halted: bool = False  # a failure inside, contained by an ``ignore`` around: no new item

    @property
    def exhausted(self) -> bool:
        """True once every item has been expanded."""
        return not self.items.has(self.next_index)

    def failed_text(self, path: str) -> str:
        """Why the foreach at ``path`` failed: ``2 of 500 items of fe failed`` (and, under
        ``min_success``, how many had to succeed)."""
        text = f"{self.failed} of {self.next_index} items of {path} failed"
        if self.spec.min_success is not None:
            text += f" (min_success {self.spec.min_success:g}: {self.needed} needed)"
        return text

    @property
    def needed(self) -> int:
        """How many items must succeed under ``min_success`` (all without it)."""
        ratio = self.spec.min_success
        count = self.next_index
        return count if ratio is None else math.ceil(ratio * count - 1e-9)

    @property
    def succeeded_enough(self) -> bool:
        """True when the foreach, its items ended, succeeds: no item failed, or enough of
        them succeeded for its ``min_success``."""
        return self.failed == 0 or self.next_index - self.failed >= self.needed


@dataclass(frozen=True)
class FrameRows:
    """What a frame reopened on resume is rebuilt from: the rows of its steps, and the
    attempts of the unfinished tasks among them by step run id (a read ahead for several
    frames may hold other frames' too; a task missing here is read when its frame opens)."""

    steps: list[StepRunRecord]
    attempts: dict[int, list[AttemptRecord]]


@dataclass(eq=False)
class LoopState:
    """Progress of a bounded loop: the current iteration's frame."""

    spec: LoopSpec
    iteration: int = 0
    frame: Frame | None = None
    rows: dict[int, Any] = field(default_factory=dict)  # iteration rows found on resume


def child_frames(node: Node) -> Iterator[Frame]:
    """Active frames directly below a container node."""
    if node.foreach is not None:
        yield from node.foreach.active.values()
    if node.loop is not None and node.loop.frame is not None:
        yield node.loop.frame
    if node.sub is not None:
        yield node.sub


def walk_frames(frame: Frame) -> Iterator[Frame]:
    """``frame`` and every active frame below it."""
    yield frame
    for node in frame.nodes.values():
        for child in child_frames(node):
            yield from walk_frames(child)


CONDITION_FALSE = "condition is false"  # the reason of a step skipped by its ``when``
NOT_TAKEN = "branch not taken"  # the reason of a step skipped after branches not taken
UPSTREAM_FAILED = "upstream failed"  # the reason of a step skipped after a failure


def not_taken(node: Node) -> bool:
    """A step skipped because its branch was not taken: its condition was false, or every
    dependency of it was such a step."""
    return node.status is StepStatus.SKIPPED and node.reason.startswith(
        (CONDITION_FALSE, NOT_TAKEN)
    )


def after_failure(node: Node) -> bool:
    """A step skipped because a dependency failed (Airflow's ``upstream_failed``)."""
    return node.status is StepStatus.SKIPPED and node.reason.startswith(UPSTREAM_FAILED)


def trigger_decision(rule: TriggerRule, deps: list[Node]) -> tuple[bool, str]:
    """Whether a node whose dependencies are all finished may run, and if not, why.

    ``all_succeeded`` (the default) runs when every dependency succeeded or is a branch not
    taken, at least one having run (Maestro's join: it runs after whichever branch was
    taken); when none ran it is a branch not taken too. ``all_succeeded_strict`` is skipped
    by any skipped dependency (other than a user skip), as in Airflow. Failed or cancelled
    dependencies skip every rule but ``all_done`` and ``any_succeeded``; ``none_failed``
    counts a dependency skipped because of a failure as failed too (Airflow's
    ``upstream_failed``), and runs after dependencies skipped otherwise.
    """
    failed = [d.spec.id for d in deps if d.status in (StepStatus.FAILED, StepStatus.CANCELLED)]
    succeeded = [d for d in deps if d.counts_as_success]
    if rule is TriggerRule.ALL_DONE:
        return True, ""
    if rule is TriggerRule.ANY_SUCCEEDED:
        if succeeded or not deps:
            return True, ""
        return False, "no upstream step succeeded"
    if rule is TriggerRule.NONE_FAILED:
        failed += [d.spec.id for d in deps if after_failure(d)]
    if failed:
        return False, f"{UPSTREAM_FAILED}: {', '.join(failed)}"
    if rule is TriggerRule.NONE_FAILED:
        return True, ""
    skipped = [d for d in deps if not d.counts_as_success]
    if not skipped:
        return True, ""
    names = ", ".join(d.spec.id for d in skipped)
    if rule is TriggerRule.ALL_SUCCEEDED and all(not_taken(d) for d in skipped):
        if succeeded:
            return True, ""
        return False, f"{NOT_TAKEN}: {names}"
    return False, f"upstream skipped: {names}"

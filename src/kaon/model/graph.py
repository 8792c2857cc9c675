"""The dependency structure of a graph of steps: order, dependencies, successors.

A step depends on the steps it ``needs`` and on every step of the same graph its
expressions reference (``steps.X`` in its inputs, ``when`` or foreach ``items``). A container
(foreach, loop) also depends on every step of this graph referenced anywhere inside its body,
at any depth: the body cannot start before the values it reads exist. A loop's ``until``
reads its own body's steps; those are not dependencies.

:func:`compile_graph` is cached: the engine may call it freely on hot paths.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from kaon.errors import DefinitionError, ExpressionError, Location, Problem
from kaon.model.expressions import analyze
from kaon.model.specs import Expr, ForeachSpec, GraphSpec, LoopSpec, StepSpec, WaitSpec

_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class CompiledGraph:
    """The dependency structure of one graph (nested bodies are compiled separately).

    ``order`` is topological and, among steps free to go in any order, follows definition
    order. ``deps`` and ``successors`` list ids of this graph in definition order.
    ``output_ids`` are the steps whose outputs form the graph's output (``graph.output`` or
    the sinks). ``external_refs`` are ids referenced inside the graph (bodies included)
    that are not steps of it: steps of enclosing graphs.
    """

    graph: GraphSpec
    steps: Mapping[str, StepSpec]
    order: tuple[str, ...]
    deps: Mapping[str, tuple[str, ...]]
    successors: Mapping[str, tuple[str, ...]]
    roots: tuple[str, ...]
    sinks: tuple[str, ...]
    output_ids: tuple[str, ...]
    external_refs: frozenset[str]


@dataclass(frozen=True, slots=True)
class Cycle:
    """A dependency cycle: ``ids[0]`` needs ``ids[1]`` ... needs ``ids[0]``."""

    ids: tuple[str, ...]

    def describe(self, steps: Mapping[str, StepSpec]) -> str:
        """``a (file:3) needs b (file:9) needs a``."""
        names = [_located(steps[i]) for i in self.ids]
        return "dependency cycle: " + " needs ".join([*names, self.ids[0]])


def _located(step: StepSpec) -> str:
    where = Location(step.location.file, step.location.line)
    return step.id if where == Location() else f"{step.id} ({where})"


_cache: OrderedDict[int, tuple[GraphSpec, CompiledGraph]] = OrderedDict()
_cache_lock = threading.Lock()


def compile_graph(graph: GraphSpec) -> CompiledGraph:
    """Compute the order and dependencies of ``graph`` (cached per graph object).

    Raises :class:`DefinitionError` on duplicate step ids, a ``needs`` naming no step of
    this graph, or a dependency cycle (the message lists the cycle with the steps'
    locations), and :class:`ExpressionError` on an expression that does not compile.
    """
    key = id(graph)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] is graph:
            _cache.move_to_end(key)
            return hit[1]
    compiled = _compile(graph)
    with _cache_lock:
        _cache[key] = (graph, compiled)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def _compile(graph: GraphSpec) -> CompiledGraph:
    _require_unique_ids(graph)
    steps = graph.by_id()
    _require_known_needs(graph, steps)
    deps, external = dependencies(graph, strict=True)
    order, cycles = topological_order(deps)
    if cycles:
        raise DefinitionError([_cycle_problem(c, steps) for c in cycles])
    successors: dict[str, list[str]] = {step_id: [] for step_id in steps}
    for step_id in steps:  # definition order, so successor lists are in definition order
        for dep in deps[step_id]:
            successors[dep].append(step_id)
    roots = tuple(i for i in steps if not deps[i])
    sinks = tuple(i for i in steps if not successors[i])
    output_ids = (graph.output,) if graph.output else sinks
    return CompiledGraph(
        graph=graph,
        steps=steps,
        order=order,
        deps=deps,
        successors={k: tuple(v) for k, v in successors.items()},
        roots=roots,
        sinks=sinks,
        output_ids=output_ids,
        external_refs=external,
    )


def _require_unique_ids(graph: GraphSpec) -> None:
    seen: set[str] = set()
    problems = []
    for step in graph.steps:
        if step.id in seen:
            problems.append(Problem(f"duplicate step id {step.id!r}", step.location))
        seen.add(step.id)
    if problems:
        raise DefinitionError(problems)


def _require_known_needs(graph: GraphSpec, steps: Mapping[str, StepSpec]) -> None:
    problems = [
        Problem(f"step {step.id!r} needs unknown step {need!r}", step.location.with_field("needs"))
        for step in graph.steps
        for need in step.needs
        if need not in steps
    ]
    if problems:
        raise DefinitionError(problems)


def _cycle_problem(cycle: Cycle, steps: Mapping[str, StepSpec]) -> Problem:
    return Problem(cycle.describe(steps), steps[cycle.ids[0]].location)


def step_expressions(step: StepSpec) -> Iterator[tuple[str, str]]:
    """Yield ``(field, source)`` for the expressions a step evaluates in its own graph.

    These are its ``inputs``, ``when`` and a foreach's ``items``; a loop's ``until`` is
    evaluated inside the loop's body and is not included.
    """
    for name, value in step.inputs.items():
        if isinstance(value, Expr):
            yield f"inputs.{name}", value.source
    if step.when is not None:
        yield "when", step.when
    if isinstance(step, ForeachSpec) and isinstance(step.items, Expr):
        yield "items", step.items.source
    if isinstance(step, WaitSpec) and step.match is not None:
        yield "match", step.match


def step_refs_of(step: StepSpec, *, strict: bool = True) -> frozenset[str]:
    """Ids of the steps referenced by a step's own expressions (see :func:`step_expressions`).

    With ``strict`` an expression that does not compile raises :class:`ExpressionError`;
    otherwise it is skipped (validation reports it separately).
    """
    refs: set[str] = set()
    for _field, source in step_expressions(step):
        refs |= _source_refs(source, strict=strict)
    return frozenset(refs)


def _source_refs(source: str, *, strict: bool) -> frozenset[str]:
    try:
        return analyze(source).step_refs
    except ExpressionError:
        if strict:
            raise
        return frozenset()


def refs_inside(step: StepSpec, *, strict: bool = True) -> frozenset[str]:
    """Ids referenced inside a container's body (at any depth) that are not body steps.

    A loop's ``until`` counts as inside its body. Empty for tasks and subworkflows (a
    subworkflow's steps live in another workflow).
    """
    if not isinstance(step, ForeachSpec | LoopSpec):
        return frozenset()
    _deps, external = dependencies(step.body, strict=strict)
    if isinstance(step, LoopSpec):
        body_ids = {s.id for s in step.body.steps}
        external |= _source_refs(step.until, strict=strict) - body_ids
    return external


def dependencies(
    graph: GraphSpec, *, strict: bool = True
) -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    """Each step's dependencies within ``graph``, and the ids referenced outside it.

    Duplicate ids resolve to the first definition and unknown ``needs`` are dropped
    (:func:`compile_graph` rejects both; validation reports them).
    """
    steps = graph.by_id()
    position = {step_id: i for i, step_id in enumerate(steps)}
    # A set, not ``steps.keys()``: ``refs - keys`` copies and scans every key (quadratic in
    # the graph's size), a set difference or intersection scans the smaller side.
    known = set(steps)
    deps: dict[str, tuple[str, ...]] = {}
    external: set[str] = set()
    for step_id, step in steps.items():
        refs = step_refs_of(step, strict=strict) | refs_inside(step, strict=strict)
        external |= refs - known
        wanted = (set(step.needs) | refs) & known
        deps[step_id] = tuple(sorted(wanted, key=position.__getitem__))
    return deps, frozenset(external)


def topological_order(
    deps: Mapping[str, tuple[str, ...]],
) -> tuple[tuple[str, ...], list[Cycle]]:
    """A stable topological order of ``deps``' keys, and the cycles that prevent a full one.

    Among steps whose dependencies are all placed, the earliest defined goes first. When
    there are cycles the order holds only the steps outside them and their dependents.
    """
    ids = list(deps)
    position = {step_id: i for i, step_id in enumerate(ids)}
    waiting = {step_id: len(set(deps[step_id])) for step_id in ids}
    dependents: dict[str, list[str]] = {step_id: [] for step_id in ids}
    for step_id in ids:
        for dep in set(deps[step_id]):
            dependents[dep].append(step_id)
    ready = [position[i] for i in ids if waiting[i] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        step_id = ids[heapq.heappop(ready)]
        order.append(step_id)
        for dependent in dependents[step_id]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, position[dependent])
    if len(order) == len(ids):
        return tuple(order), []
    placed = set(order)
    return tuple(order), _find_cycles([i for i in ids if i not in placed], deps)


def _find_cycles(remaining: list[str], deps: Mapping[str, tuple[str, ...]]) -> list[Cycle]:
    """Cycles among steps left unplaced; each of them has an unplaced dependency."""
    left = set(remaining)
    explained: set[str] = set()
    cycles: list[Cycle] = []
    for start in remaining:
        path: list[str] = []
        on_path: dict[str, int] = {}
        node = start
        while node not in explained and node not in on_path:
            on_path[node] = len(path)
            path.append(node)
            node = next(d for d in deps[node] if d in left)
        if node in on_path:
            cycles.append(Cycle(tuple(path[on_path[node] :])))
        explained.update(path)
    return cycles

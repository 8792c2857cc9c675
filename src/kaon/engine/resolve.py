"""Turning a step's declared inputs and conditions into values, within a frame.

A plain reference (``steps.prepare.train``, ``params.k``, ``item``) becomes a
:class:`~kaon.model.values.ValueRef` without loading anything: the worker loads the blob
itself. Anything else is a CEL expression evaluated here over the values it reads: only
the outputs it names (``steps.check.ok``) are loaded, never their neighbours.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from kaon.artifacts.base import ArtifactStore
from kaon.engine.nodes import USER_SKIP, Frame, Node
from kaon.errors import ExpressionError, Location
from kaon.model.expressions import compile_expression, truthy
from kaon.model.specs import Const, InputSpec
from kaon.model.status import StepStatus
from kaon.model.values import RETURN, Literal, RefDict, ValueRef, outputs_value, select

if TYPE_CHECKING:
    from kaon.model.expression_paths import Path

_NONE = Literal(None)


def node_value(node: Node) -> ValueRef:
    """The value a node offers downstream: its outputs, else None. A step skipped by a user
    offers the value given with the skip, or None: its outputs are that value or empty, and
    empty outputs are not the mapping ``{}`` of no named outputs."""
    if node.status is StepStatus.SKIPPED and node.reason == USER_SKIP:
        given = node.user_output
        if given is None:
            given = (node.outputs or {}).get(RETURN)
        return _NONE if given is None else given
    if node.outputs is not None and node.counts_as_success:
        return outputs_value(node.outputs)
    if node.user_output is not None:
        return node.user_output
    return _NONE


def _single_output(node: Node) -> bool:
    """True when ``node``'s outputs are one value, named ``return`` (``steps.X`` is it)."""
    outputs = node.outputs
    return outputs is not None and len(outputs) == 1 and RETURN in outputs


def _by_return(node: Node, paths: Collection[Path]) -> bool:
    """True when an expression reads ``node``'s single output only by its name
    (``steps.make.return``, ``steps.make.return.x``): it is bound as ``{"return": value}``."""
    return _single_output(node) and all(path and path[0] == RETURN for path in paths)


class Resolver:
    """Evaluates inputs, conditions and foreach items for the nodes of one run."""

    def __init__(self, artifacts: ArtifactStore, run_facts: Mapping[str, Any]) -> None:
        self._artifacts = artifacts
        self._run = dict(run_facts)

    def input_ref(self, frame: Frame, source: InputSpec, location: Location) -> ValueRef:
        """The reference for one input, loading nothing when the input is a plain path."""
        if isinstance(source, Const):
            return Literal(source.value)
        compiled = compile_expression(
            source.source, location, variables=frozenset(frame.variables())
        )
        path = compiled.simple_path
        if path is not None:
            ref = self._path_ref(frame, path)
            if ref is not None:
                return ref
        return Literal(self.evaluate(frame, source.source, location))

    def inputs(self, node: Node) -> dict[str, ValueRef]:
        """References for every input of a task node."""
        location = node.spec.location
        return {
            name: self.input_ref(node.frame, source, location.with_field(f"inputs.{name}"))
            for name, source in node.spec.inputs.items()
        }

    def value(self, frame: Frame, source: InputSpec, location: Location) -> Any:
        """The materialized value of an input (foreach items, subworkflow params)."""
        if isinstance(source, Const):
            return source.value
        return self._artifacts.get(self.input_ref(frame, source, location))

    def evaluate(
        self,
        frame: Frame,
        source: str,
        location: Location,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Evaluate a CEL expression in ``frame`` (``extra``: more variables, such as a
        signal). Raises ExpressionError."""
        bound = frame.variables()
        if extra:
            bound.update(extra)
        compiled = compile_expression(source, location, variables=frozenset(bound))
        steps: dict[str, Any] = {}
        for step_id in compiled.step_refs:
            node = frame.lookup(step_id)
            if node is None:
                raise ExpressionError(
                    f"expression {source!r} refers to step {step_id!r}, which is not visible here"
                )
            paths = compiled.step_paths.get(step_id) if compiled.step_paths else None
            ref = node_value(node)
            if paths and _by_return(node, paths):  # ``steps.X.return...``: X's single value
                steps[step_id] = {RETURN: self._read(ref, {path[1:] for path in paths})}
            else:
                steps[step_id] = self._read(ref, paths)
        variables: dict[str, Any] = {"params": frame.params, "steps": steps, "run": self._run}
        variables.update(bound)
        return compiled.evaluate(variables)

    def _read(self, ref: ValueRef, paths: Collection[Path] | None) -> Any:
        """The part of ``ref`` that ``paths`` read: the named outputs of a step, each loaded
        on its own (a flag kept inline next to a model loads nothing). Whole when a path is
        empty, unknown (None), or goes through anything but a mapping of references."""
        if not paths or () in paths or not isinstance(ref, RefDict):
            return self._artifacts.get(ref)
        by_key: dict[str, list[Path]] = {}
        for path in paths:
            by_key.setdefault(path[0], []).append(path[1:])
        # A key the step does not output stays absent, as in the whole value.
        return {
            key: self._read(ref.items[key], rest)
            for key, rest in by_key.items()
            if key in ref.items
        }

    def condition(
        self,
        frame: Frame,
        source: str,
        location: Location,
        extra: Mapping[str, Any] | None = None,
    ) -> bool:
        """Evaluate a condition; it must produce a bool. Raises ExpressionError."""
        return truthy(self.evaluate(frame, source, location, extra), source, location)

    def _path_ref(self, frame: Frame, path: tuple[str | int, ...]) -> ValueRef | None:
        head, rest = path[0], path[1:]
        ref: ValueRef | None
        if head == "steps":
            if not rest or not isinstance(rest[0], str):
                return None
            node = frame.lookup(rest[0])
            if node is None:
                return None
            ref, rest = node_value(node), rest[1:]
            if rest and rest[0] == RETURN and _single_output(node):
                rest = rest[1:]  # ``steps.X.return``: the single value by its output name
        elif head == "params":
            if not rest or not isinstance(rest[0], str) or rest[0] not in frame.params:
                return None
            ref, rest = Literal(frame.params[rest[0]]), rest[1:]
        else:
            found = frame.variable_ref(head) if isinstance(head, str) else None
            if found is None:
                return None
            ref = found
        for key in rest:
            ref = select(ref, key)
            if ref is None:
                return None
        return ref

"""A step run's inputs, resolved when someone reads them (the step panel, ``GET .../step``).

The engine records nothing extra per attempt for this: what a step received follows from
references it already keeps. A task's inputs are expressions of its definition (stored with
the run's version) over the run's parameters, the bound names of its frames (a foreach
item and index, a loop iteration, read from the frame rows) and the outputs of the steps it
names (their rows, which hold references, not blobs). :func:`resolve_inputs` rebuilds just
the frames on the way to the step run, with only the upstream steps its inputs name, and
resolves each input with the engine's own :class:`~kaon.engine.resolve.Resolver`: a plain
path (``steps.prepare.train``, ``params.k``, ``item``) to the reference the worker was given,
without loading anything; any other expression evaluated over the values it reads, when
they are small (:data:`MAX_EVALUATED_BYTES`).

Cost: one indexed lookup per level of nesting and per upstream step named, whatever the
size of the run; previews are cut at :data:`PREVIEW_CHARS`. A value resolved now is the
value the step received, as the outputs of a finished step never change; a run whose
parameters were replaced when a breakpoint was released shows the new ones.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from kaon.artifacts.base import ArtifactStore
from kaon.engine.nodes import Frame, Node
from kaon.engine.resolve import Resolver, node_value
from kaon.errors import KaonError, Location, NotFoundError
from kaon.model.expressions import compile_expression
from kaon.model.graph import compile_graph
from kaon.model.params import bind_params
from kaon.model.specs import (
    Const,
    ForeachSpec,
    GraphSpec,
    InputSpec,
    LoopSpec,
    StepSpec,
    SubworkflowSpec,
    WorkflowSpec,
)
from kaon.model.text import readable_text
from kaon.model.values import (
    ArtifactRef,
    Literal,
    ValueRef,
    artifact_refs,
    decode_outputs,
)
from kaon.service.views import OutputView, View, output_view
from kaon.store.base import RunRecord, StateStore, StepRunRecord

PREVIEW_CHARS = 1000  # a value's JSON is cut here
MAX_INPUTS = 100  # inputs listed at most (a definition rarely has more than a few)
MAX_DEPTH = 32  # levels of nesting followed at most
# An expression that is not a plain path is evaluated only when the artifacts it may read
# weigh at most this much (a condition on a flag is; a model is not loaded for a preview).
MAX_EVALUATED_BYTES = 4 * 2**20


class InputView(View):
    """One input of a step run: where it comes from and what it resolved to."""

    name: str
    source: str = Field(description="the input as defined: ``${{ expression }}`` or JSON")
    kind: str = Field(description="const | param | step | variable | expression")
    step: str | None = Field(default=None, description="the upstream step run's path")
    output: str | None = Field(default=None, description="the upstream output it names")
    param: str | None = Field(default=None, description="the run parameter it names")
    value: OutputView | None = Field(
        default=None, description="a stored artifact's description, or a value's kind"
    )
    preview: str | None = Field(default=None, description="a value's JSON, cut short")
    truncated: bool = False
    error: str | None = Field(default=None, description="why it could not be resolved")


def resolve_inputs(
    store: StateStore,
    artifacts: ArtifactStore,
    record: RunRecord,
    spec: WorkflowSpec,
    row: StepRunRecord,
    ancestors: list[StepRunRecord],
) -> list[InputView]:
    """The inputs of the task ``row`` (``ancestors``: its enclosing rows, outermost first),
    each resolved now. A step that is not a task has none here (a subworkflow's inputs are
    its parameters; a foreach's items are its children). Never raises for one input: a
    problem is that input's ``error``."""
    reader = _Reader(store, artifacts, record)
    try:
        frame = reader.frame_of(spec, ancestors)
    except (KaonError, ValueError) as exc:
        return [InputView(name="*", source="", kind="expression", error=str(exc))]
    step = _step(frame.graph, row.step_id) if frame is not None else None
    if step is None or step.kind != "task" or frame is None:
        return []
    inputs = list(step.inputs.items())[:MAX_INPUTS]
    return [reader.input_view(frame, step, name, source) for name, source in inputs]


class _Reader:
    """Rebuilds frames and upstream nodes from rows, loading only what inputs name."""

    def __init__(self, store: StateStore, artifacts: ArtifactStore, record: RunRecord) -> None:
        self.store = store
        self.run_id = record.id
        self.record = record
        self.resolver = Resolver(artifacts, {"id": record.id, "workflow": record.workflow})

    def frame_of(self, spec: WorkflowSpec, ancestors: list[StepRunRecord]) -> Frame | None:
        """The frame the step run below ``ancestors`` belongs to (None: its definition has
        no such place, e.g. the version changed under a restart)."""
        frame = _frame(spec.graph, "", dict(self.record.params), spec, scope=None)
        chain = ancestors[:MAX_DEPTH]
        i = 0
        while i < len(chain):
            row = chain[i]
            step = _step(frame.graph, row.step_id)
            if isinstance(step, ForeachSpec | LoopSpec):
                if i + 1 >= len(chain):
                    return None
                level = chain[i + 1]
                bindings: dict[str, Any] = (
                    {step.item_name: level.item, "index": level.index}
                    if isinstance(step, ForeachSpec)
                    else {"iteration": level.index}
                )
                frame = _frame(
                    step.body,
                    f"{level.path}.",
                    frame.params,
                    frame,
                    scope=frame,
                    bindings=bindings,
                    index=level.index,
                    container=Node(step, frame),
                )
                i += 2
            elif isinstance(step, SubworkflowSpec) and step.spec is not None:
                values = {
                    name: self._value(frame, step, name, source)
                    for name, source in step.inputs.items()
                }
                params = bind_params(step.spec, values)
                container = Node(step, frame)
                frame = _frame(step.spec.graph, f"{row.path}.", params, step.spec, scope=None)
                frame.container = container
                i += 1
            else:
                return None
        return frame

    def _value(self, frame: Frame, step: StepSpec, name: str, source: InputSpec) -> Any:
        if isinstance(source, Const):
            return source.value
        location = step.location.with_field(f"inputs.{name}")
        self._load(frame, source.source, location)
        return self.resolver.value(frame, source, location)

    def _load(self, frame: Frame, source: str, location: Location) -> Any:
        """Put into their frames the upstream nodes ``source`` names (their rows' status and
        output references); returns the compiled expression."""
        compiled = compile_expression(source, location, variables=frozenset(frame.variables()))
        for step_id in sorted(compiled.step_refs):
            home = _home(frame, step_id)
            if home is None or step_id in home.nodes:
                continue
            spec = _step(home.graph, step_id)
            assert spec is not None
            node = Node(spec, home)
            try:
                upstream = self.store.get_step_run(self.run_id, home.prefix + step_id)
            except NotFoundError:
                pass  # not started: it offers nothing yet
            else:
                node.row_id = upstream.id
                node.status, node.reason = upstream.status, upstream.reason
                node.outputs = decode_outputs(upstream.outputs) if upstream.outputs else None
            home.nodes[step_id] = node
        return compiled

    def input_view(self, frame: Frame, step: StepSpec, name: str, source: InputSpec) -> InputView:
        """One input resolved in ``frame`` (errors kept in the view)."""
        if isinstance(source, Const):
            view = InputView(name=name, source=shown_json(source.value)[0], kind="const")
            _show(view, Literal(source.value))
            return view
        view = InputView(name=name, source="${{ " + source.source + " }}", kind="expression")
        location = step.location.with_field(f"inputs.{name}")
        try:
            compiled = self._load(frame, source.source, location)
            _classify(view, compiled.simple_path, frame)
            for step_id in sorted(compiled.step_refs):
                node = frame.lookup(step_id)
                if node is not None and not node.counts_as_success:
                    view.error = f"{node.path} is {node.status.value}: no output yet"
                    return view
            if compiled.simple_path is None:
                self._check_weight(frame, compiled.step_refs)
            _show(view, self.resolver.input_ref(frame, source, location))
        except (KaonError, ValueError, TypeError) as exc:
            view.error = str(exc)
        return view

    def _check_weight(self, frame: Frame, step_ids: frozenset[str]) -> None:
        weight = 0
        for step_id in step_ids:
            node = frame.lookup(step_id)
            if node is not None:
                weight += sum(a.size for a in artifact_refs(node_value(node)))
        if weight > MAX_EVALUATED_BYTES:
            raise ValueError(
                f"not evaluated here: it reads outputs of {weight / 2**20:.1f} MiB"
                f" (at most {MAX_EVALUATED_BYTES // 2**20} MiB)"
            )


def _classify(view: InputView, path: tuple[str | int, ...] | None, frame: Frame) -> None:
    """Name what a plain path reads: a parameter, an upstream step (and output), a variable."""
    if path is None:
        return
    head, rest = path[0], path[1:]
    if head == "params" and rest and isinstance(rest[0], str):
        view.kind, view.param = "param", rest[0]
    elif head == "steps" and rest and isinstance(rest[0], str):
        view.kind = "step"
        home = _home(frame, rest[0])
        view.step = (home.prefix if home else frame.prefix) + rest[0]
        if len(rest) > 1 and isinstance(rest[1], str):
            view.output = rest[1]
    elif isinstance(head, str) and head in frame.variables():
        view.kind = "variable"


def _show(view: InputView, ref: ValueRef) -> None:
    """Describe ``ref``: a value's JSON cut short, an artifact by type, size and hash."""
    if isinstance(ref, Literal):
        view.value = OutputView(kind="value")
        view.preview, view.truncated = shown_json(ref.value)
    else:
        view.value = output_view(ref)
        if not isinstance(ref, ArtifactRef):  # a list or mapping of references
            view.preview, view.truncated = shown_json(_outline(ref))


def _outline(ref: ValueRef) -> Any:
    """A reference as JSON-able data for a preview (blobs by their short hash)."""
    if isinstance(ref, Literal):
        return ref.value
    if isinstance(ref, ArtifactRef):
        return f"<{ref.type_name or 'artifact'} {ref.size} B {ref.hash[:12]}>"
    items = ref.items
    if isinstance(items, tuple):
        return [_outline(r) for r in items[:50]] + (["…"] if len(items) > 50 else [])
    return {k: _outline(r) for k, r in list(items.items())[:50]}


# Shown to people: non-ASCII text as itself ("Zürich", not "Z\\u00fcrich").
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


def shown_json(value: Any, limit: int = PREVIEW_CHARS) -> tuple[str, bool]:
    """``value``'s JSON as the UI shows it (text as written; a lone surrogate, which no
    answer can encode, as U+FFFD), cut at ``limit`` characters: encoded piece by piece and
    stopped there, so a 100,000-item list costs what the preview shows. Also returns
    whether it was cut."""
    pieces: list[str] = []
    size = 0
    for piece in _ENCODER.iterencode(value):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            return readable_text("".join(pieces)[: limit - 1]) + "…", True
    return readable_text("".join(pieces)), False


def _step(graph: GraphSpec, step_id: str) -> StepSpec | None:
    return next((s for s in graph.steps if s.id == step_id), None)


def _home(frame: Frame, step_id: str) -> Frame | None:
    """The frame whose graph has ``step_id``, from ``frame`` outwards (as the engine's
    :meth:`Frame.lookup` finds it)."""
    current: Frame | None = frame
    while current is not None:
        if _step(current.graph, step_id) is not None:
            return current
        current = current.scope
    return None


def _frame(
    graph: GraphSpec,
    prefix: str,
    params: dict[str, Any],
    defaults_of: WorkflowSpec | Frame,
    *,
    scope: Frame | None,
    bindings: dict[str, Any] | None = None,
    index: int | None = None,
    container: Node | None = None,
) -> Frame:
    """A frame with no nodes yet (:meth:`_Reader._load` adds the ones inputs name)."""
    return Frame(
        graph=graph,
        compiled=compile_graph(graph),
        prefix=prefix,
        params=params,
        defaults=defaults_of.defaults,
        container=container,
        scope=scope,
        bindings=bindings or {},
        index=index,
    )

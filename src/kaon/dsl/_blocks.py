"""Graph constructs of the Python DSL: ``foreach``, ``loop``, ``when`` and the non-Python
tasks (``shell``, ``task``, ``subworkflow``). Each records into the active builder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kaon.dsl._builder import Builder, Frame, require_builder, user_location
from kaon.dsl._common import (
    absolute_file,
    database_folder,
    is_json_value,
    plain_json,
    shell_folder,
)
from kaon.dsl._refs import Ref, StepRef, scoped_ref
from kaon.errors import DefinitionError, Location
from kaon.model.specs import (
    Const,
    Expr,
    ForeachSpec,
    GraphSpec,
    InputSpec,
    LoopSpec,
    StepSpec,
    SubworkflowSpec,
    TaskSpec,
    WaitSpec,
    WorkflowSpec,
)

if TYPE_CHECKING:
    from kaon.dsl.python import Workflow


def add_task(
    builder: Builder,
    *,
    base: str,
    options: Mapping[str, Any],
    step_type: str,
    config: Mapping[str, Any],
    inputs: dict[str, InputSpec],
    location: Location,
) -> StepRef:
    """Record a task in the current graph and return a ref to its output."""
    step_id = builder.new_id(base, options.get("id"))
    fields = builder.step_fields({k: v for k, v in options.items() if k != "id"}, location)
    spec = TaskSpec(
        id=step_id,
        inputs=inputs,
        step_type=step_type,
        config=dict(config),
        location=location,
        **fields,
    )
    builder.top.steps.append(spec)
    return StepRef(step_id, builder.top)


def _inputs(
    builder: Builder, values: Mapping[str, Any] | None, location: Location
) -> dict[str, InputSpec]:
    if values is None:
        return {}
    return {
        str(k): builder.to_input(v, location.with_field(f"inputs.{k}")) for k, v in values.items()
    }


def shell(
    command: str,
    *,
    id: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    interpreter: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    **options: Any,
) -> StepRef:
    """Record a shell step running ``command`` (see :mod:`kaon.steptypes.shell`).

    ``inputs`` reach the command as ``KAON_INPUT_<NAME>`` variables; ``env`` adds constant
    variables; ``options`` are the usual step options (``needs``, ``when``, ``retry``,
    ``timeout``, ``on_failure``, ``trigger_rule``, ``cache``, ...). Raises
    :class:`DefinitionError` outside a workflow definition.
    """
    builder = require_builder("kaon.shell()")
    location = user_location()
    config: dict[str, Any] = {"command": command}
    for key, value in (("env", env), ("cwd", cwd), ("shell", interpreter)):
        if value is not None:
            config[key] = dict(value) if isinstance(value, Mapping) else value
    if location.file and os.path.isfile(location.file):
        config = shell_folder(config, os.path.dirname(os.path.abspath(location.file)))
    return add_task(
        builder,
        base="shell",
        options={**options, **({"id": id} if id is not None else {})},
        step_type="shell",
        config=config,
        inputs=_inputs(builder, inputs, location),
        location=location,
    )


def task(
    step_type: str,
    config: Mapping[str, Any] | None = None,
    *,
    id: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    **options: Any,
) -> StepRef:
    """Record a task of any registered step type (``sql``, a plugin's) with a JSON ``config``.

    Raises :class:`DefinitionError` outside a workflow definition.
    """
    builder = require_builder("kaon.task()")
    location = user_location()
    config = dict(config or {})
    if not is_json_value(config):
        builder.problem("a task's config must be a JSON object", location.with_field("config"))
        config = {}
    if location.file:
        folder = os.path.dirname(os.path.abspath(location.file))
        config = absolute_file(config, folder)
        if step_type == "shell" and os.path.isfile(location.file):
            config = shell_folder(config, folder)
        elif step_type == "sql" and os.path.isfile(location.file):
            config = database_folder(config, folder)
    return add_task(
        builder,
        base=step_type,
        options={**options, **({"id": id} if id is not None else {})},
        step_type=step_type,
        config=plain_json(config),
        inputs=_inputs(builder, inputs, location),
        location=location,
    )


def wait_for_signal(
    signal: str,
    *,
    match: Any = None,
    id: str | None = None,
    **options: Any,
) -> StepRef:
    """Record a step that waits (status ``waiting``) for a signal called ``signal``.

    ``match`` is a condition over the signal (CEL, or a ref comparison), for instance
    ``"signal.region == params.region"``; ``timeout`` in ``options`` bounds the wait. The
    step's output is the matching signal's parameters. Raises :class:`DefinitionError`
    outside a workflow definition.
    """
    builder = require_builder("kaon.wait_for_signal()")
    location = user_location()
    step_id = builder.new_id(f"wait_{signal}" if signal.isidentifier() else "wait", id)
    fields = builder.step_fields(options, location)
    source: str | None = None
    if isinstance(match, str):
        source = match
    elif match is not None:
        value = builder.to_input(match, location.with_field("match"))
        if isinstance(value, Expr):
            source = value.source
        else:
            builder.problem(
                "match must be a condition (a CEL string or a ref comparison)",
                location.with_field("match"),
            )
    builder.top.steps.append(
        WaitSpec(id=step_id, signal=signal, match=source, location=location, **fields)
    )
    return StepRef(step_id, builder.top)


def subworkflow(
    workflow: Workflow[...] | WorkflowSpec,
    *,
    id: str | None = None,
    needs: list[Any] | None = None,
    when: Any = None,
    retry: Any = None,
    timeout: Any = None,
    on_failure: Any = None,
    trigger_rule: Any = "all_succeeded",
    cache: bool | None = None,
    description: str = "",
    **inputs: Any,
) -> StepRef:
    """Record a step running another workflow; keyword ``inputs`` become its parameters.

    The other workflow's spec is embedded. Raises :class:`DefinitionError` outside a
    workflow definition; problems of the other workflow are reported with this one's.
    """
    builder = require_builder("kaon.subworkflow()")
    location = user_location()
    spec: WorkflowSpec | None
    if isinstance(workflow, WorkflowSpec):
        spec = workflow
    elif hasattr(workflow, "spec") and hasattr(workflow, "name"):
        try:
            spec = workflow.spec
        except DefinitionError as exc:
            builder.problems.extend(exc.problems)
            spec = None
    else:
        raise DefinitionError(
            f"kaon.subworkflow() takes a @kaon.workflow object, got {type(workflow).__name__}"
        )
    name = spec.name if spec is not None else str(getattr(workflow, "name", ""))
    options = {
        "needs": needs,
        "when": when,
        "retry": retry,
        "timeout": timeout,
        "on_failure": on_failure,
        "trigger_rule": trigger_rule,
        "cache": cache,
        "description": description,
    }
    step_id = builder.new_id(name or "subworkflow", id)
    fields = builder.step_fields(options, location)
    step = SubworkflowSpec(
        id=step_id,
        workflow=name,
        spec=spec,
        inputs=_inputs(builder, inputs, location),
        location=location,
        **fields,
    )
    builder.top.steps.append(step)
    return StepRef(step_id, builder.top)


class _Block(StepRef):
    """A container step used as ``with kaon.foreach(...) as handle:``; after the block the
    handle is a ref to the container's output."""

    __slots__ = ("_body", "_builder", "_fields", "_kind", "_location", "_slot")

    def __init__(self, kind: str, options: Mapping[str, Any]) -> None:
        builder = require_builder(f"kaon.{kind}()")
        location = user_location()
        step_id = builder.new_id(kind, options.get("id"))
        super().__init__(step_id, builder.top)
        self._kind = kind
        self._builder = builder
        self._location = location
        self._fields = builder.step_fields(
            {k: v for k, v in options.items() if k != "id"}, location
        )
        self._body = Frame(kind, step_id)
        self._slot: tuple[Frame, int] | None = None
        builder.expect_block(id(self), kind, location)

    def output(self, ref: Ref) -> None:
        """Make the body step ``ref`` the body's output (default: its single sink step)."""
        if not isinstance(ref, StepRef) or ref._scope is not self._body:
            raise DefinitionError(
                f"{self._kind} {self.id!r}: output() takes a step recorded directly in its body"
            )
        self._body.output = ref.id

    def __enter__(self) -> Any:
        if self._slot is not None:
            raise DefinitionError(f"{self._kind} {self.id!r} can be entered only once")
        self._builder.entered_block(id(self))
        self._slot = self._builder.reserve()
        self._builder.stack.append(self._body)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._finish()
        stack = self._builder.stack
        if stack and stack[-1] is self._body:
            stack.pop()
        if exc_type is None and self._slot is not None:
            frame, index = self._slot
            frame.steps[index] = self._spec()

    def _body_graph(self) -> GraphSpec:
        steps = tuple(s for s in self._body.steps if s is not None)
        return GraphSpec(steps=steps, output=self._body.output)

    def _finish(self) -> None:
        """Last checks while the body is still open."""

    def _spec(self) -> StepSpec:
        raise NotImplementedError


class ForeachBlock(_Block):
    """``with kaon.foreach(items) as seg:`` -- ``seg.item`` and ``seg.index`` inside the body."""

    __slots__ = ("_concurrency", "_item_name", "_items", "_min_success")

    def __init__(
        self,
        items: Any,
        concurrency: int | None,
        as_: str | None,
        options: Mapping[str, Any],
        *,
        min_success: float | None = None,
    ) -> None:
        super().__init__("foreach", options)
        builder = self._builder
        self._items: InputSpec = (
            builder.to_input(items, self._location.with_field("items"))
            if not isinstance(items, str)
            else _expr_of(builder, items, self._location.with_field("items"))
        )
        depth = builder.depth("foreach")
        self._item_name = as_ or ("item" if depth == 0 else f"item_{depth}")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            builder.problem(
                f"concurrency must be an integer >= 1, got {concurrency!r}",
                self._location.with_field("concurrency"),
            )
            concurrency = None
        self._concurrency = concurrency
        self._min_success = min_success  # checked by kaon.model.validation

    @property
    def item(self) -> Ref:
        """The current item (``item``, or this foreach's own item name when nested)."""
        return scoped_ref("item", self._item_name, self._body)

    @property
    def index(self) -> Ref:
        """The current item's 0-based index."""
        return scoped_ref("index", "index", self._body)

    def _spec(self) -> StepSpec:
        return ForeachSpec(
            id=self.id,
            items=self._items,
            body=self._body_graph(),
            concurrency=self._concurrency,
            item_name=self._item_name,
            min_success=self._min_success,
            location=self._location,
            **self._fields,
        )


def _expr_of(builder: Builder, text: str, location: Location) -> InputSpec:
    source = builder.condition(text, location)
    return Expr(source) if source is not None else Const(None)


class LoopBlock(_Block):
    """``with kaon.loop(until=..., max_iterations=3) as lp:`` -- ``lp.iteration`` inside."""

    __slots__ = ("_fail_on_exhausted", "_max_iterations", "_until", "_until_ref")

    def __init__(
        self,
        until: Any,
        max_iterations: int,
        fail_on_exhausted: bool,
        options: Mapping[str, Any],
    ) -> None:
        super().__init__("loop", options)
        self._until: str | None = None
        self._until_ref: Ref | None = None
        if isinstance(until, Ref):
            self._until_ref = until
        elif until is not None:
            self._until = self._builder.condition(until, self._location.with_field("until"))
        if (
            isinstance(max_iterations, bool)
            or not isinstance(max_iterations, int)
            or max_iterations < 1
        ):
            self._builder.problem(
                f"max_iterations must be an integer >= 1, got {max_iterations!r}",
                self._location.with_field("max_iterations"),
            )
            max_iterations = 1
        self._max_iterations = max_iterations
        self._fail_on_exhausted = bool(fail_on_exhausted)

    @property
    def iteration(self) -> Ref:
        """The current iteration number (0-based)."""
        return scoped_ref("iteration", "iteration", self._body)

    def until(self, condition: Any) -> None:
        """Set the stop condition from inside the body (it may read body steps)."""
        if self._until is not None or self._until_ref is not None:
            raise DefinitionError(f"loop {self.id!r} already has an until condition")
        self._until = self._builder.condition(condition, user_location())

    def _finish(self) -> None:
        if self._until_ref is not None:
            self._until = self._builder.condition(
                self._until_ref, self._location.with_field("until")
            )
        if self._until is None:
            self._builder.problem(
                f"loop {self.id!r} needs a stop condition: kaon.loop(until=...) or lp.until(...)",
                self._location.with_field("until"),
            )

    def _spec(self) -> StepSpec:
        return LoopSpec(
            id=self.id,
            body=self._body_graph(),
            until=self._until or "true",
            max_iterations=self._max_iterations,
            fail_on_exhausted=self._fail_on_exhausted,
            location=self._location,
            **self._fields,
        )


class WhenBlock:
    """``with kaon.when(condition):`` -- steps recorded inside get ``when`` (AND-ed)."""

    def __init__(self, condition: Any) -> None:
        self._builder = require_builder("kaon.when()")
        source = self._builder.when_condition(condition, user_location().with_field("when"))
        self._source = source or "false"
        self._frame: Frame | None = None

    def __enter__(self) -> None:
        self._frame = self._builder.top
        self._frame.whens.append(self._source)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._frame is not None and self._frame.whens:
            self._frame.whens.pop()

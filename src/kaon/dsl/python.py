"""The Python front end: ``@kaon.step`` and ``@kaon.workflow``.

A step is a plain function. Called outside a workflow definition it just runs (so steps are
unit-tested like any function). ``@kaon.workflow`` runs the workflow function once, lazily,
with parameter refs; each step call inside records a :class:`~kaon.model.specs.TaskSpec` and
returns a ref to its output, so data flow becomes the graph's edges::

    @kaon.workflow
    def recsys(min_ratings: int = 20):
        users = select_users(min_ratings=min_ratings)
        prep = prepare(users)
        with kaon.foreach(prep["segments"], concurrency=4) as seg:
            train_segment(seg.item, prep["train"])

The resulting :class:`~kaon.model.specs.WorkflowSpec` is validated before anyone sees it.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    NoReturn,
    TypeAlias,
    TypeVar,
    cast,
    overload,
)

from kaon.dsl._blocks import (
    ForeachBlock,
    LoopBlock,
    WhenBlock,
    add_task,
    shell,
    subworkflow,
    task,
    wait_for_signal,
)
from kaon.dsl._builder import (
    OPTION_NAMES,
    Builder,
    active_builder,
    parse_options,
    recording,
    user_location,
)
from kaon.dsl._common import (
    build_retry,
    choices_type,
    infer_param_type,
    is_json_value,
    step_type_problems,
)
from kaon.dsl._refs import ParamRef, Ref, StepRef
from kaon.dsl._triggers import check_triggers_option
from kaon.dsl.durations import parse_duration
from kaon.errors import DefinitionError, KaonError, Location, Problem
from kaon.model.specs import (
    NO_DEFAULT,
    Backoff,
    Expr,
    FailureMode,
    GraphSpec,
    InputSpec,
    ParamSpec,
    ParamType,
    RetrySpec,
    StepDefaults,
    TriggerRule,
    WorkflowSpec,
)
from kaon.model.tenancy import DEFAULT_POOL
from kaon.model.text import exception_text
from kaon.model.triggers import TriggerSpec

_P = typing.ParamSpec("_P")
_R = TypeVar("_R")

# What type checkers accept for the options (a bad value is still a DefinitionError at run time).
Duration: TypeAlias = float | str | timedelta
"""Seconds, a string such as ``"1h30m"`` or ``"500ms"``, or a :class:`datetime.timedelta`."""
BackoffName: TypeAlias = Literal["fixed", "exponential"] | Backoff
OnFailure: TypeAlias = Literal["fail_fast", "finish_running", "ignore"] | FailureMode
TriggerRuleName: TypeAlias = (
    Literal["all_succeeded", "all_succeeded_strict", "all_done", "any_succeeded", "none_failed"]
    | TriggerRule
)

__all__ = [
    "ForeachBlock",
    "LoopBlock",
    "Retry",
    "Step",
    "WhenBlock",
    "Workflow",
    "foreach",
    "loop",
    "shell",
    "step",
    "subworkflow",
    "task",
    "wait_for_signal",
    "when",
    "workflow",
]

_TYPES: dict[Any, ParamType] = {
    int: ParamType.INT,
    float: ParamType.FLOAT,
    str: ParamType.STR,
    bool: ParamType.BOOL,
    list: ParamType.LIST,
    tuple: ParamType.LIST,
    dict: ParamType.DICT,
    Any: ParamType.ANY,
    object: ParamType.ANY,
}


def Retry(
    max_attempts: int = 1,
    backoff: BackoffName = "fixed",
    delay: Duration = 0,
    max_delay: Duration = 300,
    retry_on: Iterable[type[BaseException] | str] = (),
    platform_attempts: int = 3,
) -> RetrySpec:
    """A retry policy: ``max_attempts`` in all, ``delay`` between them (``backoff``
    ``"fixed"`` or ``"exponential"`` capped at ``max_delay``), only for ``retry_on`` errors.

    Raises :class:`DefinitionError` at the caller's line for a bad value.
    """
    return build_retry(
        max_attempts=max_attempts,
        backoff=backoff,
        delay=delay,
        max_delay=max_delay,
        retry_on=list(retry_on),
        platform_attempts=platform_attempts,
        location=user_location(),
    )


def _check_options(options: Mapping[str, Any], location: Location) -> None:
    unknown = sorted(set(options) - OPTION_NAMES)
    problems = [Problem(f"unknown step option {n!r}", location) for n in unknown]
    _fields, more = parse_options({k: v for k, v in options.items() if k in OPTION_NAMES}, location)
    if problems or more:
        raise DefinitionError(problems + more)


# The problems of decorators' options found while a workflow file is imported to be loaded
# (kaon.dsl.loader): the import goes on without the bad options, so that `kaon validate`
# lists the problems of every decorator, not the first one's only.
_gathered: ContextVar[list[Problem] | None] = ContextVar("kaon_gathered", default=None)


@contextmanager
def gathering_problems() -> Iterator[list[Problem]]:
    """Within: a decorator's bad option is added to the list given (and left out of its step)
    instead of raising :class:`DefinitionError` at once."""
    found: list[Problem] = []
    token = _gathered.set(found)
    try:
        yield found
    finally:
        _gathered.reset(token)


def _good_options(options: Mapping[str, Any], location: Location) -> dict[str, Any]:
    """``options`` checked: raises DefinitionError for a bad one, or, while problems are
    gathered (:func:`gathering_problems`), reports it and leaves it out."""
    try:
        _check_options(options, location)
    except DefinitionError as exc:
        found = _gathered.get()
        if found is None:
            raise
        found.extend(exc.problems)
        bad = {(p.location.field or "").split(".", 1)[0] for p in exc.problems}
        return {k: v for k, v in options.items() if k in OPTION_NAMES and k not in bad}
    return dict(options)


class Step(Generic[_P, _R]):
    """A function usable as a workflow step. Calling it outside a workflow runs it.

    A step has its function's signature for type checkers: inside a workflow definition a
    call returns a ref that stands for the output (it is passed on to other steps as if it
    were the value), so ``y: str = square(3)`` is an error when ``square`` returns an int.
    """

    def __init__(self, fn: Callable[_P, _R], options: Mapping[str, Any]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.__kaon_step__ = fn
        self.name: str = options.get("id") or fn.__name__
        self._options = {k: v for k, v in options.items() if k != "id"}
        self._signature = inspect.signature(fn)

    def __repr__(self) -> str:
        return f"<kaon step {self.name}>"

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        builder = active_builder()
        if builder is None:
            return self.fn(*args, **kwargs)
        return cast(_R, self._record(builder, args, kwargs, {}))

    if TYPE_CHECKING:  # the options type checkers see; any name is accepted at run time

        def options(
            self,
            *,
            id: str | None = None,
            needs: Iterable[Any] | None = None,
            when: Any = None,
            retry: RetrySpec | int | None = None,
            timeout: Duration | None = None,
            on_failure: OnFailure | None = None,
            trigger_rule: TriggerRuleName = "all_succeeded",
            cache: bool | None = None,
            cache_version: str = "",
            description: str = "",
        ) -> Callable[_P, _R]:
            """This step with per-call options."""
            ...

    else:

        def options(self, **options: Any) -> Callable[_P, _R]:
            """This step with per-call options (``id``, ``needs``, ``when``, ``retry``,
            ``timeout``, ``on_failure``, ``trigger_rule``, ``cache``, ...). Raises
            :class:`DefinitionError` for an unknown or malformed option."""
            _check_options(
                {k: v for k, v in options.items() if k not in ("id", "needs", "when")},
                user_location(),
            )

            def call(*args: Any, **kwargs: Any) -> Any:
                builder = active_builder()
                if builder is None:
                    return self.fn(*args, **kwargs)
                return self._record(builder, args, kwargs, options)

            return call

    def _record(
        self,
        builder: Builder,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call: Mapping[str, Any],
    ) -> StepRef:
        location = user_location()
        config, problem = python_config(self.fn)
        if problem:
            builder.problem(problem, location)
        first = next(iter(self._signature.parameters), None)
        if "." in self.fn.__qualname__ and "<" not in self.fn.__qualname__ and first == "self":
            builder.problem(
                f"step function {self.fn.__qualname__!r} is a method; a step is a module-level "
                "function (or a @staticmethod): a worker has no instance to call it on",
                location,
            )
            inputs: dict[str, InputSpec] = {}  # its arguments cannot be bound to it
        else:
            inputs = self._bind(builder, args, kwargs, location)
        return add_task(
            builder,
            base=self.name,
            options={**self._options, **call},
            step_type="python",
            config=config,
            inputs=inputs,
            location=location,
        )

    def _bind(
        self, builder: Builder, args: tuple[Any, ...], kwargs: dict[str, Any], location: Location
    ) -> dict[str, InputSpec]:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            builder.problem(f"cannot call step {self.name!r}: {exc}", location)
            return {}
        inputs: dict[str, InputSpec] = {}
        for name, value in bound.arguments.items():
            kind = self._signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                for key, item in value.items():
                    inputs[key] = builder.to_input(item, location.with_field(f"inputs.{key}"))
            elif kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
                builder.problem(
                    f"step {self.name!r}: parameter {name!r} is positional-only or *args; "
                    "steps receive their inputs as keyword arguments",
                    location,
                )
            else:
                inputs[name] = builder.to_input(value, location.with_field(f"inputs.{name}"))
        return inputs


def python_config(fn: Callable[..., Any]) -> tuple[dict[str, Any], str | None]:
    """The ``python`` step type config naming ``fn`` so that a worker can import it.

    A function of a package module (``mypkg.steps``) or of an installed or standard-library
    module is named ``{"function": "module:qualname"}``. A function of a loose top-level
    module (a ``pipeline.py`` next to the workflow file, a script, a file loaded by path)
    is named by its file, ``{"file": ..., "function": qualname}``: a fresh worker could not
    import it by name, and the YAML front end names the same function the same way. The
    second value is a problem message when a worker could not find the function at all (a
    nested function or a lambda).
    """
    qualname = fn.__qualname__
    module = sys.modules.get(fn.__module__)
    problem = None
    if "<" in qualname:
        problem = (
            f"step function {qualname!r} is defined inside another function or is a lambda; "
            "workers import steps by name, so define it at module level"
        )
    elif inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        problem = (
            f"step function {qualname!r} is async; a step is a plain function "
            "(run the coroutine inside it, e.g. with asyncio.run(...))"
        )
    elif inspect.isgeneratorfunction(fn):
        problem = (
            f"step function {qualname!r} is a generator (it uses yield); a step returns "
            "its output: return a list instead"
        )
    if module is not None and _importable_by_name(module):
        return {"function": f"{module.__name__}:{qualname}"}, problem
    file = getattr(module, "__file__", None) or inspect.getsourcefile(fn) or ""
    if problem is None and not os.path.isfile(file):
        shown = fn.__code__.co_filename
        problem = (
            f"step function {qualname!r} is defined in a notebook cell or an interactive "
            f"session ({shown}, not a file on disk); workers import steps from files: define "
            f"it in a .py file beside the notebook and import it (from steps import {qualname})"
        )
    return {"file": os.path.realpath(file), "function": qualname}, problem


def _importable_by_name(module: types.ModuleType) -> bool:
    name = module.__name__
    if name == "__main__" or name.startswith("kaon_user_") or module.__spec__ is None:
        return False
    if "." in name:
        return True  # a package module: its package must be importable anyway
    file = getattr(module, "__file__", None)
    return file is None or name in _installed_top_level() or _in_library_path(file)


@functools.cache
def _installed_top_level() -> frozenset[str]:
    from importlib.metadata import packages_distributions

    return frozenset(packages_distributions())


def _in_library_path(file: str) -> bool:
    import sysconfig

    real = os.path.realpath(file)
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(real.startswith(os.path.realpath(root) + os.sep) for root in roots)


@overload
def step(fn: Callable[_P, _R], /) -> Step[_P, _R]: ...


@overload
def step(
    *,
    id: str | None = None,
    retry: RetrySpec | int | None = None,
    timeout: Duration | None = None,
    on_failure: OnFailure | None = None,
    cache: bool | None = None,
    cache_version: str = "",
    trigger_rule: TriggerRuleName = "all_succeeded",
    description: str = "",
    breakpoint: bool | Literal["after"] = False,
    resources: Mapping[str, Any] | None = None,
    pool: str | None = None,
    priority: int | None = None,
    tags: Iterable[str] | None = None,
) -> Callable[[Callable[_P, _R]], Step[_P, _R]]: ...


def step(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a workflow step, bare (``@kaon.step``) or with options.

    Options: ``id`` (default: the function name), ``retry`` (:func:`Retry` or a number of
    attempts), ``timeout`` (a duration), ``on_failure``, ``cache``, ``cache_version``,
    ``trigger_rule``, ``description``, ``breakpoint`` (True or ``"after"``: every run pauses
    there, see :mod:`kaon.model.breakpoints`), ``resources`` (``{"cpus": 2, "memory": "4Gi",
    "gpus": 1, "custom": {...}}``, see :mod:`kaon.model.resources`), ``pool``, ``priority``
    and ``tags`` (see :mod:`kaon.model.tenancy`). Raises
    :class:`DefinitionError` for a bad option.
    """
    if fn is not None:
        return Step(fn, {})
    good = _good_options({k: v for k, v in options.items() if k != "id"}, user_location())
    if "id" in options:
        good["id"] = options["id"]

    def decorate(func: Callable[..., Any]) -> Step[..., Any]:
        return Step(func, good)

    return decorate


class Workflow(Generic[_P]):
    """A workflow defined by a Python function. Its :attr:`spec` is built once, lazily.

    Generic over the function's parameters, which are the workflow's parameters."""

    def __init__(self, fn: Callable[_P, Any], options: Mapping[str, Any]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name: str = options.get("name") or fn.__name__
        code = fn.__code__
        self.location = Location(os.path.realpath(code.co_filename), code.co_firstlineno)
        self.description: str = options.get("description") or inspect.getdoc(fn) or ""
        self._timeout_s, self._defaults, self._priority = _workflow_options(options, self.location)
        self._triggers, problems = check_triggers_option(options.get("triggers"), self.location)
        if problems:
            raise DefinitionError(problems)
        self._spec: WorkflowSpec | None = None
        self._building = False
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<kaon workflow {self.name}>"

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> NoReturn:
        raise DefinitionError(
            Problem(
                f"workflow {self.name!r} is not called like a function; run it with "
                f"`kaon run {self.location.file}:{self.name}`, use its .spec, or embed it "
                "with kaon.subworkflow(...)",
                user_location(),
            )
        )

    @property
    def spec(self) -> WorkflowSpec:
        """The validated spec. Raises :class:`DefinitionError` listing every problem."""
        with self._lock:
            if self._spec is None:
                if self._building:
                    raise DefinitionError(
                        Problem(f"workflow {self.name!r} includes itself", self.location)
                    )
                self._building = True
                try:
                    self._spec = _build(self)
                finally:
                    self._building = False
            return self._spec


def _workflow_options(
    options: Mapping[str, Any], location: Location
) -> tuple[float | None, StepDefaults, int]:
    known = {
        "name",
        "description",
        "timeout",
        "retry",
        "on_failure",
        "cache",
        "step_timeout",
        "triggers",
        "pool",
        "priority",
    }
    problems = [
        Problem(f"unknown workflow option {name!r}", location.with_field(name))
        for name in sorted(set(options) - known)
    ]
    values: dict[str, Any] = {}
    for name in ("timeout", "step_timeout"):
        if options.get(name) is not None:
            try:
                values[name] = parse_duration(options[name], location.with_field(name))
            except DefinitionError as exc:
                problems.extend(exc.problems)
    fields, more = parse_options(
        {
            k: options[k]
            for k in ("retry", "on_failure", "cache", "pool", "priority")
            if options.get(k) is not None
        },
        location,
    )
    problems.extend(more)
    if problems:
        raise DefinitionError(problems)
    defaults = StepDefaults(
        retry=fields.get("retry") or RetrySpec(),
        timeout_s=values.get("step_timeout"),
        on_failure=fields.get("on_failure") or FailureMode.FAIL_FAST,
        cache=bool(fields.get("cache", False)),
        pool=fields.get("pool") or DEFAULT_POOL,
    )
    return values.get("timeout"), defaults, fields.get("priority") or 0


@overload
def workflow(fn: Callable[_P, Any], /) -> Workflow[_P]: ...


@overload
def workflow(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: Duration | None = None,
    retry: RetrySpec | int | None = None,
    on_failure: OnFailure | None = None,
    cache: bool | None = None,
    step_timeout: Duration | None = None,
    triggers: Iterable[TriggerSpec] | None = None,
    pool: str | None = None,
    priority: int | None = None,
) -> Callable[[Callable[_P, Any]], Workflow[_P]]: ...


def workflow(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Define a workflow from a function whose parameters are the workflow's parameters.

    Options: ``name`` (default: the function name), ``description`` (default: the
    docstring), ``timeout`` for the whole run, step defaults ``retry``, ``on_failure``,
    ``cache``, ``step_timeout`` and ``pool``, the runs' ``priority``, and ``triggers``
    (``kaon.cron(...)``, ``kaon.on_signal(...)``, ``kaon.on_data(...)``). Raises
    :class:`DefinitionError` for a bad option; problems in the body are raised when
    :attr:`Workflow.spec` is first read.
    """
    if fn is not None:
        return Workflow(fn, {})

    def decorate(func: Callable[..., Any]) -> Workflow[...]:
        return Workflow(func, options)

    return decorate


def foreach(
    items: Any,
    *,
    concurrency: int | None = None,
    id: str | None = None,
    as_: str | None = None,
    min_success: float | None = None,
    **options: Any,
) -> ForeachBlock:
    """Repeat the ``with`` block's steps for each item of ``items`` (a ref or a JSON list).

    ``handle.item`` / ``handle.index`` are the current item and index inside the body;
    after the block the handle is a ref to the list of the body's outputs. ``as_`` names
    the item variable (nested foreaches get ``item_1``, ``item_2``, ... by default).
    ``min_success=0.8``: the foreach succeeds when 80 % of its items do (``None`` for the
    others in its output), every item running whatever the others do.
    """
    options = {**options, **({"id": id} if id else {})}
    return ForeachBlock(items, concurrency, as_, options, min_success=min_success)


def loop(
    until: Any = None,
    *,
    max_iterations: int = 3,
    fail_on_exhausted: bool = False,
    id: str | None = None,
    **options: Any,
) -> LoopBlock:
    """Repeat the ``with`` block's steps until ``until`` holds, at most ``max_iterations``.

    ``until`` is a CEL string, an Expr or a ref; it may also be set inside the body with
    ``handle.until(check["stable"])``. ``handle.iteration`` is the 0-based iteration.
    """
    options = {**options, **({"id": id} if id else {})}
    return LoopBlock(until, max_iterations, fail_on_exhausted, options)


def when(condition: Any) -> WhenBlock:
    """Run the ``with`` block's steps only when ``condition`` holds (nested blocks AND)."""
    return WhenBlock(condition)


# -- building the spec ---------------------------------------------------------------------


_Declared: TypeAlias = tuple[ParamType | None, bool, tuple[Any, ...]]  # type, nullable, choices


def _param_type(annotation: Any, default: Any) -> _Declared:
    """The parameter type an annotation declares (None: not supported), whether it accepts
    ``None`` (``Optional[float]``, ``float | None``) and its choices (``Literal[...]``)."""
    if annotation is inspect.Parameter.empty:
        known = default is not inspect.Parameter.empty
        return (infer_param_type(default) if known else ParamType.ANY), False, ()
    if annotation is None or annotation is type(None):
        return None, False, ()
    if isinstance(annotation, str):  # an annotation get_type_hints could not resolve
        text = annotation.strip()
        inner = _optional_text(text)
        if inner is not None:
            return _param_type(inner, default)[0], True, ()
        base = text.split("[", 1)[0].strip()
        return (ParamType.ANY if base in ("Any", "typing.Any") else _builtin_type(base)), False, ()
    origin = typing.get_origin(annotation) or annotation
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        choices = tuple(v for v in values if v is not None)
        nullable = len(choices) < len(values)
        return (choices_type(choices) if choices else None), nullable, choices
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        others = [m for m in members if m is not type(None)]
        if len(others) == 1 and len(others) < len(members):  # Optional[X]: X, or None
            kind, _, choices = _param_type(others[0], default)
            return kind, True, choices
        return ParamType.ANY, False, ()  # a union of types: any accepts every JSON value
    return _TYPES.get(origin), False, ()


def _optional_text(text: str) -> str | None:
    """``X`` of an unresolved ``Optional[X]``, ``X | None`` or ``None | X``; else None."""
    for prefix in ("Optional[", "typing.Optional["):
        if text.startswith(prefix) and text.endswith("]"):
            return text[len(prefix) : -1].strip()
    parts = [part.strip() for part in text.split("|")]
    if len(parts) == 2 and "None" in parts:
        return parts[1] if parts[0] == "None" else parts[0]
    return None


def _builtin_type(name: str) -> ParamType | None:
    return {
        "int": ParamType.INT,
        "float": ParamType.FLOAT,
        "str": ParamType.STR,
        "bool": ParamType.BOOL,
        "list": ParamType.LIST,
        "dict": ParamType.DICT,
        "object": ParamType.ANY,
    }.get(name)


def _params(fn: Callable[..., Any], location: Location) -> tuple[list[ParamSpec], list[Problem]]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable string annotations: fall back to their text
        hints = {}
    params: list[ParamSpec] = []
    problems: list[Problem] = []
    for name, parameter in inspect.signature(fn).parameters.items():
        where = Location(location.file, location.line)
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            problems.append(
                Problem(
                    f"workflow parameter {name!r} must be a named parameter",
                    where.with_field(f"params.{name}"),
                )
            )
            continue
        annotation = hints.get(name, parameter.annotation)
        computed = isinstance(parameter.default, Ref)  # kaon.expr("params.k * 2")
        ptype, nullable, choices = _param_type(annotation, None if computed else parameter.default)
        if ptype is None:
            problems.append(
                Problem(
                    f"parameter {name!r}: type {annotation!r} is not supported; "
                    "use int, float, str, bool, list, dict or Any, Optional[...] of one, or a "
                    "Literal of values",
                    where.with_field(f"params.{name}"),
                )
            )
            ptype = ParamType.ANY
        default = NO_DEFAULT if parameter.default is inspect.Parameter.empty else parameter.default
        if computed:
            default = Expr(parameter.default.source)
        if isinstance(default, tuple) and is_json_value(default):
            default = list(default)
        params.append(
            ParamSpec(
                name=name,
                type=ptype,
                default=default,
                location=where,
                nullable=nullable,
                choices=choices,
            )
        )
    return params, problems


def _failure_location(exc: BaseException, fallback: Location) -> Location:
    """The deepest traceback frame outside Kaon and outside the standard library and
    installed packages (``<frozen posixpath>`` is no place to look): where the user's code
    failed."""
    found = fallback
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        filename = tb.tb_frame.f_code.co_filename
        if not (
            module.startswith("kaon.") or filename.startswith("<") or _in_library_path(filename)
        ):
            found = Location(os.path.realpath(filename), tb.tb_lineno)
        tb = tb.tb_next
    return found


def _run_definition(
    wf: Workflow[...], builder: Builder, params: list[ParamSpec]
) -> tuple[Any, list[Problem]]:
    """Run the workflow function once; returns its result and problems that stopped it."""
    with recording(builder):
        try:
            return wf.fn(**{p.name: ParamRef(p.name) for p in params}), []
        except DefinitionError as exc:
            where = _failure_location(exc, wf.location)
            return None, [
                p if p.location != Location() else Problem(p.message, where) for p in exc.problems
            ]
        except KaonError:
            raise
        except (Exception, SystemExit) as exc:  # SystemExit(0) must not pass as success
            message = f"the workflow function raised {type(exc).__name__}: {exception_text(exc)}"
            return None, [Problem(message, _failure_location(exc, wf.location))]


def _build(wf: Workflow[...]) -> WorkflowSpec:
    from kaon.model.validation import raise_if_invalid, validate_workflow
    from kaon.steptypes.registry import check_step_type

    params, problems = _params(wf.fn, wf.location)
    builder = Builder()
    result, stopped = _run_definition(wf, builder, params)
    top = builder.stack[0]
    output = None
    if isinstance(result, StepRef) and result._scope is top:
        output = result.id
    elif result is not None:
        problems.append(
            Problem(
                f"a workflow function returns one of its top-level steps or None, got {result!r}",
                wf.location,
            )
        )
    spec = WorkflowSpec(
        name=wf.name,
        graph=GraphSpec(steps=tuple(s for s in top.steps if s is not None), output=output),
        params=tuple(params),
        defaults=wf._defaults,
        priority=wf._priority,
        timeout_s=wf._timeout_s,
        description=wf.description,
        location=wf.location,
        triggers=wf._triggers,
    )
    problems += builder.problems + stopped
    if not stopped:  # a definition that stopped half-way would only add noise
        problems += builder.unentered_problems()
        problems += validate_workflow(spec, check_step_type=check_step_type)
        problems += step_type_problems(spec)
    raise_if_invalid(problems)
    return spec

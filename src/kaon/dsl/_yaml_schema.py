"""The structure of a YAML workflow file, as pydantic models (unknown fields are errors).

Each piece is validated on its own (the top level, each parameter, each step), so that one
bad step does not hide the problems of the others. Nested ``steps`` stay raw here; the loader
validates them one by one.
"""

from __future__ import annotations

import difflib
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from kaon.dsl.durations import parse_duration
from kaon.errors import DefinitionError
from kaon.model.specs import Backoff, FailureMode, ParamType, TriggerRule
from kaon.model.validation import MAX_ATTEMPTS

STEP_KINDS = ("python", "shell", "type", "workflow", "wait", "foreach", "loop")


def _duration(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DefinitionError as exc:
        raise ValueError(exc.problems[0].message) from None


def _retry_shorthand(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"max_attempts": value}
    return value


def _shell_shorthand(value: Any) -> Any:
    return {"command": value} if isinstance(value, str) else value


def _param_shorthand(value: Any) -> Any:
    return value if isinstance(value, dict) else {"default": value}


Duration = Annotated[Any, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class RetryModel(_Model):
    """``retry: {max_attempts, backoff, delay, max_delay, retry_on, platform_attempts}``."""

    # The bounds of kaon.model.validation, here too: a step's problems are listed in one pass.
    max_attempts: StrictInt = Field(1, ge=1, le=MAX_ATTEMPTS)
    backoff: Backoff = Backoff.FIXED
    delay: Duration = 0.0
    max_delay: Duration = 300.0
    retry_on: list[StrictStr] = []
    platform_attempts: StrictInt = Field(3, ge=0, le=MAX_ATTEMPTS)


Retry = Annotated[RetryModel, BeforeValidator(_retry_shorthand)]


class ShellModel(_Model):
    """``shell: "cmd"`` or ``shell: {command, env, cwd, shell}``."""

    command: StrictStr
    env: dict[str, StrictStr] | None = None
    cwd: StrictStr | None = None
    shell: StrictStr | None = None


class LoopModel(_Model):
    """``loop: {until, max_iterations, fail_on_exhausted}``."""

    until: StrictStr
    max_iterations: StrictInt = Field(3, ge=1)
    fail_on_exhausted: StrictBool = False


class ParamModel(_Model):
    """``name: {type, default, description, nullable, choices}`` or the shorthand
    ``name: default``."""

    type: ParamType | None = None
    default: Any = None
    description: StrictStr = ""
    nullable: StrictBool = False
    choices: list[Any] | None = Field(default=None, min_length=1)


class DefaultsModel(_Model):
    """``defaults: {retry, timeout, on_failure, cache}`` for steps that leave them unset."""

    retry: Retry | None = None
    timeout: Duration = None
    on_failure: FailureMode = FailureMode.FAIL_FAST
    cache: StrictBool = False
    pool: Any = None  # checked by kaon.model.tenancy


class WaitModel(_Model):
    """``wait: {signal: NAME, match: CONDITION}`` (or ``wait: NAME``)."""

    signal: StrictStr
    match: StrictStr | None = None


def _wait_shorthand(value: Any) -> Any:
    return {"signal": value} if isinstance(value, str) else value


class StepModel(_Model):
    """One step. Exactly one of the kind fields (``STEP_KINDS``) is set."""

    id: StrictStr
    description: StrictStr = ""
    python: StrictStr | None = None
    shell: Annotated[ShellModel, BeforeValidator(_shell_shorthand)] | None = None
    type: StrictStr | None = None
    config: dict[str, Any] | None = None
    workflow: StrictStr | None = None
    wait: Annotated[WaitModel, BeforeValidator(_wait_shorthand)] | None = None
    foreach: Any = None
    as_: StrictStr | None = Field(None, alias="as")
    concurrency: StrictInt | None = Field(None, ge=1)
    min_success: float | None = None  # checked by kaon.model.validation
    loop: LoopModel | None = None
    steps: list[Any] | None = None
    output: StrictStr | None = None
    inputs: dict[str, Any] = {}
    needs: list[StrictStr] = []
    when: Any = None
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCEEDED
    retry: Retry | None = None
    timeout: Duration = None
    on_failure: FailureMode | None = None
    cache: StrictBool | None = None
    cache_version: StrictStr = ""
    breakpoint: StrictBool | Literal["before", "after"] = False
    resources: Any = None  # checked by kaon.model.resources, with its own messages
    pool: Any = None  # pool, priority, tags: checked by kaon.model.tenancy
    priority: Any = None
    tags: Any = None

    @field_validator("foreach")
    @classmethod
    def _items(cls, value: Any) -> Any:
        if value is None or isinstance(value, str | list):
            return value
        raise ValueError("foreach takes an expression string or a list")

    @field_validator("breakpoint", mode="before")
    @classmethod
    def _breakpoint(cls, value: Any) -> Any:
        # one problem in the Python front end's words, not one per member of the union
        if isinstance(value, bool) or value in ("before", "after"):
            return value
        raise ValueError(f"breakpoint must be true, 'before' or 'after', got {value!r:.40}")

    @field_validator("when")
    @classmethod
    def _condition(cls, value: Any) -> Any:
        if value is None or isinstance(value, str | bool):
            return value
        raise ValueError("when takes an expression string")


class WorkflowModel(_Model):
    """The top level of a workflow file."""

    name: StrictStr
    description: StrictStr = ""
    params: dict[str, Any] = {}
    defaults: DefaultsModel = DefaultsModel()
    timeout: Duration = None
    priority: Any = None  # of its runs (kaon.model.tenancy)
    steps: list[Any]
    output: StrictStr | None = None
    triggers: list[Any] = []  # entries validated one by one (kaon.dsl._triggers.TriggerModel)


def field_names(model: type[BaseModel]) -> list[str]:
    """The names a model accepts in a document (aliases where set)."""
    return [f.alias or name for name, f in model.model_fields.items()]


def model_at(root: type[BaseModel], path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model describing the mapping at ``path`` below ``root`` (None when not a model)."""
    current: Any = root
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for n, f in current.model_fields.items() if (f.alias or n) == part), None
            )
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` from an annotation."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, type(int | None)) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


def error_messages(
    model: type[BaseModel], error: ValidationError
) -> list[tuple[tuple[str | int, ...], str]]:
    """``(path, message)`` for each error, with friendly wording and field suggestions."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if isinstance(p, str | int))
        kind = item["type"]
        message = str(item["msg"])
        if kind == "extra_forbidden":
            name = str(loc[-1]) if loc else "?"
            parent = model_at(model, loc[:-1])
            known = field_names(parent) if parent is not None else []
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"unknown field {name!r}{hint}; allowed: {', '.join(sorted(known))}"
        elif kind == "missing":
            message = f"missing required field {loc[-1]!r}" if loc else "missing required field"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        else:
            message = f"{message}, got {item.get('input')!r:.60}"
        found.append((loc, message))
    return found

"""Workflow specs to and from plain JSON-able dicts, and a content hash of a spec.

A run records the exact spec it ran (:func:`workflow_to_dict`); a version's identity is
:func:`spec_hash`, computed without locations and descriptions so that moving a step to
another line or rewording a description does not make a new version.

Round trips are exact for specs whose constant values, configs and defaults are JSON values
(lists, not tuples; string keys): ``workflow_from_dict(workflow_to_dict(s)) == s``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Any, Final, NoReturn, TypeVar

from kaon.errors import DefinitionError, Location, Problem
from kaon.model.resources import resources_from_dict
from kaon.model.specs import (
    NO_DEFAULT,
    Backoff,
    Const,
    Expr,
    FailureMode,
    ForeachSpec,
    GraphSpec,
    InputSpec,
    LoopSpec,
    ParamSpec,
    ParamType,
    RetrySpec,
    StepDefaults,
    StepSpec,
    SubworkflowSpec,
    TaskSpec,
    TriggerRule,
    WaitSpec,
    WorkflowSpec,
)
from kaon.model.tenancy import DEFAULT_POOL
from kaon.model.triggers import trigger_from_dict, trigger_to_dict

FORMAT_VERSION: Final = 1
"""Version of the dict layout; written as ``format`` in every workflow dict."""

_E = TypeVar("_E", bound=StrEnum)
_MISSING: Final = object()


def workflow_to_dict(spec: WorkflowSpec) -> dict[str, Any]:
    """Encode ``spec`` (nested bodies and subworkflow specs included) as a JSON-able dict.

    Raises :class:`DefinitionError` when a constant, config or default is not a JSON value
    (non-string keys, non-finite floats, arbitrary objects), naming where it is.
    """
    return _Encoder(meta=True).workflow(spec)


def spec_hash(spec: WorkflowSpec) -> str:
    """The sha256 (hex) of the canonical JSON of ``spec`` without locations or descriptions.

    Raises :class:`DefinitionError` like :func:`workflow_to_dict`.
    """
    data = _Encoder(meta=False).workflow(spec)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Encoder:
    """Builds the dict; ``meta`` says whether locations and descriptions are included."""

    def __init__(self, *, meta: bool) -> None:
        self.meta = meta

    def workflow(self, spec: WorkflowSpec) -> dict[str, Any]:
        where = spec.location
        data: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "name": spec.name,
            "params": [self.param(p) for p in spec.params],
            "defaults": self.defaults(spec.defaults, where.with_field("defaults")),
            "timeout_s": _float(spec.timeout_s, where, "timeout_s"),
            "graph": self.graph(spec.graph),
        }
        if spec.priority:  # absent when 0: older definitions keep their hash
            data["priority"] = spec.priority
        if spec.triggers:  # absent when empty: hashes of workflows without triggers stay put
            data["triggers"] = [trigger_to_dict(t, meta=self.meta) for t in spec.triggers]
        self._meta(data, spec.description, spec.location)
        return data

    def _meta(self, data: dict[str, Any], description: str, location: Location) -> None:
        if self.meta:
            data["description"] = description
            data["location"] = {
                "file": location.file,
                "line": location.line,
                "field": location.field,
            }

    def param(self, param: ParamSpec) -> dict[str, Any]:
        data: dict[str, Any] = {"name": param.name, "type": param.type.value}
        if param.nullable:  # written only when set: earlier definitions keep their hashes
            data["nullable"] = True
        if param.choices:
            where = f"params.{param.name}.choices"
            data["choices"] = _json_value(list(param.choices), param.location, where)
        if isinstance(param.default, Expr):
            data["default_expr"] = param.default.source
        elif param.default is not NO_DEFAULT:
            where = f"params.{param.name}.default"
            data["default"] = _json_value(param.default, param.location, where)
        self._meta(data, param.description, param.location)
        return data

    def defaults(self, defaults: StepDefaults, where: Location) -> dict[str, Any]:
        data: dict[str, Any] = {
            "retry": _retry(defaults.retry, where.with_field("retry")),
            "timeout_s": _float(defaults.timeout_s, where, "timeout_s"),
            "on_failure": defaults.on_failure.value,
            "cache": defaults.cache,
        }
        if defaults.pool != DEFAULT_POOL:  # only when set: older definitions keep their hash
            data["pool"] = defaults.pool
        return data

    def graph(self, graph: GraphSpec) -> dict[str, Any]:
        return {"steps": [self.step(s) for s in graph.steps], "output": graph.output}

    def step(self, step: StepSpec) -> dict[str, Any]:
        where = step.location
        data: dict[str, Any] = {
            "kind": _kind(step),
            "id": step.id,
            "needs": list(step.needs),
            "inputs": {
                name: _input(value, where, f"inputs.{name}") for name, value in step.inputs.items()
            },
            "when": step.when,
            "trigger_rule": step.trigger_rule.value,
            "retry": None if step.retry is None else _retry(step.retry, where.with_field("retry")),
            "timeout_s": _float(step.timeout_s, where, "timeout_s"),
            "on_failure": None if step.on_failure is None else step.on_failure.value,
            "cache": step.cache,
            "cache_version": step.cache_version,
        }
        if step.breakpoint:  # only when set: definitions without one keep their hash
            data["breakpoint"] = step.breakpoint
        if step.resources is not None:  # only when set: older definitions keep their hash
            data["resources"] = step.resources.as_request()
        if step.pool is not None:  # tenancy fields only when set, like resources
            data["pool"] = step.pool
        if step.priority is not None:
            data["priority"] = step.priority
        if step.tags:
            data["tags"] = list(step.tags)
        data.update(self._kind_fields(step))
        self._meta(data, step.description, step.location)
        return data

    def _kind_fields(self, step: StepSpec) -> dict[str, Any]:
        where = step.location
        if isinstance(step, TaskSpec):
            config = _json_value(dict(step.config), where, "config")
            return {"step_type": step.step_type, "config": config}
        if isinstance(step, ForeachSpec):
            data: dict[str, Any] = {
                "items": _input(step.items, where, "items"),
                "body": self.graph(step.body),
                "concurrency": step.concurrency,
                "item_name": step.item_name,
            }
            if step.min_success is not None:  # only when set: earlier hashes are kept
                data["min_success"] = _float(step.min_success, where, "min_success")
            return data
        if isinstance(step, LoopSpec):
            return {
                "body": self.graph(step.body),
                "until": step.until,
                "max_iterations": step.max_iterations,
                "fail_on_exhausted": step.fail_on_exhausted,
            }
        if isinstance(step, WaitSpec):
            return {"signal": step.signal, "match": step.match}
        assert isinstance(step, SubworkflowSpec)
        spec = None if step.spec is None else self.workflow(step.spec)
        return {"workflow": step.workflow, "spec": spec}


def _kind(step: StepSpec) -> str:
    kind = _KIND_OF.get(type(step))  # the common case: one of the classes itself
    if kind is not None:
        return kind
    for cls, kind in _KINDS:
        if isinstance(step, cls):
            return kind
    raise DefinitionError(
        Problem(f"cannot encode step {step.id!r} of kind {type(step).__name__}", step.location)
    )


_KINDS: Final[tuple[tuple[type[StepSpec], str], ...]] = (
    (TaskSpec, "task"),
    (ForeachSpec, "foreach"),
    (LoopSpec, "loop"),
    (SubworkflowSpec, "subworkflow"),
    (WaitSpec, "wait"),
)
_KIND_OF: Final[dict[type, str]] = dict(_KINDS)

# Where a value is: a location and the field inside it. The field is joined to the location
# (Location.with_field) only for an error: encoding a definition of thousands of steps makes
# none.


def _input(value: InputSpec, location: Location, field: str) -> dict[str, Any]:
    if isinstance(value, Expr):
        return {"expr": value.source}
    if isinstance(value, Const):
        return {"const": _json_value(value.value, location, field)}
    where = location.with_field(field)
    raise DefinitionError(Problem(f"expected Const or Expr, got {value!r:.80}", where))


def _retry(retry: RetrySpec, where: Location) -> dict[str, Any]:
    return {
        "max_attempts": retry.max_attempts,
        "backoff": retry.backoff.value,
        "delay_s": _float(retry.delay_s, where, "delay_s"),
        "max_delay_s": _float(retry.max_delay_s, where, "max_delay_s"),
        "retry_on": list(retry.retry_on),
        "platform_attempts": retry.platform_attempts,
    }


def _float(value: float | None, location: Location, field: str) -> float | None:
    """Floats are written as floats so that ``5`` and ``5.0`` hash alike."""
    if value is None:
        return None
    return float(_json_value(value, location, field))


_PLAIN: Final = frozenset({str, bool, int, type(None)})  # exact types written as they are


def _json_value(value: Any, location: Location, field: str) -> Any:
    """``value`` as plain JSON (tuples become lists); raises DefinitionError otherwise,
    naming ``field`` of ``location``."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:  # the common container (a config): its keys checked, its values walked
        result: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                where = location.with_field(field)
                raise DefinitionError(Problem(f"map key {key!r} is not a string", where))
            result[key] = item if type(item) in _PLAIN else _json_value(item, location, field)
        return result
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            where = location.with_field(field)
            raise DefinitionError(Problem(f"{value!r} is not a JSON number", where))
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v, location, field) for v in value]
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                where = location.with_field(field)
                raise DefinitionError(Problem(f"map key {key!r} is not a string", where))
            result[key] = _json_value(item, location, field)
        return result
    raise DefinitionError(
        Problem(
            f"{type(value).__name__} value {value!r:.80} is not a JSON value",
            location.with_field(field),
        )
    )


# -- decoding ----------------------------------------------------------------------------


class _Fields:
    """Typed, strict access to one dict of the encoded form; rejects unknown keys."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            _malformed(path, f"expected an object, got {_type(data)}")
        self.data: Mapping[str, Any] = data
        self.path = path
        self.used: set[str] = set()

    def get(self, key: str, kinds: tuple[type, ...], default: Any = _MISSING) -> Any:
        self.used.add(key)
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                _malformed(self.at(key), "is missing")
            return default
        kind = type(value)
        if kind in kinds or (kind is dict and Mapping in kinds):  # the common cases: exactly
            return value  # a listed type (a bool only if listed), or a dict for an object
        if value is None and type(None) in kinds:
            return None
        if isinstance(value, bool) and bool not in kinds:
            _malformed(self.at(key), f"expected {_names(kinds)}, got bool")
        if not isinstance(value, kinds):
            _malformed(self.at(key), f"expected {_names(kinds)}, got {_type(value)}")
        return value

    def text(self, key: str, default: Any = _MISSING) -> Any:
        return self.get(key, (str,), default)

    def opt_float(self, key: str) -> float | None:
        value = self.get(key, (int, float, type(None)), None)
        return None if value is None else float(value)

    def enum(self, key: str, cls: type[_E], default: Any = _MISSING) -> Any:
        value = self.get(key, (str, type(None)) if default is None else (str,), default)
        if value is None or isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            _malformed(self.at(key), f"unknown value {value!r} (expected one of {allowed})")

    def child(self, key: str, default: Any = _MISSING) -> _Fields:
        return _Fields(self.get(key, (Mapping,), default), self.at(key))

    def done(self) -> None:
        if self.used.issuperset(self.data):
            return
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            _malformed(self.path, f"unknown keys {', '.join(map(repr, unknown))}")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


def _malformed(path: str, message: str) -> NoReturn:
    where = Location(field=path or None)
    raise DefinitionError(Problem(f"malformed workflow dict: {path or 'top'}: {message}", where))


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


_TYPE_NAMES: Final[dict[type, str]] = {
    type(None): "null",
    str: "string",
    int: "integer",
    float: "number",
    list: "array",
    Mapping: "object",
    bool: "boolean",
}


def _type(value: object) -> str:
    if isinstance(value, Mapping):
        return "object"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def workflow_from_dict(data: Mapping[str, Any]) -> WorkflowSpec:
    """Decode a dict made by :func:`workflow_to_dict` (or parsed from its JSON).

    Missing optional keys take the spec defaults. Raises :class:`DefinitionError` naming
    the offending field on a malformed dict: wrong types, unknown keys, unknown kinds or
    enum values, or an unsupported ``format``.
    """
    return _workflow(_Fields(data, ""))


def _workflow(fields: _Fields) -> WorkflowSpec:
    version = fields.get("format", (int,), FORMAT_VERSION)
    if version != FORMAT_VERSION:
        _malformed(fields.at("format"), f"unsupported format {version} (expected 1)")
    params = fields.get("params", (list,), [])
    triggers = fields.get("triggers", (list,), [])
    spec = WorkflowSpec(
        name=fields.text("name"),
        graph=_graph(fields.child("graph")),
        params=tuple(
            _param(_Fields(p, f"{fields.at('params')}[{i}]")) for i, p in enumerate(params)
        ),
        defaults=_defaults(fields.child("defaults", {})),
        timeout_s=fields.opt_float("timeout_s"),
        description=fields.text("description", ""),
        location=_location(fields, "location"),
        triggers=tuple(trigger_from_dict(t, f"triggers[{i}]") for i, t in enumerate(triggers)),
        priority=fields.get("priority", (int,), 0),
    )
    fields.done()
    return spec


_NO_LOCATION: Final = {"file": None, "line": None, "field": None}  # how nowhere is encoded
_NOWHERE: Final = Location()


def _location(fields: _Fields, key: str) -> Location:
    found = fields.get(key, (Mapping, type(None)), None)
    if found is None:
        return Location()
    if found == _NO_LOCATION:
        return _NOWHERE
    inner = fields.child(key)
    location = Location(
        file=inner.get("file", (str, type(None)), None),
        line=inner.get("line", (int, type(None)), None),
        field=inner.get("field", (str, type(None)), None),
    )
    inner.done()
    return location


def _param(fields: _Fields) -> ParamSpec:
    param = ParamSpec(
        name=fields.text("name"),
        type=fields.enum("type", ParamType, ParamType.ANY),
        default=fields.data.get("default", NO_DEFAULT),
        description=fields.text("description", ""),
        location=_location(fields, "location"),
        nullable=fields.get("nullable", (bool,), False),
        choices=tuple(fields.get("choices", (list,), [])),
    )
    fields.used.add("default")
    if "default_expr" in fields.data:
        param = replace(param, default=Expr(fields.text("default_expr")))
    fields.done()
    return param


def _defaults(fields: _Fields) -> StepDefaults:
    defaults = StepDefaults(
        retry=_retry_from(fields.child("retry", {})),
        timeout_s=fields.opt_float("timeout_s"),
        on_failure=fields.enum("on_failure", FailureMode, FailureMode.FAIL_FAST),
        cache=fields.get("cache", (bool,), False),
        pool=fields.text("pool", DEFAULT_POOL),
    )
    fields.done()
    return defaults


def _retry_from(fields: _Fields) -> RetrySpec:
    retry_on = fields.get("retry_on", (list,), [])
    for i, name in enumerate(retry_on):
        if not isinstance(name, str):
            _malformed(f"{fields.at('retry_on')}[{i}]", f"expected string, got {_type(name)}")
    retry = RetrySpec(
        max_attempts=fields.get("max_attempts", (int,), 1),
        backoff=fields.enum("backoff", Backoff, Backoff.FIXED),
        delay_s=float(fields.get("delay_s", (int, float), 0.0)),
        max_delay_s=float(fields.get("max_delay_s", (int, float), 300.0)),
        retry_on=tuple(retry_on),
        platform_attempts=fields.get("platform_attempts", (int,), 3),
    )
    fields.done()
    return retry


def _graph(fields: _Fields) -> GraphSpec:
    steps = fields.get("steps", (list,), [])
    graph = GraphSpec(
        steps=tuple(_step(_Fields(s, f"{fields.at('steps')}[{i}]")) for i, s in enumerate(steps)),
        output=fields.get("output", (str, type(None)), None),
    )
    fields.done()
    return graph


def _step(fields: _Fields) -> StepSpec:
    kind = fields.text("kind")
    build = _STEP_BUILDERS.get(kind)
    if build is None:
        _malformed(fields.at("kind"), f"unknown step kind {kind!r}")
    common = _common(fields)
    step = build(fields, common)
    fields.done()
    return step


def _common(fields: _Fields) -> dict[str, Any]:
    needs = fields.get("needs", (list,), [])
    for i, need in enumerate(needs):
        if not isinstance(need, str):
            _malformed(f"{fields.at('needs')}[{i}]", f"expected string, got {_type(need)}")
    inputs = fields.get("inputs", (Mapping,), {})
    retry = fields.get("retry", (Mapping, type(None)), None)
    return {
        "id": fields.text("id"),
        "needs": tuple(needs),
        "inputs": {str(k): _input_from(v, f"{fields.at('inputs')}.{k}") for k, v in inputs.items()},
        "when": fields.get("when", (str, type(None)), None),
        "trigger_rule": fields.enum("trigger_rule", TriggerRule, TriggerRule.ALL_SUCCEEDED),
        "retry": None if retry is None else _retry_from(fields.child("retry")),
        "timeout_s": fields.opt_float("timeout_s"),
        "on_failure": fields.enum("on_failure", FailureMode, None),
        "cache": fields.get("cache", (bool, type(None)), None),
        "cache_version": fields.text("cache_version", ""),
        "breakpoint": fields.text("breakpoint", ""),
        "description": fields.text("description", ""),
        "location": _location(fields, "location"),
        "resources": resources_from_dict(fields.get("resources", (Mapping, type(None)), None)),
        "pool": fields.get("pool", (str, type(None)), None),
        "priority": fields.get("priority", (int, type(None)), None),
        "tags": _tags_from(fields),
    }


def _tags_from(fields: _Fields) -> tuple[str, ...]:
    tags = fields.get("tags", (list,), [])
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            _malformed(f"{fields.at('tags')}[{i}]", f"expected string, got {_type(tag)}")
    return tuple(tags)


def _input_from(data: object, path: str) -> InputSpec:
    fields = _Fields(data, path)
    if set(fields.data) == {"expr"}:
        return Expr(fields.text("expr"))
    if set(fields.data) == {"const"}:
        return Const(fields.data["const"])
    _malformed(path, "expected exactly one of 'const' or 'expr'")


def _task(fields: _Fields, common: dict[str, Any]) -> StepSpec:
    return TaskSpec(
        **common,
        step_type=fields.text("step_type", "python"),
        config=dict(fields.get("config", (Mapping,), {})),
    )


def _foreach(fields: _Fields, common: dict[str, Any]) -> StepSpec:
    return ForeachSpec(
        **common,
        items=_input_from(fields.get("items", (Mapping,)), fields.at("items")),
        body=_graph(fields.child("body")),
        concurrency=fields.get("concurrency", (int, type(None)), None),
        item_name=fields.text("item_name", "item"),
        min_success=fields.opt_float("min_success"),
    )


def _loop(fields: _Fields, common: dict[str, Any]) -> StepSpec:
    return LoopSpec(
        **common,
        body=_graph(fields.child("body")),
        until=fields.text("until"),
        max_iterations=fields.get("max_iterations", (int,), 3),
        fail_on_exhausted=fields.get("fail_on_exhausted", (bool,), False),
    )


def _subworkflow(fields: _Fields, common: dict[str, Any]) -> StepSpec:
    spec = fields.get("spec", (Mapping, type(None)), None)
    return SubworkflowSpec(
        **common,
        workflow=fields.text("workflow"),
        spec=None if spec is None else _workflow(fields.child("spec")),
    )


def _wait(fields: _Fields, common: dict[str, Any]) -> StepSpec:
    return WaitSpec(
        **common,
        signal=fields.text("signal"),
        match=fields.get("match", (str, type(None)), None),
    )


_STEP_BUILDERS: Final[dict[str, Callable[[_Fields, dict[str, Any]], StepSpec]]] = {
    "wait": _wait,
    "task": _task,
    "foreach": _foreach,
    "loop": _loop,
    "subworkflow": _subworkflow,
}

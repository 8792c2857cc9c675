"""The YAML front end: a workflow file becomes the same specs the Python DSL produces.

::

    name: recsys
    params:
      min_ratings: {type: int, default: 20}
    steps:
      - id: select_users
        python: pipeline.py:select_users
        inputs: {min_ratings: "${{ params.min_ratings }}"}

A parameter is ``name: {type, default, description}`` or the shorthand ``name: default``
(its type inferred); a mapping is always the full form, so a dict default needs it.

Every problem (YAML structure, unknown fields, bad durations, bad expressions, unknown step
references, cycles) is reported at once, each with the file, the line and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from kaon.dsl._builder import condition_source
from kaon.dsl._common import (
    absolute_file,
    build_retry,
    cel_literal,
    choices_type,
    database_folder,
    infer_param_type,
    shell_folder,
    sibling_module_file,
    step_type_problems,
    wrap,
)
from kaon.dsl._yaml_nodes import Path, YamlDocument, dotted, read_text_file, read_yaml
from kaon.dsl._yaml_schema import (
    STEP_KINDS,
    LoopModel,
    ParamModel,
    RetryModel,
    StepModel,
    WorkflowModel,
    error_messages,
)
from kaon.errors import DefinitionError, ExpressionError, Location, Problem
from kaon.model.breakpoints import breakpoint_moment
from kaon.model.expressions import parse_template
from kaon.model.resources import ResourceSpec, parse_resources
from kaon.model.specs import (
    NO_DEFAULT,
    Const,
    Expr,
    ForeachSpec,
    GraphSpec,
    InputSpec,
    LoopSpec,
    ParamSpec,
    RetrySpec,
    StepDefaults,
    StepSpec,
    SubworkflowSpec,
    TaskSpec,
    WaitSpec,
    WorkflowSpec,
)
from kaon.model.tenancy import DEFAULT_POOL, parse_pool, parse_priority, parse_tags
from kaon.model.triggers import TriggerSpec

_INVALID = "<invalid>"  # step type of a placeholder for a step that failed its structure check

_SPEC_TO_YAML: dict[str, tuple[str, ...]] = {
    "timeout_s": ("timeout",),
    "items": ("foreach",),
    "body": ("steps",),
    "item_name": ("as",),
    "until": ("loop", "until"),
    "max_iterations": ("loop", "max_iterations"),
    "fail_on_exhausted": ("loop", "fail_on_exhausted"),
    "delay_s": ("delay",),
    "max_delay_s": ("max_delay",),
    "function": ("python",),
    "file": ("python",),
    "jitter_s": ("jitter",),
    "catchup_window_s": ("catchup_window",),
    "poll_s": ("poll",),
    "path": ("data",),  # a data trigger's (no other spec field is named so)
}


def load_yaml_file(path: str) -> WorkflowSpec:
    """Load the workflow in the YAML file at ``path``.

    Raises :class:`DefinitionError` listing every problem (each with file, line and field),
    or naming the file when it cannot be read.
    """
    path = os.path.realpath(path)
    return load_yaml_text(read_text_file(path), path)


def load_yaml_text(
    text: str, file: str = "<string>", *, base_dir: str | None = None
) -> WorkflowSpec:
    """Load a workflow from YAML ``text``; relative paths resolve against ``base_dir``
    (default: the folder of ``file``).

    Raises :class:`DefinitionError` listing every problem found.
    """
    document = read_yaml(text, file)
    folder = base_dir if base_dir is not None else os.path.dirname(os.path.abspath(file))
    reader = _WorkflowReader(document, folder)
    spec = reader.workflow()
    problems = document.problems + reader.problems
    if spec is not None:
        problems += [reader.relocate(p) for p in _validate(spec)]
    if problems:
        problems.sort(key=lambda p: (p.location.file != file, p.location.line or 0))
        raise DefinitionError(problems)
    assert spec is not None
    return spec


def _validate(spec: WorkflowSpec) -> list[Problem]:
    from kaon.model.validation import validate_workflow
    from kaon.steptypes.registry import check_step_type

    def check(step_type: str, config: Any, location: Location) -> list[Problem]:
        return [] if step_type == _INVALID else check_step_type(step_type, config, location)

    found = validate_workflow(spec, check_step_type=check)
    return found + _call_problems(spec) + step_type_problems(spec)


def _call_problems(spec: WorkflowSpec) -> list[Problem]:
    """Python steps whose ``inputs`` do not fit their function's parameters (a required one
    missing, one it does not take): the Python front end finds these when the workflow
    function calls the step; from YAML the step failed at run time with a ``TypeError``."""
    import inspect

    from kaon.steptypes.python import resolve_function

    problems: list[Problem] = []
    for path, step in spec.graph.walk():
        if not isinstance(step, TaskSpec) or step.step_type != "python":
            continue
        try:
            signature = inspect.signature(resolve_function(step.config))
        except BaseException as exc:  # not importable: the step type's check reports it
            if isinstance(exc, KeyboardInterrupt):
                raise
            continue
        kinds = inspect.Parameter
        parameters = signature.parameters
        named = [
            p.name
            for p in parameters.values()
            if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        ]
        given = set(step.inputs)
        where = step.location.with_field("inputs")
        function = str(step.config.get("function", "the function"))
        missing = [
            name for name in named if parameters[name].default is kinds.empty and name not in given
        ]
        if missing:
            problems.append(
                Problem(
                    f"step {path!r}: {function}() needs input {', '.join(map(repr, missing))} "
                    "(a parameter without a default)",
                    where,
                )
            )
        if not any(p.kind is kinds.VAR_KEYWORD for p in parameters.values()):
            unknown = sorted(given - set(named))
            if unknown:
                takes = ", ".join(named) or "none"
                problems.append(
                    Problem(
                        f"step {path!r}: {function}() takes no input "
                        f"{', '.join(map(repr, unknown))} (its parameters: {takes})",
                        where,
                    )
                )
    return problems


class _WorkflowReader:
    """Turns one parsed document into a WorkflowSpec, collecting problems as it goes."""

    def __init__(self, document: YamlDocument, folder: str) -> None:
        self.doc = document
        self.folder = folder
        self.problems: list[Problem] = []

    def problem(self, message: str, path: Path) -> None:
        self.problems.append(Problem(message, self.doc.location(path)))

    def validated(self, model: type[Any], data: Any, path: Path) -> Any:
        """``model`` validated from ``data``, or None after recording its problems."""
        from pydantic import ValidationError

        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for loc, message in error_messages(model, exc):
                self.problem(message, (*path, *loc))
            return None

    def validated_step(self, raw: dict[str, Any], path: Path) -> StepModel | None:
        """The step's model; when some of its fields are invalid (their problems recorded),
        the model of the rest, so that the step's other problems (its code, its body's
        steps, its expressions) are found in the same pass: a definition is refused with
        every problem listed, not one layer at a time. None when what is invalid is what
        makes the step (its id, its kind, its body)."""
        from pydantic import ValidationError

        try:
            return StepModel.model_validate(raw)
        except ValidationError as exc:
            errors = error_messages(StepModel, exc)
        for loc, message in errors:
            self.problem(message, (*path, *loc))
        bad = {loc[0] for loc, _ in errors if loc}
        if not bad or bad & {"id", "steps", *STEP_KINDS} or any(not loc for loc, _ in errors):
            return None
        try:
            return StepModel.model_validate({k: v for k, v in raw.items() if k not in bad})
        except ValidationError:
            return None

    def workflow(self) -> WorkflowSpec | None:
        data = self.doc.value
        if not isinstance(data, dict):
            self.problem("a workflow file must be a mapping with at least 'name' and 'steps'", ())
            return None
        top = self.validated(WorkflowModel, data, ()) or _salvage(data)
        if top is None:
            return None
        return WorkflowSpec(
            name=top.name,
            graph=GraphSpec(steps=self.steps(top.steps, ("steps",)), output=top.output),
            params=tuple(self.params(top.params)),
            defaults=self.defaults(top),
            timeout_s=top.timeout,
            description=top.description,
            location=Location(self.doc.file, 1),
            triggers=self.triggers(top.triggers),
            priority=self.tenancy(parse_priority, top.priority, ("priority",)) or 0,
        )

    def triggers(self, raw: list[Any]) -> tuple[TriggerSpec, ...]:
        """The ``triggers:`` entries (see :mod:`kaon.dsl._triggers`)."""
        from kaon.dsl._yaml_triggers import TriggerModel, yaml_trigger

        found: list[TriggerSpec] = []
        for index, item in enumerate(raw):
            path: Path = ("triggers", index)
            model = self.validated(TriggerModel, item, path)
            if model is None:
                continue
            params = self.inputs(model.params, (*path, "params"))
            problems: list[Problem] = []
            spec = yaml_trigger(model, self.doc.location(path), problems, params)
            self.problems.extend(self.relocate(p) for p in problems)
            if spec is not None:
                found.append(spec)
        return tuple(found)

    def defaults(self, top: WorkflowModel) -> StepDefaults:
        d = top.defaults
        return StepDefaults(
            retry=self.retry(d.retry, ("defaults", "retry")) or RetrySpec(),
            timeout_s=d.timeout,
            on_failure=d.on_failure,
            cache=d.cache,
            pool=self.tenancy(parse_pool, d.pool, ("defaults", "pool")) or DEFAULT_POOL,
        )

    def param_template(self, text: str, path: Path) -> Any:
        """A ``${{ }}`` default: an :class:`Expr` over ``params`` (checked by validation)."""
        where = self.doc.location(path)
        try:
            return parse_template(text, where)
        except ExpressionError as error:
            self.problems.extend(error.problems)
            return NO_DEFAULT

    def params(self, raw: dict[str, Any]) -> list[ParamSpec]:
        found: list[ParamSpec] = []
        for name, value in raw.items():
            path: Path = ("params", name)
            model = self.validated(
                ParamModel, value if isinstance(value, dict) else {"default": value}, path
            )
            where = Location(self.doc.file, self.doc.line_of(path))
            if model is None:
                found.append(ParamSpec(name=name, location=where))
                continue
            has_default = "default" in model.model_fields_set
            default = model.default if has_default else NO_DEFAULT
            if isinstance(default, str) and "${{" in default:  # computed from other params
                default = self.param_template(default, (*path, "default"))
            # A null choice is the null a nullable parameter takes (Literal["a", None]);
            # one of a parameter not nullable stays, for the problem to say so.
            choices = list(model.choices or ())
            values = [c for c in choices if c is not None]
            if model.nullable and values:
                choices = values
            if model.type is not None:
                ptype = model.type
            elif choices:
                ptype = choices_type(values or choices)
            else:  # from the default (a null default: any)
                ptype = infer_param_type(default if has_default else None)
            found.append(
                ParamSpec(
                    name=name,
                    type=ptype,
                    default=default,
                    description=model.description,
                    location=where,
                    nullable=model.nullable,
                    choices=tuple(choices),
                )
            )
        return found

    def retry(self, model: RetryModel | None, path: Path) -> RetrySpec | None:
        """The ``retry:`` at ``path``; None when it is absent or bad (its problems recorded
        at its line and field, next to the file's other problems)."""
        if model is None:
            return None
        where = Location(self.doc.file, self.doc.location(path).line, dotted(path) or None)
        try:
            return build_retry(
                max_attempts=model.max_attempts,
                backoff=model.backoff,
                delay=model.delay,
                max_delay=model.max_delay,
                retry_on=model.retry_on,
                platform_attempts=model.platform_attempts,
                location=where,
            )
        except DefinitionError as exc:
            self.problems.extend(self.relocate(p) for p in exc.problems)
            return None

    # -- steps ---------------------------------------------------------------------------

    def steps(self, raw: list[Any], path: Path) -> tuple[StepSpec, ...]:
        built = (self.step(item, (*path, i)) for i, item in enumerate(raw))
        return tuple(s for s in built if s is not None)

    def step(self, raw: Any, path: Path) -> StepSpec | None:
        if not isinstance(raw, dict):
            self.problem(f"a step must be a mapping with an 'id', got {raw!r:.60}", path)
            return None
        if self.doc.holds_unreadable(path):  # said where it is; built on, it would mislead
            return self.placeholder(raw, path)
        kind_ok = self.check_kind(raw, path)
        model = self.validated_step(raw, path)
        if model is None or not kind_ok:
            return self.placeholder(raw, path)
        common = self.common(model, path)
        if model.foreach is not None:
            return self.foreach(model, path, common)
        if model.loop is not None:
            return self.loop(model.loop, model, path, common)
        if model.wait is not None:
            match = model.wait.match
            if match is not None:
                where = self.doc.location((*path, "wait", "match"))
                match = condition_source(match, where, self.problems)
            return WaitSpec(signal=model.wait.signal, match=match, **common)
        inputs = self.inputs(model.inputs, (*path, "inputs"))
        if model.workflow is not None:
            return self.subworkflow(model.workflow, path, common, inputs)
        step_type, config = self.task_config(model, path)
        return TaskSpec(step_type=step_type, config=config, inputs=inputs, **common)

    def check_kind(self, raw: dict[str, Any], path: Path) -> bool:
        kinds = [k for k in STEP_KINDS if k in raw]
        name = f"step {raw.get('id')!r}" if isinstance(raw.get("id"), str) else "a step"
        before = len(self.problems)
        if not kinds:
            self.problem(f"{name} needs one of: {', '.join(STEP_KINDS)}", path)
        elif len(kinds) > 1:
            self.problem(f"{name} has {' and '.join(kinds)}; choose one", (*path, kinds[1]))
        kind = kinds[0] if kinds else None
        allowed_with = {
            "steps": ("foreach", "loop"),
            "as": ("foreach",),
            "concurrency": ("foreach",),
            "min_success": ("foreach",),
            "output": ("foreach", "loop"),
            "config": ("type",),
            "inputs": ("python", "shell", "type", "workflow"),
        }
        for key, owners in allowed_with.items():
            if key in raw and kind is not None and kind not in owners:
                self.problem(f"{key!r} does not apply to a {kind} step", (*path, key))
        if kind in ("foreach", "loop") and "steps" not in raw:
            self.problem(f"a {kind} step needs 'steps' (its body)", path)
        return len(self.problems) == before

    def placeholder(self, raw: dict[str, Any], path: Path) -> StepSpec | None:
        """Stand-in for an invalid step, so that references to it are not reported too."""
        step_id = raw.get("id")
        if not isinstance(step_id, str):
            return None
        needs = raw.get("needs")
        return TaskSpec(
            id=step_id,
            needs=tuple(n for n in needs if isinstance(n, str)) if isinstance(needs, list) else (),
            step_type=_INVALID,
            location=self.doc.location(path),
        )

    def common(self, model: StepModel, path: Path) -> dict[str, Any]:
        when = None
        if model.when is not None:
            when = condition_source(model.when, self.doc.location((*path, "when")), self.problems)
        return {
            "id": model.id,
            "needs": tuple(model.needs),
            "when": when,
            "trigger_rule": model.trigger_rule,
            "retry": self.retry(model.retry, (*path, "retry")),
            "timeout_s": model.timeout,
            "on_failure": model.on_failure,
            "cache": model.cache,
            "cache_version": model.cache_version,
            "breakpoint": breakpoint_moment(model.breakpoint),
            "description": model.description,
            "location": self.doc.location(path),
            "resources": self.resources(model.resources, path),
            "pool": self.tenancy(parse_pool, model.pool, (*path, "pool")),
            "priority": self.tenancy(parse_priority, model.priority, (*path, "priority")),
            "tags": self.tenancy(parse_tags, model.tags, (*path, "tags")) or (),
        }

    def tenancy(self, parse: Callable[[Any, Location], Any], value: Any, path: Path) -> Any:
        """A pool, priority or tags field (see :mod:`kaon.model.tenancy`); None when bad."""
        where = Location(self.doc.file, self.doc.location(path).line, dotted(path) or None)
        try:
            return parse(value, where)
        except DefinitionError as exc:
            self.problems.extend(exc.problems)
            return None

    def resources(self, value: Any, path: Path) -> ResourceSpec | None:
        line = self.doc.location((*path, "resources")).line  # the line of the key itself
        try:
            return parse_resources(value, Location(self.doc.file, line, dotted(path) or None))
        except DefinitionError as exc:
            self.problems.extend(exc.problems)
            return None

    def task_config(self, model: StepModel, path: Path) -> tuple[str, dict[str, Any]]:
        if model.python is not None:
            return "python", self.python_target(model.python, (*path, "python"))
        if model.shell is not None:
            shell = model.shell
            config: dict[str, Any] = {"command": shell.command}
            for key in ("env", "cwd", "shell"):
                value = getattr(shell, key)
                if value is not None:
                    config[key] = value
            return "shell", shell_folder(config, self.folder)
        config = dict(model.config or {})
        if model.type == "shell":
            return "shell", shell_folder(config, self.folder)
        if model.type == "sql":
            config = database_folder(config, self.folder)
        if model.type == "python":
            config = sibling_module_file(config, self.folder)
        return str(model.type), absolute_file(config, self.folder)

    def python_target(self, target: str, path: Path) -> dict[str, Any]:
        left, sep, function = target.rpartition(":")
        if not sep or not left or not function:
            self.problem(
                f"python: expected FILE.py:FUNCTION or MODULE:FUNCTION, got {target!r}", path
            )
            return {"function": target}
        if left.endswith(".py") or "/" in left or os.sep in left:
            return {"file": os.path.realpath(os.path.join(self.folder, left)), "function": function}
        return sibling_module_file({"function": target}, self.folder)

    def subworkflow(
        self, target: str, path: Path, common: dict[str, Any], inputs: dict[str, InputSpec]
    ) -> StepSpec:
        from kaon.dsl.loader import load_workflow

        file, sep, name = target.rpartition(":")
        if not sep or not file.endswith((".py", ".yaml", ".yml")):
            file, name = target, ""
        resolved = os.path.join(self.folder, file)
        try:
            spec = load_workflow(f"{resolved}:{name}" if name else resolved)
        except DefinitionError as exc:
            where = self.doc.location((*path, "workflow"))
            # A problem of the file as a whole (not found, unreadable) is why it cannot be
            # loaded: said here, at the step's line; problems inside it keep their own lines.
            whole = [p for p in exc.problems if p.location.line is None]
            why = "; ".join(
                f"{p.message} ({p.location.file})" if p.location.file else p.message for p in whole
            )
            message = f"subworkflow {target!r} cannot be loaded" + (f": {why}" if why else "")
            self.problems.append(Problem(message, where))
            self.problems.extend(p for p in exc.problems if p.location.line is not None)
            return TaskSpec(step_type=_INVALID, **{**common, "when": None})
        return SubworkflowSpec(workflow=spec.name, spec=spec, inputs=inputs, **common)

    def foreach(self, model: StepModel, path: Path, common: dict[str, Any]) -> StepSpec:
        items_path = (*path, "foreach")
        items: InputSpec
        if isinstance(model.foreach, list):
            items = self.value(model.foreach, items_path)
        else:
            source = condition_source(model.foreach, self.doc.location(items_path), self.problems)
            items = Expr(source) if source is not None else Const([])
        return ForeachSpec(
            items=items,
            body=self.body(model, path),
            concurrency=model.concurrency,
            item_name=model.as_ or "item",
            min_success=model.min_success,
            **common,
        )

    def loop(
        self, loop: LoopModel, model: StepModel, path: Path, common: dict[str, Any]
    ) -> StepSpec:
        where = self.doc.location((*path, "loop", "until"))
        until = condition_source(loop.until, where, self.problems)
        return LoopSpec(
            body=self.body(model, path),
            until=until or "true",
            max_iterations=loop.max_iterations,
            fail_on_exhausted=loop.fail_on_exhausted,
            **common,
        )

    def body(self, model: StepModel, path: Path) -> GraphSpec:
        return GraphSpec(steps=self.steps(model.steps or [], (*path, "steps")), output=model.output)

    # -- values --------------------------------------------------------------------------

    def inputs(self, raw: dict[str, Any], path: Path) -> dict[str, InputSpec]:
        return {name: self.value(value, (*path, name)) for name, value in raw.items()}

    def value(self, value: Any, path: Path) -> InputSpec:
        """A Const, or an Expr when templates occur anywhere inside ``value``."""
        try:
            if not _has_template(value):
                return Const(value)
            if isinstance(value, str):
                return _template(value, self.doc.location(path))
            return Expr(self.cel(value, path))
        except ExpressionError as exc:
            self.problems.extend(exc.problems)
            return Const(None)

    def cel(self, value: Any, path: Path) -> str:
        if isinstance(value, list):
            return "[" + ", ".join(self.cel(v, (*path, i)) for i, v in enumerate(value)) + "]"
        if isinstance(value, dict):
            items = (f"{cel_literal(k)}: {self.cel(v, (*path, k))}" for k, v in value.items())
            return "{" + ", ".join(items) + "}"
        if isinstance(value, str) and "${{" in value:
            parsed = _template(value, self.doc.location(path))
            if isinstance(parsed, Expr):
                return wrap(parsed.source)
            return cel_literal(parsed.value)
        return cel_literal(value)

    def relocate(self, problem: Problem) -> Problem:
        """Point a validation problem at the YAML line and field it is about."""
        where = problem.location
        if where.file != self.doc.file or not where.field:
            return problem
        path = self._as_written(_yaml_path(_parse_field(where.field)))
        return Problem(problem.message, self.doc.location(path))

    def _as_written(self, path: Path) -> Path:
        """A step type's ``config.<key>`` where the step wrote it: a step with ``shell:`` or
        ``python:`` and no ``config:`` holds its configuration there (``shell:`` a mapping of
        its keys or the command itself, ``python:`` the FILE.py:FUNCTION target)."""
        for i in range(len(path) - 1, 1, -1):
            if path[i] == "config" and isinstance(path[i - 1], int) and path[i - 2] == "steps":
                step = path[:i]
                if (*step, "config") in self.doc.lines:
                    return path
                for key in ("shell", "python"):
                    if (*step, key) in self.doc.lines:
                        if isinstance(_node(self.doc.value, (*step, key)), dict):
                            return (*step, key, *path[i + 1 :])
                        return (*step, key)
                return path
        return path


def _node(value: Any, path: Path) -> Any:
    """The value at ``path`` in the document's value, or None."""
    for part in path:
        if isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _salvage(data: dict[str, Any]) -> WorkflowModel | None:
    """The workflow without its broken top-level fields, to find the steps' problems too."""
    from pydantic import ValidationError

    keep = {k: v for k, v in data.items() if k in ("params", "steps")}
    try:
        return WorkflowModel.model_validate({"name": "_", "steps": [], **keep})
    except ValidationError:
        return None  # already reported


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    return False


def _template(text: str, location: Location) -> InputSpec:
    from kaon.model.expressions import parse_template

    return parse_template(text, location)


def _parse_field(field: str) -> Path:
    """``"steps[0].retry.delay_s"`` -> ``("steps", 0, "retry", "delay_s")``.

    A part that is not ``name[digits]...`` is a key of its own (an input named ``x[²]`` or
    ``[/x]``), kept whole: only ASCII digits in brackets are indexes.
    """
    parts: list[str | int] = []
    for chunk in field.split("."):
        match = _FIELD_PART.fullmatch(chunk)
        if match is None:
            parts.append(chunk)
            continue
        if match.group(1):
            parts.append(match.group(1))
        parts.extend(int(index) for index in _INDEX.findall(match.group(2)))
    return tuple(parts)


_FIELD_PART = re.compile(r"([^\[\]]*)((?:\[[0-9]+\])*)")
_INDEX = re.compile(r"\[([0-9]+)\]")


# Keys under these hold the user's own names and data (a config ``file``, an input named
# ``items``): they are never spec fields, so they keep their names.
_USER_KEYS = frozenset({"config", "inputs", "params", "env", "match"})


def _yaml_path(path: Path) -> Path:
    """Rename spec field names to the YAML keys they come from (up to the user's own keys)."""
    out: list[str | int] = []
    for position, part in enumerate(path):
        if isinstance(part, str) and part in _USER_KEYS:
            return (*out, *path[position:])
        if isinstance(part, str) and part in _SPEC_TO_YAML:
            out.extend(_SPEC_TO_YAML[part])
        else:
            out.append(part)
    return tuple(out)


__all__ = ["dotted", "load_yaml_file", "load_yaml_text"]

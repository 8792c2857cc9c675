"""Hypothesis strategies for Kaon model specs (shared by the tests in this folder)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from kaon.errors import Location
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
    WorkflowSpec,
)

_FIRST = "abcdefghijklmnopqrstuvwxyz"
_REST = _FIRST + "0123456789_"


# CEL reserved words cannot follow a dot (steps.in is a syntax error; steps["in"] is fine)
_CEL_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)


def _identifiers(max_rest: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(_FIRST),
        st.text(alphabet=_REST, max_size=max_rest),
    ).filter(lambda name: name not in _CEL_RESERVED)


step_ids = _identifiers(5)
names = _identifiers(7)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=4,
)

locations = st.builds(
    Location,
    file=st.none() | st.sampled_from(["wf.yaml", "flows/a.py"]),
    line=st.none() | st.integers(min_value=1, max_value=5000),
    field=st.none() | st.sampled_from(["steps.a", "params"]),
)

delays = st.floats(min_value=0, max_value=1000, allow_nan=False)
retries = st.builds(
    RetrySpec,
    max_attempts=st.integers(1, 5),
    backoff=st.sampled_from(Backoff),
    delay_s=delays,
    max_delay_s=delays,
    retry_on=st.lists(st.sampled_from(["ValueError", "requests.HTTPError"]), max_size=2).map(tuple),
    platform_attempts=st.integers(0, 5),
)
timeouts = st.none() | st.floats(min_value=0.5, max_value=1e5, allow_nan=False)

_VALUES_BY_TYPE: dict[ParamType, st.SearchStrategy[Any]] = {
    ParamType.STR: st.text(max_size=8),
    ParamType.INT: st.integers(-1000, 1000),
    ParamType.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    ParamType.BOOL: st.booleans(),
    ParamType.LIST: st.lists(json_scalars, max_size=3),
    ParamType.DICT: st.dictionaries(names, json_scalars, max_size=3),
    ParamType.ANY: json_values,
}


@st.composite
def params(draw: st.DrawFn) -> ParamSpec:
    """A well-typed parameter, with or without a default."""
    kind = draw(st.sampled_from(ParamType))
    default = draw(st.just(NO_DEFAULT) | _VALUES_BY_TYPE[kind])
    choices: tuple[Any, ...] = ()
    if kind in (ParamType.STR, ParamType.INT):  # choices of a scalar type, sometimes
        choices = tuple(draw(st.lists(_VALUES_BY_TYPE[kind], unique=True, max_size=3)))
    return ParamSpec(
        name=draw(names),
        type=kind,
        default=default,
        description=draw(st.text(max_size=5)),
        location=draw(locations),
        nullable=draw(st.booleans()),
        choices=choices,
    )


_CONSTANT_SOURCES = ("1 + 2", "run.id", "'x' + 'y'")
_STEP_SOURCES = ("steps.{}", 'steps["{}"].out[0]')


@st.composite
def _expressions(draw: st.DrawFn, earlier: list[str], param_names: list[str]) -> str:
    choice = draw(st.integers(0, 2))
    if choice == 1 and earlier:
        template = _STEP_SOURCES[draw(st.integers(0, 1))]
        return template.format(earlier[draw(st.integers(0, len(earlier) - 1))])
    if choice == 2 and param_names:
        return f"params.{param_names[draw(st.integers(0, len(param_names) - 1))]} == null"
    return _CONSTANT_SOURCES[draw(st.integers(0, 2))]


@st.composite
def _inputs(draw: st.DrawFn, earlier: list[str], param_names: list[str]) -> dict[str, InputSpec]:
    keys = draw(st.lists(names, max_size=2, unique=True))
    result: dict[str, InputSpec] = {}
    for key in keys:
        if draw(st.booleans()):
            result[key] = Const(draw(json_values))
        else:
            result[key] = Expr(draw(_expressions(earlier, param_names)))
    return result


@st.composite
def graphs(
    draw: st.DrawFn,
    depth: int = 2,
    param_names: tuple[str, ...] = (),
    min_steps: int = 1,
    max_steps: int | None = None,
) -> GraphSpec:
    """A DAG of uniquely named steps; needs and references point at earlier steps only."""
    if max_steps is None:
        max_steps = 4 if depth >= 2 else 2
    ids = draw(st.lists(step_ids, min_size=min_steps, max_size=max_steps, unique=True))
    steps: list[StepSpec] = []
    for position, step_id in enumerate(ids):
        earlier = ids[:position]
        steps.append(draw(_steps(step_id, earlier, list(param_names), depth)))
    output = draw(st.none() | st.sampled_from(ids))
    return GraphSpec(steps=tuple(steps), output=output)


@st.composite
def _steps(
    draw: st.DrawFn, step_id: str, earlier: list[str], param_names: list[str], depth: int
) -> StepSpec:
    common: dict[str, Any] = {
        "id": step_id,
        "needs": tuple(i for i in earlier if draw(st.booleans())),
        "inputs": draw(_inputs(earlier, param_names)),
        "when": draw(st.none() | _expressions(earlier, param_names)),
        "trigger_rule": draw(st.sampled_from(TriggerRule)),
        "retry": draw(st.none() | retries),
        "timeout_s": draw(timeouts),
        "on_failure": draw(st.none() | st.sampled_from(FailureMode)),
        "cache": draw(st.none() | st.booleans()),
        "cache_version": draw(st.sampled_from(["", "v2"])),
        "description": draw(st.text(max_size=5)),
        "location": draw(locations),
    }
    kinds = ["task"] if depth <= 0 else ["task", "task", "foreach", "loop", "subworkflow"]
    kind = draw(st.sampled_from(kinds))
    if kind == "task":
        config = draw(st.dictionaries(names, json_values, max_size=2))
        return TaskSpec(
            **common, step_type=draw(st.sampled_from(["python", "shell"])), config=config
        )
    if kind == "foreach":
        return ForeachSpec(
            **common,
            items=draw(st.builds(Const, st.lists(json_scalars, max_size=3)))
            if not earlier
            else Expr(f"steps.{earlier[0]}"),
            body=draw(graphs(depth=depth - 1, param_names=tuple(param_names))),
            concurrency=draw(st.none() | st.integers(1, 8)),
            item_name=draw(st.sampled_from(["item", "region"])),
        )
    if kind == "loop":
        body = draw(graphs(depth=depth - 1, param_names=tuple(param_names)))
        return LoopSpec(
            **common,
            body=body,
            until=f"steps.{body.steps[0].id} == true || iteration > 2",
            max_iterations=draw(st.integers(1, 20)),
            fail_on_exhausted=draw(st.booleans()),
        )
    sub = draw(st.none() | workflows(depth=depth - 1))
    return SubworkflowSpec(**common, workflow=draw(names), spec=sub)


@st.composite
def workflows(draw: st.DrawFn, depth: int = 2) -> WorkflowSpec:
    """A well-formed workflow (unique ids, a DAG) with nested bodies and subworkflows."""
    declared = draw(st.lists(params(), max_size=3, unique_by=lambda p: p.name))
    param_names = tuple(p.name for p in declared)
    return WorkflowSpec(
        name=draw(names),
        graph=draw(graphs(depth=depth, param_names=param_names)),
        params=tuple(declared),
        defaults=draw(
            st.builds(
                StepDefaults,
                retry=retries,
                timeout_s=timeouts,
                on_failure=st.sampled_from(FailureMode),
                cache=st.booleans(),
            )
        ),
        timeout_s=draw(timeouts),
        description=draw(st.text(max_size=5)),
        location=draw(locations),
    )

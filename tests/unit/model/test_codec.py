from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kaon_model_strategies import workflows

from kaon.errors import DefinitionError, Location
from kaon.model.codec import spec_hash, workflow_from_dict, workflow_to_dict
from kaon.model.specs import (
    NO_DEFAULT,
    Const,
    Expr,
    FailureMode,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    ParamSpec,
    ParamType,
    RetrySpec,
    StepSpec,
    SubworkflowSpec,
    TaskSpec,
    TriggerRule,
    WorkflowSpec,
)


def sample() -> WorkflowSpec:
    inner = WorkflowSpec(name="inner", graph=GraphSpec(steps=(TaskSpec(id="x"),)))
    foreach = ForeachSpec(
        id="regional",
        items=Expr("steps.prepare.regions"),
        concurrency=2,
        item_name="region",
        body=GraphSpec(
            steps=(
                TaskSpec(id="train", inputs={"r": Expr("region")}, config={"fn": "m:train"}),
                LoopSpec(
                    id="tune",
                    body=GraphSpec(steps=(TaskSpec(id="fit"),), output="fit"),
                    until="steps.fit.ok",
                    max_iterations=4,
                    fail_on_exhausted=True,
                ),
            )
        ),
        location=Location("wf.yaml", 10),
    )
    return WorkflowSpec(
        name="flow",
        graph=GraphSpec(
            steps=(
                TaskSpec(
                    id="prepare",
                    inputs={"n": Const([1, {"a": None}])},
                    retry=RetrySpec(max_attempts=3, delay_s=1.5, retry_on=("ValueError",)),
                    timeout_s=30.0,
                    trigger_rule=TriggerRule.ALL_DONE,
                    on_failure=FailureMode.IGNORE,
                    cache=True,
                    description="prep",
                    location=Location("wf.yaml", 3, "steps.prepare"),
                ),
                foreach,
                SubworkflowSpec(id="sub", workflow="inner", spec=inner, needs=("regional",)),
                SubworkflowSpec(id="unresolved", workflow="other"),
            )
        ),
        params=(
            ParamSpec("k", ParamType.INT, 3, "folds", Location("wf.yaml", 2)),
            ParamSpec("name", ParamType.STR),
            ParamSpec("maybe", ParamType.ANY, None),
        ),
        timeout_s=3600.0,
        description="demo",
        location=Location("wf.yaml", 1),
    )


def test_round_trip_sample_through_json() -> None:
    spec = sample()
    data = workflow_to_dict(spec)
    assert workflow_from_dict(json.loads(json.dumps(data))) == spec


def test_no_default_is_omitted_and_none_default_kept() -> None:
    params = workflow_to_dict(sample())["params"]
    assert "default" not in params[1]
    assert params[2]["default"] is None
    decoded = workflow_from_dict(workflow_to_dict(sample())).params
    assert decoded[1].default is NO_DEFAULT
    assert decoded[2].default is None


def test_nullable_and_choices_round_trip_and_are_written_only_when_set() -> None:
    spec = sample()
    plain = workflow_to_dict(spec)["params"][0]
    assert "nullable" not in plain and "choices" not in plain  # earlier hashes kept
    param = dataclasses.replace(spec.params[0], nullable=True, choices=(3, 5))
    changed = dataclasses.replace(spec, params=(param, *spec.params[1:]))
    data = workflow_to_dict(changed)
    assert data["params"][0]["nullable"] is True and data["params"][0]["choices"] == [3, 5]
    assert workflow_from_dict(json.loads(json.dumps(data))) == changed
    assert spec_hash(changed) != spec_hash(spec)


def test_hash_ignores_locations_and_descriptions() -> None:
    spec = sample()
    moved = dataclasses.replace(
        spec,
        description="other",
        location=Location("elsewhere.yaml", 99),
        graph=GraphSpec(
            steps=tuple(
                dataclasses.replace(s, location=Location("x.yaml", 500), description="d")
                for s in spec.graph.steps
            )
        ),
    )
    assert spec_hash(moved) == spec_hash(spec)
    assert len(spec_hash(spec)) == 64


def test_hash_changes_with_content() -> None:
    spec = sample()
    changed = dataclasses.replace(spec, params=spec.params[:2])
    assert spec_hash(changed) != spec_hash(spec)
    first = spec.graph.steps[0]
    other_input = dataclasses.replace(first, inputs={"n": Const([2])})
    changed_step = dataclasses.replace(
        spec, graph=GraphSpec(steps=(other_input, *spec.graph.steps[1:]))
    )
    assert spec_hash(changed_step) != spec_hash(spec)


def test_int_and_float_timeouts_hash_alike() -> None:
    base = WorkflowSpec(name="w", graph=GraphSpec(steps=(TaskSpec(id="a"),)))
    assert spec_hash(dataclasses.replace(base, timeout_s=5)) == spec_hash(
        dataclasses.replace(base, timeout_s=5.0)
    )


def test_non_json_values_are_rejected_with_location() -> None:
    step = TaskSpec(id="a", config={"f": object()}, location=Location("wf.yaml", 4))
    spec = WorkflowSpec(name="w", graph=GraphSpec(steps=(step,)))
    with pytest.raises(DefinitionError) as caught:
        workflow_to_dict(spec)
    assert caught.value.problems[0].location == Location("wf.yaml", 4, "config")
    with pytest.raises(DefinitionError, match="not a JSON number"):
        spec_hash(
            dataclasses.replace(
                spec, graph=GraphSpec(steps=(TaskSpec(id="a", inputs={"x": Const(float("nan"))}),))
            )
        )


def test_base_step_spec_cannot_be_encoded() -> None:
    spec = WorkflowSpec(name="w", graph=GraphSpec(steps=(StepSpec(id="a"),)))
    with pytest.raises(DefinitionError, match="cannot encode step 'a'"):
        workflow_to_dict(spec)


def test_missing_optional_keys_take_defaults() -> None:
    spec = workflow_from_dict({"name": "w", "graph": {"steps": [{"kind": "task", "id": "a"}]}})
    assert spec == WorkflowSpec(name="w", graph=GraphSpec(steps=(TaskSpec(id="a"),)))


def mutate(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("name",), 3, "name: expected string, got integer"),
        (("graph", "steps", 0, "kind"), "branch", "unknown step kind 'branch'"),
        (("graph", "steps", 0, "trigger_rule"), "sometimes", "unknown value 'sometimes'"),
        (("graph", "steps", 0, "inputs", "n"), {"const": 1, "expr": "x"}, "exactly one"),
        (("graph", "steps", 0, "timeout_s"), "soon", "expected integer or number or null"),
        (("graph", "steps", 0, "cache"), 1, "expected boolean or null"),
        (("graph", "steps", 0, "needs"), ["a", 2], "needs[1]"),
        (("graph", "steps", 1, "concurrency"), True, "expected integer or null, got bool"),
        (("graph", "steps", 1, "body"), [], "expected object, got array"),
        (("graph", "steps", 0, "surprise"), 1, "unknown keys 'surprise'"),
        (("params", 0, "type"), "complex", "unknown value 'complex'"),
        (("format",), 2, "unsupported format 2"),
        (("location",), {"line": "3"}, "location.line"),
    ],
)
def test_malformed_dicts_name_the_field(path: tuple[Any, ...], value: Any, fragment: str) -> None:
    data = mutate(workflow_to_dict(sample()), path, value)
    with pytest.raises(DefinitionError, match="malformed workflow dict") as caught:
        workflow_from_dict(data)
    assert fragment in str(caught.value)


def test_not_a_mapping() -> None:
    with pytest.raises(DefinitionError, match="expected an object"):
        workflow_from_dict([])  # type: ignore[arg-type]


@given(workflows())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_generated_specs(spec: WorkflowSpec) -> None:
    data = workflow_to_dict(spec)
    assert workflow_from_dict(data) == spec
    text = json.dumps(data, allow_nan=False)
    decoded = workflow_from_dict(json.loads(text))
    assert decoded == spec
    assert spec_hash(decoded) == spec_hash(spec)

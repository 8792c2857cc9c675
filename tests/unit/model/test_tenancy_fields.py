"""Validation of the multi-tenancy fields ``pool``, ``priority`` and ``tags`` (property
tests): what is accepted is kept exactly, through YAML, validation and the codec; what is
refused is reported at its field."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError, Location
from kaon.model.codec import spec_hash, workflow_from_dict, workflow_to_dict
from kaon.model.specs import GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.tenancy import (
    MAX_PRIORITY,
    MAX_TAGS,
    MIN_PRIORITY,
    NAME_PATTERN,
    parse_pool,
    parse_priority,
    parse_tags,
)
from kaon.model.validation import validate_workflow

names = st.from_regex(re.compile(NAME_PATTERN), fullmatch=True)
anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=80), st.lists(st.text())
)
WHERE = Location("f.yaml", 3, "steps[0].x")


@given(anything)
def test_a_priority_is_a_whole_number_within_bounds(value: Any) -> None:
    ok = value is None or (type(value) is int and MIN_PRIORITY <= value <= MAX_PRIORITY)
    if ok:
        assert parse_priority(value, WHERE) == value
    else:
        with pytest.raises(DefinitionError) as error:
            parse_priority(value, WHERE)
        assert error.value.problems[0].location == WHERE


@given(st.one_of(names, st.text(max_size=80)))
def test_a_pool_is_a_name(value: str) -> None:
    if re.fullmatch(NAME_PATTERN, value):
        assert parse_pool(value, WHERE) == value
    else:
        with pytest.raises(DefinitionError, match="pool must be a name"):
            parse_pool(value, WHERE)


@given(st.lists(st.one_of(names, st.text(max_size=10)), max_size=MAX_TAGS + 3))
def test_tags_are_distinct_names_each_problem_at_its_index(values: list[str]) -> None:
    valid = all(re.fullmatch(NAME_PATTERN, v) for v in values)
    distinct = len(set(values)) == len(values)
    if valid and distinct and len(values) <= MAX_TAGS:
        assert parse_tags(values, WHERE) == tuple(values)
        return
    with pytest.raises(DefinitionError) as error:
        parse_tags(values, WHERE)
    fields = {p.location.field for p in error.value.problems}
    for index, value in enumerate(values):
        if not re.fullmatch(NAME_PATTERN, value) or value in values[:index]:
            assert f"steps[0].x[{index}]" in fields


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    pool=st.one_of(st.none(), names),
    priority=st.one_of(st.none(), st.integers(MIN_PRIORITY, MAX_PRIORITY)),
    tags=st.lists(names, max_size=4, unique=True),
    run_priority=st.integers(MIN_PRIORITY, MAX_PRIORITY),
)
def test_yaml_fields_survive_validation_and_the_codec(
    pool: str | None,
    priority: int | None,
    tags: list[str],
    run_priority: int,
) -> None:
    lines = [f"name: w\npriority: {run_priority}\nsteps:\n  - id: a\n    shell: echo hi\n"]
    if pool is not None:
        lines.append(f"    pool: '{pool}'\n")
    if priority is not None:
        lines.append(f"    priority: {priority}\n")
    if tags:
        lines.append(f"    tags: [{', '.join(repr(t) for t in tags)}]\n")
    spec = load_yaml_text("".join(lines), "w.yaml")
    step = spec.graph.steps[0]
    assert (step.pool, step.priority, step.tags, spec.priority) == (
        pool,
        priority,
        tuple(tags),
        run_priority,
    )
    assert workflow_from_dict(workflow_to_dict(spec)) == spec


def test_unset_fields_leave_a_definition_hash_unchanged() -> None:
    plain = WorkflowSpec("w", GraphSpec((TaskSpec(id="a", step_type="shell"),)))
    assert "pool" not in str(workflow_to_dict(plain))
    tagged = WorkflowSpec("w", GraphSpec((TaskSpec(id="a", step_type="shell", tags=("x",)),)))
    assert spec_hash(plain) != spec_hash(tagged)


def test_validation_refuses_bad_values_built_in_code_and_non_task_steps() -> None:
    from kaon.model.specs import Const, ForeachSpec

    body = GraphSpec((TaskSpec(id="b", step_type="shell"),))
    spec = WorkflowSpec(
        "w",
        GraphSpec(
            (
                TaskSpec(id="a", step_type="shell", priority=10_000, tags=("ok", "ok")),
                ForeachSpec(id="f", items=Const([1]), body=body, pool="gpu"),
            )
        ),
    )
    messages = [str(p) for p in validate_workflow(spec)]
    assert any("priority must be between" in m for m in messages)
    assert any("tag 'ok' is given twice" in m for m in messages)
    assert any("step 'f': pool applies to task steps only" in m for m in messages)

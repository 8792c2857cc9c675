"""Step resources: parsing, located errors, both front ends, the stored form."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import kaon
from kaon.dsl.yaml_loader import load_yaml_file
from kaon.errors import DefinitionError, Location
from kaon.model.codec import workflow_from_dict, workflow_to_dict
from kaon.model.resources import ResourceSpec, parse_resources
from kaon.model.specs import TaskSpec

HERE = Location("flow.py", 7, "steps[0]")


def _problems(value: Any) -> list[tuple[str | None, str]]:
    with pytest.raises(DefinitionError) as info:
        parse_resources(value, HERE)
    return [(p.location.field, p.message) for p in info.value.problems]


def test_valid_requests_are_normalized() -> None:
    spec = parse_resources({"cpus": 0.5, "memory": "1.5Gi", "gpus": 1, "custom": {"tpu": 2}}, HERE)
    assert spec == ResourceSpec(cpus=0.5, memory=int(1.5 * 1024**3), gpus=1.0, custom={"tpu": 2})
    assert parse_resources({"memory": "2G"}, HERE) == ResourceSpec(memory=2_000_000_000)
    assert parse_resources({"memory": 1024}, HERE) == ResourceSpec(memory=1024)
    assert parse_resources(None, HERE) is None
    assert ResourceSpec(cpus=2).as_request() == {"cpus": 2}


def test_every_problem_is_reported_at_its_field() -> None:
    found = _problems(
        {"cpus": 0, "memory": "lots", "gpus": -1, "disk": 3, "custom": {"9bad": 1, "ok": "x"}}
    )
    fields = sorted(field or "" for field, _ in found)
    assert fields == [
        "steps[0].resources.cpus",
        "steps[0].resources.custom.9bad",
        "steps[0].resources.custom.ok",
        "steps[0].resources.disk",
        "steps[0].resources.gpus",
        "steps[0].resources.memory",
    ]
    assert any("put other names under 'custom'" in message for _, message in found)
    assert _problems([1])[0][1].startswith("resources must be a mapping")
    assert _problems({"cpus": True})[0][1] == "must be a number, got True"


@kaon.step(resources={"cpus": 2, "memory": "512Mi"})
def heavy() -> int:
    return 1


def test_python_steps_carry_resources_through_the_codec() -> None:
    @kaon.workflow
    def flow() -> None:
        heavy()

    step = flow.spec.graph.steps[0]
    assert isinstance(step, TaskSpec)
    assert step.resources == ResourceSpec(cpus=2.0, memory=512 * 1024**2)
    assert workflow_from_dict(workflow_to_dict(flow.spec)) == flow.spec
    with pytest.raises(DefinitionError, match=r"resources\.cpus"):
        kaon.step(resources={"cpus": "many"})


def test_steps_without_resources_keep_their_stored_form() -> None:
    @kaon.workflow
    def plain() -> None:
        heavy.options(resources=None)()

    assert "resources" not in workflow_to_dict(plain.spec)["graph"]["steps"][0]


def test_yaml_resources_and_located_errors(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text("def a():\n    return 1\n")
    good = tmp_path / "good.yaml"
    good.write_text(
        textwrap.dedent(
            """\
            name: good
            steps:
              - id: a
                python: steps.py:a
                resources: {cpus: 1, memory: 2Gi, custom: {licence: 1}}
            """
        )
    )
    step = load_yaml_file(str(good)).graph.steps[0]
    assert step.resources == ResourceSpec(cpus=1.0, memory=2 * 1024**3, custom={"licence": 1.0})
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            name: bad
            steps:
              - id: a
                python: steps.py:a
                resources:
                  cpus: -2
              - id: group
                foreach: "[1]"
                resources: {cpus: 1}
                steps:
                  - id: b
                    python: steps.py:a
            """
        )
    )
    with pytest.raises(DefinitionError) as info:
        load_yaml_file(str(bad))
    found = {(p.location.line, p.location.field) for p in info.value.problems}
    assert (5, "steps[0].resources.cpus") in found
    messages = [p.message for p in info.value.problems]
    assert any("resources apply to task steps only" in m for m in messages), messages

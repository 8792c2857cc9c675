"""The two front ends agree: the same pipeline in Python and YAML has the same spec hash."""

import dataclasses
import os

from kaon.dsl.loader import load_workflow
from kaon.model.codec import spec_hash
from kaon.model.specs import TaskSpec

PIPELINES = os.path.join(os.path.dirname(os.path.realpath(__file__)), "pipelines")


def test_python_and_yaml_definitions_hash_the_same() -> None:
    from_python = load_workflow(os.path.join(PIPELINES, "recsys.py") + ":recsys")
    from_yaml = load_workflow(os.path.join(PIPELINES, "recsys.yaml"))
    assert from_python.location.file != from_yaml.location.file
    assert spec_hash(from_python) == spec_hash(from_yaml)


def test_the_hash_notices_a_difference() -> None:
    spec = load_workflow(os.path.join(PIPELINES, "recsys.yaml"))
    first = spec.graph.steps[0]
    assert isinstance(first, TaskSpec)
    changed_step = dataclasses.replace(first, inputs={})
    changed = dataclasses.replace(
        spec, graph=dataclasses.replace(spec.graph, steps=(changed_step, *spec.graph.steps[1:]))
    )
    assert spec_hash(changed) != spec_hash(spec)


def test_python_steps_resolve_to_the_loaded_module() -> None:
    from kaon.steptypes.python import resolve_function, user_module_name

    spec = load_workflow(os.path.join(PIPELINES, "recsys.py") + ":recsys")
    first = spec.graph.steps[0]
    assert isinstance(first, TaskSpec)
    path = os.path.join(PIPELINES, "recsys.py")
    assert first.config == {"file": path, "function": "select_users"}
    fn = resolve_function(first.config)
    assert fn.__module__ == user_module_name(path)
    assert fn(3) == [0, 1, 2]

"""A parameter's default computed from other parameters (``default: "${{ params.a * 2 }}"``):
evaluated in dependency order, type-checked, cycles and unknown names reported with their
location, kept by the codec."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import kaon
from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError, ParameterError
from kaon.model.codec import workflow_from_dict, workflow_to_dict
from kaon.model.params import bind_params, rebind_params
from kaon.model.specs import Expr, GraphSpec, ParamSpec, ParamType, TaskSpec, WorkflowSpec

YAML = """
    name: computed
    params:
      k: {type: int, default: 4}
      width: {type: int, default: "${{ params.k * 2 }}"}
      label: {type: str, default: "model-${{ params.width }}"}
    steps:
      - id: s
        type: shell
        config: {command: "echo $KAON_INPUT_LABEL"}
        inputs: {label: "${{ params.label }}"}
"""


def _load(text: str) -> WorkflowSpec:
    return load_yaml_text(textwrap.dedent(text), str(Path("/tmp/computed.yaml")))


def test_defaults_are_computed_in_dependency_order() -> None:
    spec = _load(YAML)
    assert bind_params(spec, {}) == {"k": 4, "width": 8, "label": "model-8"}
    assert bind_params(spec, {"k": 5}) == {"k": 5, "width": 10, "label": "model-10"}
    assert bind_params(spec, {"width": "3"}, from_strings=True)["label"] == "model-3"
    assert list(bind_params(spec, {})) == ["k", "width", "label"]


def test_codec_round_trip_keeps_the_expression() -> None:
    spec = _load(YAML)
    again = workflow_from_dict(workflow_to_dict(spec))
    assert bind_params(again, {"k": 1}) == {"k": 1, "width": 2, "label": "model-2"}


def test_a_cycle_is_a_located_definition_error() -> None:
    text = YAML.replace('"${{ params.k * 2 }}"', '"${{ params.label.size() }}"')
    with pytest.raises(DefinitionError) as caught:
        _load(text)
    messages = [(p.message, p.location.line) for p in caught.value.problems]
    assert any("depend on each other: label -> width -> label" in m for m, _ in messages)
    assert all(line is not None for _, line in messages)


def test_unknown_parameter_and_other_roots_are_definition_errors() -> None:
    with pytest.raises(DefinitionError, match="unknown parameter 'nope'"):
        _load(YAML.replace("params.k * 2", "params.nope * 2"))
    with pytest.raises(DefinitionError, match="may read params only"):
        _load(YAML.replace("params.k * 2", "steps.s"))


def test_a_computed_value_of_the_wrong_type_is_a_parameter_error() -> None:
    spec = WorkflowSpec(
        name="w",
        params=(
            ParamSpec(name="a", type=ParamType.STR, default="x"),
            ParamSpec(name="b", type=ParamType.INT, default=Expr("params.a + 'y'")),
        ),
        graph=GraphSpec(steps=(TaskSpec(id="t", step_type="shell", config={"command": "true"}),)),
    )
    with pytest.raises(
        ParameterError, match="computed default of parameter 'b' must be of type int"
    ):
        bind_params(spec, {})


def test_a_computed_default_that_fails_on_the_defaults_is_a_located_definition_error() -> None:
    # Found by `kaon validate` and push, not only when a run is made.
    text = YAML.replace("k: {type: int, default: 4}", "k: {type: float, default: 4}")
    with pytest.raises(DefinitionError) as caught:
        _load(text)
    (problem,) = caught.value.problems
    assert "Unsupported operation: float * int" in problem.message
    assert (problem.location.line, problem.location.field) == (5, "params.width.default")
    text = YAML.replace('"${{ params.k * 2 }}"', '"${{ double(params.k) * 2.5 }}"')
    with pytest.raises(DefinitionError, match="computed default of parameter 'width' must be"):
        _load(text)


def test_a_computed_default_reading_a_required_parameter_is_left_to_the_run() -> None:
    text = YAML.replace("k: {type: int, default: 4}", "k: {type: str}")
    spec = _load(text)  # params.k * 2 fails only once a run gives k a string
    with pytest.raises(ParameterError, match=r"Unsupported operation: string \* int"):
        bind_params(spec, {"k": "x"})


@kaon.step
def echo(x: int) -> int:
    return x


@kaon.workflow(name="computed_py")
def computed_py(k: int = 4, width: int = kaon.expr("params.k * 2")) -> None:  # type: ignore[assignment]
    echo(width)


def test_python_front_end_takes_kaon_expr_as_a_computed_default() -> None:
    assert bind_params(computed_py.spec, {"k": 3}) == {"k": 3, "width": 6}


def test_rebinding_recomputes_what_was_computed_and_keeps_what_was_given() -> None:
    spec = _load(YAML)
    computed = bind_params(spec, {})
    assert rebind_params(spec, computed, {"k": "5"}, from_strings=True) == {
        "k": 5,
        "width": 10,
        "label": "model-10",
    }
    given = bind_params(spec, {"width": 3})
    assert rebind_params(spec, given, {"k": 5}) == {"k": 5, "width": 3, "label": "model-3"}
    assert rebind_params(spec, computed, {"label": "mine"})["label"] == "mine"
    with pytest.raises(ParameterError, match=r"params\.k"):
        rebind_params(spec, computed, {"k": "five"}, from_strings=True)


def test_a_given_intermediate_value_is_kept_and_what_follows_it_recomputed() -> None:
    """``b = width + k`` where the run was given ``width=100``: a new ``k`` keeps ``width``
    and recomputes ``b`` from it (``105``, not ``k * 2 + k``)."""
    spec = _load(
        """
        name: chain
        params:
          k: {type: int, default: 3}
          width: {type: int, default: "${{ params.k * 2 }}"}
          b: {type: int, default: "${{ params.width + params.k }}"}
        steps:
          - id: s
            type: shell
            config: {command: "true"}
        """
    )
    given = bind_params(spec, {"width": 100})
    assert given == {"k": 3, "width": 100, "b": 103}
    assert rebind_params(spec, given, {"k": 5}) == {"k": 5, "width": 100, "b": 105}
    assert rebind_params(spec, bind_params(spec, {}), {"k": 5}) == {"k": 5, "width": 10, "b": 15}


def test_a_cycle_does_not_hide_another_default_that_fails() -> None:
    """Every problem is listed: a cycle among two defaults stopped the check of the others,
    so a third default that fails on the defaults was found only once the cycle was fixed."""
    text = textwrap.dedent(
        """\
        name: w
        params:
          a: {type: int, default: "${{ params.b + 1 }}"}
          b: {type: int, default: "${{ params.a + 1 }}"}
          f: {type: float, default: 1.5}
          g: {type: float, default: "${{ params.f * 2 }}"}
          h: {type: int, default: "${{ params.a * 2 }}"}
          i: {type: int, default: "${{ params.nope }}"}
        steps:
          - id: s
            shell: "true"
        """
    )
    with pytest.raises(DefinitionError) as caught:
        load_yaml_text(text, "flow.yaml")
    found = [(p.location.line, p.message) for p in caught.value.problems]
    assert [line for line, _ in found] == [3, 6, 8], found
    assert "depend on each other: a -> b -> a" in found[0][1]
    assert "Unsupported operation: float * int" in found[1][1]
    assert "unknown parameter 'nope'" in found[2][1]

"""A YAML ``choices`` list naming null: with ``nullable: true`` null is one of the values, as
``Literal["a", None]`` is in Python (the type is the other choices'); without it, the problem
says to declare the parameter nullable."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError
from kaon.model.params import bind_params
from kaon.model.specs import ParamType


def _load(tmp_path: Path, params: str) -> object:
    text = f"name: t\nparams:\n{textwrap.indent(params, '  ')}steps: [{{id: s, shell: echo}}]\n"
    return load_yaml_text(text, str(tmp_path / "wf.yaml"))


def test_null_among_the_choices_of_a_nullable_param(tmp_path: Path) -> None:
    spec = _load(tmp_path, "m: {choices: [a, b, null], nullable: true, default: null}\n")
    (param,) = spec.params  # type: ignore[attr-defined]
    assert (param.type, param.choices, param.nullable) == (ParamType.STR, ("a", "b"), True)
    assert bind_params(spec, {"m": "b"}, from_strings=True) == {"m": "b"}  # type: ignore[arg-type]


def test_null_among_the_choices_of_a_param_not_nullable(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as caught:
        _load(tmp_path, "m: {choices: [a, null], default: a}\n")
    assert "declare it nullable" in str(caught.value)

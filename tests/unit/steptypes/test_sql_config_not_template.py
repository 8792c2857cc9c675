"""A ``${{ ... }}`` in a SQL step's ``config`` (its query, its SQL file, a ``params`` value)
is refused when the workflow loads: config is constant, never substituted, so
``query: "select '${{ params.name }}' as v"`` ran and returned the text
``${{ params.name }}`` itself, a silently wrong result. The message says how to bind the
value instead. Other step types' configs (notebook, R, Spark, container) are checked too."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError, Location
from kaon.steptypes.registry import get_step_type


def _problems(text: str, folder: Path) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(DefinitionError) as info:
        load_yaml_text(textwrap.dedent(text), str(folder / "flow.yaml"), base_dir=str(folder))
    return [(p.location.line, p.location.field, p.message) for p in info.value.problems]


def test_a_template_in_a_query_or_a_param_is_a_problem_at_its_line(tmp_path: Path) -> None:
    found = _problems(
        """\
        name: w
        params: {name: x}
        steps:
          - id: q
            type: sql
            config:
              query: "select '${{ params.name }}' as v"
              result: scalar
          - id: p
            type: sql
            config:
              query: "select $v as v"
              params: {v: "${{ params.name }}"}
        """,
        tmp_path,
    )
    assert [(line, field) for line, field, _ in found] == [
        (7, "steps[0].config.query"),
        (13, "steps[1].config.params.v"),
    ]
    message = found[0][2]
    assert "not a template" in message and "$name" in message
    assert 'inputs: {name: "${{ params.name }}"}' in message


def test_a_template_in_a_sql_file_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("select *\nfrom t\nwhere k = '${{ params.k }}'\n")
    found = _problems(
        """\
        name: w
        params: {k: x}
        steps:
          - id: q
            type: sql
            config: {file: q.sql}
        """,
        tmp_path,
    )
    assert [(line, field) for line, field, _ in found] == [(6, "steps[0].config.file")]
    assert f"{tmp_path / 'q.sql'} line 3" in found[0][2]


@pytest.mark.parametrize(
    ("step_type", "config", "field"),
    [
        ("notebook", {"file": "n.ipynb", "parameters": {"a": "${{ params.a }}"}}, "parameters.a"),
        ("r", {"code": "x <- '${{ params.a }}'"}, "code"),
    ],
)
def test_other_step_types_refuse_a_template_in_config(
    tmp_path: Path, step_type: str, config: dict[str, object], field: str
) -> None:
    (tmp_path / "n.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    config = {**config, "base_dir": str(tmp_path)}
    problems = get_step_type(step_type).validate(config, Location("flow.yaml", 3, "steps[0]"))
    assert [p.location.field for p in problems if "not a template" in p.message] == [
        f"steps[0].config.{field}"
    ]


def test_a_dollar_parameter_is_no_template(tmp_path: Path) -> None:
    problems = get_step_type("sql").validate(
        {"query": "select $a, '${x}' as b", "params": {"a": 1}}, Location("flow.yaml", 3, "s")
    )
    assert problems == []

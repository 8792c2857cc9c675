"""A step type's problems in YAML point at the key the file has: ``shell:`` (the command as a
string, or a mapping of command, env, cwd, shell) or ``config:`` for ``type: shell``.

They named ``steps[0].command`` at the step's first line, a key the file does not have (for
``shell: {command: ...}`` two lines above the command)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError


def _problems(text: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(DefinitionError) as info:
        load_yaml_text(textwrap.dedent(text), "flow.yaml")
    return [(p.location.line, p.location.field, p.message) for p in info.value.problems]


def test_a_shell_string_is_the_shell_key() -> None:
    found = _problems(
        """\
        name: w
        params: {k: 1}
        steps:
          - id: a
            shell: "echo ${{ params.k }}"
          - id: b
            shell: ""
        """
    )
    assert [(line, field) for line, field, _ in found] == [
        (5, "steps[0].shell"),
        (7, "steps[1].shell"),
    ]
    assert "not a template" in found[0][2] and "'command' is required" in found[1][2]


def test_a_shell_mapping_names_its_own_keys() -> None:
    found = _problems(
        """\
        name: w
        params: {k: 1}
        steps:
          - id: a
            shell:
              cwd: /tmp
              command: "echo ${{ params.k }}"
          - id: b
            type: shell
            config:
              cwd: /tmp
              command: "echo ${{ params.k }}"
        """
    )
    assert [(line, field) for line, field, _ in found] == [
        (7, "steps[0].shell.command"),
        (12, "steps[1].config.command"),
    ]


def test_a_nested_step_and_another_step_type_keep_their_places() -> None:
    found = _problems(
        """\
        name: w
        steps:
          - id: fe
            foreach: "${{ [1] }}"
            steps:
              - id: a
                shell:
                  command: "  "
          - id: q
            type: sql
            config: {query: "select 1", bogus: 1}
        """
    )
    assert [(line, field) for line, field, _ in found] == [
        (8, "steps[0].steps[0].shell.command"),
        (11, "steps[1].config.bogus"),
    ]


def test_a_python_step_points_at_python_or_at_config(tmp_path: Path) -> None:
    """``type: python`` with ``config: {function: ...}`` was reported at ``steps[0].python``
    on the step's first line, a key the step does not have."""
    (tmp_path / "pipeline.py").write_text("def f():\n    return 1\n")
    text = textwrap.dedent(
        """\
        name: w
        steps:
          - id: a
            python: pipeline.py:nothere
          - id: b
            type: python
            config:
              function: "pipeline:nothere"
          - id: c
            type: python
            config: {function: f, file: missing.py}
        """
    )
    with pytest.raises(DefinitionError) as info:
        load_yaml_text(text, str(tmp_path / "flow.yaml"))
    found = [(p.location.line, p.location.field) for p in info.value.problems]
    assert found == [
        (4, "steps[0].python"),
        (8, "steps[1].config.function"),
        (11, "steps[2].config.file"),
    ]


def test_a_wait_steps_signal_is_its_wait_signal() -> None:
    """A bad signal name of a wait step was located at ``steps[0].signal`` on the step's first
    line; its condition already was at ``steps[0].wait.match``."""
    found = _problems(
        """\
        name: w
        steps:
          - id: w
            wait:
              match: "true"
              signal: "data ready"
        """
    )
    assert [(line, field) for line, field, _ in found] == [(6, "steps[0].wait.signal")]


def test_a_bad_breakpoint_is_one_problem_at_its_key() -> None:
    """``breakpoint: sometimes`` gave two problems named after pydantic's union members
    (``steps[0].breakpoint.bool`` and ``steps[0].breakpoint.literal['before','after']``)."""
    found = _problems(
        """\
        name: w
        steps:
          - id: a
            shell: "true"
            breakpoint: sometimes
        """
    )
    assert found == [
        (5, "steps[0].breakpoint", "breakpoint must be true, 'before' or 'after', got 'sometimes'")
    ]

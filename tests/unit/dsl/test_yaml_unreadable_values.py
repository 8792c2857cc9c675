"""A value YAML cannot read is one problem, not the start of a chain of made-up ones.

An unreadable value (``shell: !!python/object:os.system echo``, ``!!binary``, ``.nan``) was
read as null and the step built from it all the same: ``shell: null`` made it a task of step
type ``'None'``, and the file's first problem read ``steps[0].type: unknown step type 'None'``,
a field the user never wrote. Now a step holding an unreadable value is left out of the
checks that would read it, and the value's own problem is the only one.
"""

from __future__ import annotations

import pytest

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError

HEAD = "name: t\nsteps:\n  - id: first\n    shell: echo\n  - id: a\n    needs: [first]\n"


@pytest.mark.parametrize(
    ("line", "field", "said"),
    [
        ("    shell: !!python/object:os.system echo\n", "steps[1].shell", "cannot read value"),
        ("    type: !!binary aGVsbG8=\n    config: {}\n", "steps[1].type", "bytes"),
        ("    shell: {command: echo, cwd: !!int abc}\n", "steps[1].shell.cwd", "cannot read"),
        ("    python: .nan\n", "steps[1].python", "not a JSON number"),
    ],
)
def test_an_unreadable_value_is_the_only_problem_of_its_step(
    line: str, field: str, said: str
) -> None:
    text = HEAD + line + "  - id: b\n    needs: [a]\n    shell: echo\n"
    with pytest.raises(DefinitionError) as caught:
        load_yaml_text(text, "flow.yaml")
    [problem] = caught.value.problems  # not also "unknown step type 'None'", nor "needs a"
    assert problem.location.field == field
    assert said in problem.message

"""Reading a step's output as an attribute (``fit(X).accuracy``, as Metaflow's ``self.x``
reads) failed with Python's bare ``'StepRef' object has no attribute 'accuracy'``; the
message now says how outputs are read."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import kaon
from kaon.errors import DefinitionError

FLOW = """\
import kaon

@kaon.step
def fit(x: int) -> dict:
    return {"accuracy": 0.9}

@kaon.step
def report(v: float) -> float:
    return v

@kaon.workflow
def attrs():
    f = fit(1)
    report(f.accuracy)
"""


def test_an_output_read_as_an_attribute_says_how_to_read_it(tmp_path: Path) -> None:
    path = tmp_path / "attrs.py"
    path.write_text(textwrap.dedent(FLOW))
    with pytest.raises(DefinitionError) as info:
        kaon.load_workflow(str(path))
    [problem] = info.value.problems
    assert problem.location.line == 14
    assert "steps.fit" in problem.message, problem.message
    assert "ref['accuracy']" in problem.message, problem.message


def test_attribute_lookups_of_python_itself_still_answer() -> None:
    from kaon.dsl._refs import Ref

    ref = Ref("steps.a")
    assert not hasattr(ref, "__array__") and not hasattr(ref, "_repr_html_")
    with pytest.raises(AttributeError, match=r"steps\.a has no attribute 'x'.*ref\['x'\]"):
        ref.x  # noqa: B018

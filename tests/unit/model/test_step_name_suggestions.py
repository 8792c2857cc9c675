"""A mistyped step name in ``--force`` or ``--break`` was refused without the suggestion
every other name gets (``-p sed=1``: "did you mean 'seed'?")."""

from __future__ import annotations

import pytest

from kaon.errors import ParameterError
from kaon.model.breakpoints import check_breakpoints, unreachable_step
from kaon.model.specs import Const, ForeachSpec, GraphSpec, TaskSpec, WorkflowSpec

SPEC = WorkflowSpec(
    name="iris",
    graph=GraphSpec(
        steps=(
            TaskSpec(id="load", config={"function": "f"}),
            ForeachSpec(
                id="by_model",
                items=Const([1]),
                body=GraphSpec(steps=(TaskSpec(id="train", config={"function": "f"}),)),
            ),
        )
    ),
)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("tain", "no step 'tain' (did you mean 'train'?)"),
        ("by_modl.train", "no step 'by_modl' in the top level (did you mean 'by_model'?)"),
        ("by_model.tran", "no step 'tran' in by_model (did you mean 'train'?)"),
        ("zzz", "no step 'zzz'"),
    ],
)
def test_a_mistyped_step_name_gets_a_suggestion(name: str, why: str) -> None:
    assert unreachable_step(SPEC, name) == why
    with pytest.raises(ParameterError, match=r"did you mean" if "(" in why else r"'zzz'"):
        check_breakpoints(SPEC, [name])

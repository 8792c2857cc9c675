"""Which breakpoints ``check_breakpoints`` accepts: those that can stop a step run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaon.errors import ParameterError, Problem
from kaon.model.breakpoints import check_breakpoints
from kaon.model.specs import (
    Const,
    ForeachSpec,
    GraphSpec,
    LoopSpec,
    SubworkflowSpec,
    TaskSpec,
    WorkflowSpec,
)


def _task(step_id: str) -> TaskSpec:
    return TaskSpec(id=step_id, config={"function": "f"})


INNER = WorkflowSpec(name="inner", graph=GraphSpec(steps=(_task("leaf"),)))
SPEC = WorkflowSpec(
    name="outer",
    graph=GraphSpec(
        steps=(
            _task("first"),
            ForeachSpec(id="each", items=Const([1, 2]), body=GraphSpec(steps=(_task("train"),))),
            LoopSpec(
                id="lp", body=GraphSpec(steps=(_task("body"),)), until="true", max_iterations=3
            ),
            SubworkflowSpec(id="sub", workflow="inner", spec=INNER),
            SubworkflowSpec(id="named", workflow="registered"),
        )
    ),
)


@pytest.mark.parametrize(
    "name",
    [
        "first",
        "first:after",
        "train",  # a bare id: every run of it, at any depth
        "each.train",
        "each[1].train",
        "each[999999999].train",
        "lp[2].body",
        "sub.leaf",
        "leaf",  # inside an embedded subworkflow
        "named.anything",  # a subworkflow found by name when the run starts
        "named.anything:after",
        "each",  # a container: before it starts
        "sub",
        "each[1].train:after",
    ],
)
def test_a_breakpoint_that_can_stop_a_step_is_accepted(name: str) -> None:
    assert [str(b) for b in check_breakpoints(SPEC, [name]).points] == [name]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("bogus", "no step 'bogus'"),
        ("each[99999999999].train", "index 99999999999 is out of range"),
        ("first[2]", "'first' is a task step: only a foreach or a loop takes an index"),
        ("first.x", "'first' is a task step, with no steps inside"),
        ("each.nope", "no step 'nope' in each"),
        ("each[0].train.x", "'train' is a task step, with no steps inside"),
        ("lp[3].body", "loop 'lp' runs at most 3 iterations (0 to 2), not 3"),
        ("train.x", "no step 'train' in the top level"),
        ("each[x].train", "'each[x]' is not STEP or STEP[INDEX]"),
        # Accepted and never held: an item is no step, and only a task pauses after it ran.
        (
            "each[1]",
            "'each[1]' is an item of foreach 'each', not a step: "
            "break on a step inside it (each[1].STEP) or on each",
        ),
        (
            "lp[0]",
            "'lp[0]' is an iteration of loop 'lp', not a step: "
            "break on a step inside it (lp[0].STEP) or on lp",
        ),
        (
            "each:after",
            "'each' is a foreach step: only a task pauses after it ran "
            "(break before it, or after a step inside it)",
        ),
        (
            "sub:after",
            "'sub' is a subworkflow step: only a task pauses after it ran "
            "(break before it, or after a step inside it)",
        ),
    ],
)
def test_a_breakpoint_that_can_stop_nothing_is_refused_saying_why(name: str, why: str) -> None:
    with pytest.raises(ParameterError) as caught:
        check_breakpoints(SPEC, [name])
    assert str(caught.value) == f"breakpoint {name!r}: {why} (workflow 'outer')"


def test_every_refused_breakpoint_is_named_at_once() -> None:
    with pytest.raises(ParameterError, match="'a': no step 'a'; breakpoint 'b': no step 'b'"):
        check_breakpoints(SPEC, ["first", "a", "b"])


@given(st.text(max_size=30))
def test_any_text_is_accepted_or_refused_with_a_parameter_error(text: str) -> None:
    try:
        check_breakpoints(SPEC, [text])
    except ParameterError as error:
        assert str(error)


def test_a_problem_without_a_location_is_its_message() -> None:
    assert str(Problem("breakpoint 'x': no step 'x'")) == "breakpoint 'x': no step 'x'"

"""A subworkflow's parameter bound at run time to a value of the wrong type fails the
subworkflow step with the step's file, line and input field, and the child's name: the
error said only ``params.x: parameter 'x' must be of type int``, which no file holds."""

from __future__ import annotations

from conftest import E, Harness, flow, task

from kaon.errors import Location
from kaon.model.specs import ParamSpec, ParamType, SubworkflowSpec
from kaon.model.status import RunStatus, StepStatus


def test_a_mistyped_subworkflow_parameter_is_reported_at_the_step_input(
    inline: Harness,
) -> None:
    child = flow(
        task("double", "add", inputs={"a": E("params.n"), "b": E("params.n")}),
        name="child",
        params=(ParamSpec("n", ParamType.INT),),
    )
    sub = SubworkflowSpec(
        id="sub",
        workflow="child",
        spec=child,
        inputs={"n": E("'a' + 'b'")},
        location=Location("/flows/parent.yaml", 7, "steps[0]"),
    )
    status, run_id = inline.run(flow(sub))
    assert status is RunStatus.FAILED
    row = inline.rows(run_id)["sub"]
    assert row.status is StepStatus.FAILED
    assert row.error is not None
    assert row.error["type"] == "ParameterError"
    assert row.error["message"] == (
        "/flows/parent.yaml:7: steps[0].inputs.n: subworkflow 'sub': parameter 'n' of "
        "'child' must be of type int, got str 'ab'"
    )

"""What a step's code says (prints, logs, metric names, signals, exceptions) can be anything:
the engine records it readable and bounded, and the run goes on. Each case used to stop the
run's record: an unencodable line quarantined the run with its steps left running, an
exception whose ``__str__`` raises left its step running forever."""

from __future__ import annotations

from conftest import Harness, flow, task

from kaon.model.status import STEP_ACTIVE, RunStatus, StepStatus
from kaon.model.text import MAX_MESSAGE_CHARS


def test_a_lone_surrogate_in_a_steps_output_is_stored_as_a_replacement_character(
    harness: Harness,
) -> None:
    spec = flow(task("u", "untidy"), task("after", "const", inputs={"value": 2}, needs=("u",)))
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED, harness.store.get_run(run_id).error
    texts = [line.text for line in harness.store.logs(run_id)]
    assert "file \ufffd.csv" in texts and "log \ufffd" in texts
    assert [m.name for m in harness.store.metrics(run_id)] == ["loss \ufffd"]


def test_a_signal_whose_params_are_not_json_is_refused_to_the_step_not_the_run(
    harness: Harness,
) -> None:
    status, run_id = harness.run(flow(task("s", "nan_signal")))
    assert status is RunStatus.FAILED  # emit_signal says so to the step's code
    error = harness.rows(run_id)["s"].error
    assert error is not None and "JSON" in error["message"], error
    status, run_id = harness.run(flow(task("s", "raw_signal")))
    assert status is RunStatus.SUCCEEDED, harness.store.get_run(run_id).error  # past the check
    assert harness.store.signals(name="nan_go") == []
    assert any("not sent" in line.text for line in harness.store.logs(run_id))


def test_a_signal_name_no_wait_could_use_is_refused_to_the_step_not_stored(
    harness: Harness,
) -> None:
    """``emit_signal("data ready")`` (or a shell step's ``::kaon::signal``) stored a signal no
    wait step, trigger or ``kaon signal`` can name: the name rule is the API's."""
    status, run_id = harness.run(flow(task("s", "announce", inputs={"name": "data ready"})))
    assert status is RunStatus.FAILED  # emit_signal says so to the step's code
    error = harness.rows(run_id)["s"].error
    assert error is not None and "signal name 'data ready' is not valid" in error["message"]
    assert harness.store.signals(name="data ready") == []


def test_a_metric_that_is_not_finite_is_refused_to_the_step_not_the_run(
    harness: Harness,
) -> None:
    """A NaN metric reached the store (NOT NULL) and quarantined the whole run."""
    status, run_id = harness.run(flow(task("s", "nan_metric")))
    assert status is RunStatus.SUCCEEDED, harness.store.get_run(run_id).error
    assert [(m.name, m.value) for m in harness.store.metrics(run_id)] == [("ok", 1.0)]
    assert any("metric 'loss' not recorded" in line.text for line in harness.store.logs(run_id))


def test_an_exception_whose_message_cannot_be_read_fails_its_step(harness: Harness) -> None:
    status, run_id = harness.run(flow(task("bad", "unsayable")))
    assert status is RunStatus.FAILED
    error = harness.rows(run_id)["bad"].error
    assert error is not None and error["type"].endswith("Unsayable")
    assert "could not be read" in error["message"]


def test_a_huge_error_message_is_kept_bounded(harness: Harness) -> None:
    status, run_id = harness.run(flow(task("w", "wordy", inputs={"n": 5_000_000})))
    assert status is RunStatus.FAILED
    error = harness.rows(run_id)["w"].error
    assert error is not None
    assert len(error["message"]) <= MAX_MESSAGE_CHARS + 100
    assert "characters left out" in error["message"]
    record = harness.store.get_run(run_id)
    assert record.error is None or len(record.error) <= 2 * MAX_MESSAGE_CHARS
    assert not harness.store.step_runs(run_id, all_levels=True, statuses=sorted(STEP_ACTIVE))
    assert harness.rows(run_id)["w"].status is StepStatus.FAILED


def test_a_when_that_is_not_a_bool_fails_its_step_naming_where(inline: Harness) -> None:
    """It said ``<unknown location>``: the step's file, line and ``when`` field are known."""
    from kaon.errors import Location
    from kaon.model.specs import TaskSpec

    step = task("b", "const", inputs={"value": 1})
    step = TaskSpec(
        id=step.id,
        config=step.config,
        inputs=step.inputs,
        when="1 + 1",
        location=Location("flow.yaml", 7, "steps[0]"),
    )
    status, run_id = inline.run(flow(step))
    assert status is RunStatus.FAILED
    error = inline.rows(run_id)["b"].error
    assert error is not None and error["type"] == "ExpressionError", error
    assert "<unknown location>" not in error["message"]
    assert "flow.yaml:7" in error["message"] and "'1 + 1' must be a bool" in error["message"]

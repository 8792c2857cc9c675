"""A cacheable step downstream of a set, or of an object of a workflow's own class, hits the
cache in the next run: their pickles (hence their blobs' hashes, the step's input digests)
differed per worker process (a set's order follows the string hash seed, a class pickled by
value carried a random id), so such a step executed at every run."""

from __future__ import annotations

import pytest
from conftest import E, Harness, flow, task

from kaon.model.status import RunStatus, StepStatus


@pytest.mark.parametrize("output", ["words", "object"])
def test_a_step_reading_a_set_or_a_workflow_object_hits_in_the_next_run(
    process: Harness, output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)  # each worker its own seed
    spec = flow(
        task("make", "tagged", inputs={"n": 12}),
        task(
            "use",
            "sized",
            inputs={"value": E(f"steps.make.{output}"), "state": str(process.state)},
            cache=True,
        ),
    )
    expected = 12 if output == "words" else 13
    for _ in range(3):  # three runs, each with new worker processes
        status, run_id = process.run(spec)
        assert status is RunStatus.SUCCEEDED, process.errors(run_id)
        assert process.value(run_id, "use") == expected
    assert process.count("sized") == 1
    assert process.rows(run_id)["use"].status is StepStatus.CACHED

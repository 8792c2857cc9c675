"""The executor contract suite on the ``ray`` executor, plus what only Ray does."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_executor_contract import ExecutorContract, Recorder, python_request

from kaon.executors import create_executor
from kaon.executors.base import Executor, TaskRequest
from kaon.model.events import StepFailed, StepStarted, StepSucceeded
from kaon.model.values import Literal

RAY_STEPS = str(Path(__file__).with_name("ray_steps.py"))


def ray_request(artifact_url: str, function: str, **fields: Any) -> TaskRequest:
    request = python_request(artifact_url, function, **fields)
    return dataclasses.replace(request, config={"file": RAY_STEPS, "function": function})


class TestRayExecutor(ExecutorContract):
    executor_name: ClassVar[str] = "ray"

    @pytest.fixture(scope="class")
    @classmethod
    def pool(cls, ray_address: str) -> Iterator[tuple[Executor, Recorder]]:
        recorder = Recorder()
        executor = create_executor(cls.executor_name, workers=cls.workers, address=ray_address)
        executor.start(recorder)
        yield executor, recorder
        executor.shutdown()

    def test_capacity_is_honoured(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        # Ray starts worker processes lazily (again after a crash or a cancel killed one):
        # have both warm first, so that the overlap measures the executor, not a cold start.
        warm = [python_request(artifact_url, "sleep", {"seconds": Literal(0.3)}) for _ in "ab"]
        for request in warm:
            executor.submit(request)
        for request in warm:
            assert isinstance(recorder.final(request.key), StepSucceeded)
        super().test_capacity_is_honoured(executor, recorder, artifact_url)

    def test_worker_crash_is_a_platform_failure(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        final = self.run(
            executor, recorder, python_request(artifact_url, "exit_hard", {"code": Literal(3)})
        )
        assert isinstance(final, StepFailed)
        assert final.error.error_type == "WorkerLost" and final.error.platform
        assert isinstance(
            self.run(executor, recorder, python_request(artifact_url, "noop")), StepSucceeded
        )

    def test_resources_map_to_ray_and_code_comes_as_a_bundle(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        resources = {"cpus": 0.5, "memory": 64 * 1024**2}
        request = ray_request(artifact_url, "assigned", resources=resources)
        final = self.run(executor, recorder, request)
        assert isinstance(final, StepSucceeded), final
        values = {k: v.value for k, v in final.outputs.items() if isinstance(v, Literal)}
        assert values["resources"]["CPU"] == 0.5
        assert values["resources"]["memory"] == 64 * 1024**2
        assert values["file"] != RAY_STEPS and "kaon-bundles" in values["file"]  # not our path

    def test_resources_no_node_offers_fail_at_once(
        self, executor: Executor, recorder: Recorder, artifact_url: str
    ) -> None:
        request = ray_request(artifact_url, "where", resources={"custom": {"quantum": 1}})
        final = self.run(executor, recorder, request)
        assert isinstance(final, StepFailed)
        assert final.error.error_type == "Unschedulable" and "quantum=1" in final.error.message


def test_a_crash_in_a_batch_fails_only_its_attempt(ray_address: str, tmp_path: Path) -> None:
    """Attempts sent together while the cluster is busy share one Ray task; one crashing its
    worker fails alone (``WorkerLost``), the others of its batch run again and succeed once."""
    url = str(tmp_path / "artifacts")
    recorder = Recorder()
    executor = create_executor("ray", workers=8, address=ray_address)
    executor.start(recorder)
    try:
        blockers = [python_request(url, "sleep", {"seconds": Literal(1.0)}) for _ in "ab"]
        executor.submit_many(blockers)  # every CPU of the head taken: the next ones batch
        crash = python_request(url, "exit_hard", {"code": Literal(3)})
        others = [python_request(url, "noop") for _ in range(3)]
        executor.submit_many([others[0], crash, *others[1:]])
        final = recorder.final(crash.key)
        assert isinstance(final, StepFailed), final
        assert final.error.error_type == "WorkerLost" and final.error.platform
        for request in [*blockers, *others]:
            assert isinstance(recorder.final(request.key), StepSucceeded)
            assert sum(isinstance(e, StepStarted) for e in recorder.of(request.key)) == 1
    finally:
        executor.shutdown()

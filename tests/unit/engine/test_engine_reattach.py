"""Re-attachment: a restarted engine takes back attempts its executor still runs, instead of
recording them lost and running them again; an executor that cannot (the default) keeps the
old behaviour. The "cluster" here is an inline pool that outlives the first engine, as a Ray
cluster outlives a killed engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from conftest import Harness, flow, task

from kaon.engine.engine import Engine
from kaon.executors.base import EventSink, Executor, TaskRequest
from kaon.executors.inline import InlineExecutor
from kaon.executors.process import ProcessExecutor
from kaon.model.events import AttemptKey, ExecutorEvent, StepFailed, StepSucceeded
from kaon.model.status import RunStatus


class Cluster:
    """Threads that keep running attempts whichever engine listens."""

    def __init__(self) -> None:
        self.pool = InlineExecutor(workers=4)
        self.sink: EventSink | None = None
        self.running: set[AttemptKey] = set()
        self.pool.start(self._forward)

    def _forward(self, event: ExecutorEvent) -> None:
        if isinstance(event, StepSucceeded | StepFailed):
            self.running.discard(event.key)
        if self.sink is not None:
            self.sink(event)


class ClusterExecutor(Executor):
    """An engine's view of the cluster; it can re-attach to what the cluster still runs."""

    name: ClassVar[str] = "cluster"

    def __init__(self, cluster: Cluster, *, can_reattach: bool = True) -> None:
        self.cluster = cluster
        self.can_reattach = can_reattach

    def start(self, sink: EventSink) -> None:
        self.cluster.sink = sink  # the previous engine hears nothing more

    def submit(self, request: TaskRequest) -> None:
        self.cluster.running.add(request.key)
        self.cluster.pool.submit(request)

    def cancel(self, key: AttemptKey) -> None:
        self.cluster.pool.cancel(key)

    def reattach(self, key: AttemptKey) -> bool:
        return self.can_reattach and key in self.cluster.running

    @property
    def capacity(self) -> int:
        return 4

    def shutdown(self) -> None:
        pass


def _died_mid_attempt(h: Harness, cluster: Cluster) -> str:
    """Start a run whose slow attempt is running, then "kill" its engine (no close: its
    lease just expires)."""
    spec = flow(
        task("slow", "sleeper", inputs={"seconds": 1.0, "state": str(h.state)}),
        task("after", "add", inputs={"a": 1, "b": 2}, needs=("slow",)),
    )
    run_id = h.create(spec)
    first = Engine(h.store, ClusterExecutor(cluster), h.artifacts, lease_ttl=0.3)
    first.start()
    first.add_run(run_id)
    deadline = time.monotonic() + 10
    while not (h.state / "sleeper_start").exists() and time.monotonic() < deadline:
        first.turn(max_wait=0.05)
    assert (h.state / "sleeper_start").exists()
    time.sleep(0.4)  # the dead engine's lease expires
    return run_id


def _attempts(h: Harness, run_id: str) -> list[tuple[int, str]]:
    row = h.store.get_step_run(run_id, "slow")
    return [(a.number, a.status) for a in h.store.attempts(run_id, row.id)]


def test_restarted_engine_reattaches_a_running_attempt(inline: Harness) -> None:
    cluster = Cluster()
    run_id = _died_mid_attempt(inline, cluster)
    status = inline.drive(
        run_id, engine=Engine(inline.store, ClusterExecutor(cluster), inline.artifacts)
    )
    assert status is RunStatus.SUCCEEDED
    assert _attempts(inline, run_id) == [(1, "succeeded")]
    assert len((inline.state / "sleeper_start").read_text().splitlines()) == 1  # not re-run


def test_an_executor_that_cannot_reattach_retries_the_attempt(inline: Harness) -> None:
    cluster = Cluster()
    run_id = _died_mid_attempt(inline, cluster)
    executor = ClusterExecutor(cluster, can_reattach=False)
    status = inline.drive(run_id, engine=Engine(inline.store, executor, inline.artifacts))
    assert status is RunStatus.SUCCEEDED
    assert _attempts(inline, run_id) == [(1, "lost"), (2, "succeeded")]
    assert len((inline.state / "sleeper_start").read_text().splitlines()) == 2
    lost = inline.store.attempts(run_id, inline.store.get_step_run(run_id, "slow").id)[0]
    assert lost.error is not None
    assert (lost.error["type"], lost.error["platform"]) == ("EngineLost", True)  # the budget's


def test_process_and_inline_executors_answer_cannot_reattach(tmp_path: Path) -> None:
    assert ProcessExecutor(workers=1).reattach(("run", 1, 1)) is False
    assert InlineExecutor(workers=1).reattach(("run", 1, 1)) is False

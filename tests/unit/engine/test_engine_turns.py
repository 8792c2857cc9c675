"""The engine reports how long each turn that did work took (``on_turn``), for
``kaon_engine_turn_seconds``."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import E, Harness, flow, task

from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.specs import ForeachSpec, GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.store.base import EventRecord


def test_turns_that_did_work_are_timed_and_idle_ones_are_not(inline: Harness) -> None:
    run_id = inline.create(flow(task("a", "add", inputs={"a": 1, "b": 2})))
    turns: list[float] = []
    engine = Engine(
        inline.store, create_executor("inline", workers=2), inline.artifacts, on_turn=turns.append
    )
    try:
        assert engine.run_until_done(run_id) is RunStatus.SUCCEEDED
        worked = len(turns)
        assert worked >= 2 and all(0 < t < 5 for t in turns)
        for _ in range(5):
            engine.turn(max_wait=0.01)  # nothing held: nothing to time
        assert len(turns) == worked
    finally:
        engine.close()


def _chain(n: int) -> list[TaskSpec]:
    steps = [task("s0", "add", inputs={"a": 0, "b": 1})]
    for i in range(1, n):
        steps.append(task(f"s{i}", "add", inputs={"a": E(f"steps.s{i - 1}"), "b": 1}))
    return steps


def _turn_threads(
    tmp_path: Path, executor: str, spec: WorkflowSpec, path: str
) -> tuple[list[str], object]:
    """Run ``spec`` to success on ``executor``: the names of the threads that ran its turns
    that did work, in order, and the value of step ``path``."""
    harness = Harness(tmp_path, executor)
    run_id = harness.create(spec)
    threads: list[str] = []
    engine = Engine(
        harness.store,
        create_executor(executor, workers=2),
        harness.artifacts,
        on_turn=lambda _: threads.append(threading.current_thread().name),
    )
    try:
        assert engine.run_until_done(run_id) is RunStatus.SUCCEEDED
        return threads, harness.value(run_id, path)
    finally:
        engine.close()
        harness.store.close()


@pytest.mark.parametrize(
    ("executor", "thread"), [("inline", "kaon-inline-"), ("process", "kaon-process-reader")]
)
def test_a_chain_runs_its_turns_on_the_thread_that_learnt_the_step_ended(
    tmp_path: Path, executor: str, thread: str
) -> None:
    """The thread that learns an attempt ended (the inline thread that ran it, the process
    executor's reader) runs the engine's next turn when that attempt was the last in flight:
    it commits the step's success and starts the next step; the engine's own thread is not
    woken per step."""
    threads, value = _turn_threads(tmp_path, executor, flow(*_chain(30)), "s29")
    assert value == 30
    on_workers = [name for name in threads if name.startswith(thread)]
    assert len(on_workers) >= 20, threads  # a few may race with the engine's own turns
    assert len(set(on_workers)) <= 2  # the chain stays on the thread that ran it


class _LoopTurns(Engine):
    """An engine that counts the turns its own loop runs (woken or not)."""

    loop_turns = 0

    def turn(self, max_wait: float = 1.0) -> None:
        self.loop_turns += 1
        super().turn(max_wait)


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_chains_turns_on_other_threads_do_not_wake_the_engines_thread(
    tmp_path: Path, executor: str
) -> None:
    """A turn run on the thread that learnt a chain's step ended wakes the engine's own
    thread only when it moved the engine's next deadline earlier. The deadline the turn finds
    again (the next command poll) is the one the thread sleeps until, read from another
    clock a few microseconds later: that is no reason to wake it. (It woke once per step on
    the process executor: one futex wake-up and an empty turn per chain step.)"""
    harness = Harness(tmp_path, executor)
    run_id = harness.create(flow(*_chain(80)))
    engine = _LoopTurns(harness.store, create_executor(executor, workers=2), harness.artifacts)
    try:
        assert engine.run_until_done(run_id) is RunStatus.SUCCEEDED
    finally:
        engine.close()
        harness.store.close()
    # The loop's own looks (every command poll, 0.2 s; every 50 ms while inline attempts may
    # report quietly) stay far below one per step.
    assert engine.loop_turns <= 25, engine.loop_turns


def test_an_error_in_a_turn_on_an_executor_thread_is_raised_by_the_engine_loop(
    inline: Harness,
) -> None:
    """A turn run on an executor's thread that raises (here a listener) does not kill that
    thread silently: the error is raised by the loop driving the engine, as on its own
    thread."""
    run_id = inline.create(flow(*_chain(10)))
    calls: list[int] = []

    def listener(events: list[EventRecord]) -> None:
        calls.append(len(events))
        if len(calls) == 4:
            raise RuntimeError("listener broke")

    engine = Engine(inline.store, create_executor("inline", workers=2), inline.artifacts)
    engine.subscribe(listener)
    try:
        with pytest.raises(RuntimeError, match="listener broke"):
            engine.run_until_done(run_id)
    finally:
        engine.close()


def test_turns_run_by_hand_stay_on_the_callers_thread(inline: Harness) -> None:
    """Outside run_until_done and serve (a caller turning the engine by hand), executor
    threads never run turns: events wait for the caller's next turn."""
    run_id = inline.create(flow(*_chain(3)))
    threads: set[str] = set()
    engine = Engine(
        inline.store,
        create_executor("inline", workers=2),
        inline.artifacts,
        on_turn=lambda _: threads.add(threading.current_thread().name),
    )
    try:
        engine.start()
        engine.add_run(run_id)
        deadline = time.monotonic() + 30
        while inline.store.get_run(run_id).status is not RunStatus.SUCCEEDED:
            assert time.monotonic() < deadline
            engine.turn(max_wait=0.05)
    finally:
        engine.close()
    assert threads == {threading.current_thread().name}


@pytest.mark.parametrize(
    ("executor", "thread"), [("inline", "kaon-inline-"), ("process", "kaon-process-reader")]
)
def test_a_fan_outs_ends_wake_the_engine_which_batches_them(
    tmp_path: Path, executor: str, thread: str
) -> None:
    """Items of a foreach are submitted together: their ends wake the engine's thread, which
    takes several in one turn (one commit), instead of each ending thread running a turn."""
    body = GraphSpec(steps=(task("sq", "add", inputs={"a": E("item"), "b": 1}),))
    spec = flow(
        ForeachSpec(
            id="each", items=E("[" + ", ".join(str(i) for i in range(60)) + "]"), body=body
        ),
        task("sum", "total", inputs={"values": E("steps.each")}),
    )
    threads, value = _turn_threads(tmp_path, executor, spec, "sum")
    assert value == sum(range(1, 61))
    assert len([name for name in threads if name.startswith(thread)]) <= 3, threads

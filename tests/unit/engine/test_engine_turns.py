"""The engine reports how long each turn that did work took (``on_turn``), for
``kaon_engine_turn_seconds``."""

from __future__ import annotations

from conftest import Harness, flow, task

from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.status import RunStatus


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

"""Costs that must not grow with the number of runs held or with history: the engine's poll
of commands and signals is a fixed number of queries, and wait steps do not re-read signals
received before their run was created."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import Harness, flow

from kaon.engine import operations
from kaon.model.specs import WaitSpec
from kaon.model.status import RunStatus
from kaon.store.base import SignalRecord, WriteBatch
from kaon.store.sql import SQLStore


@contextmanager
def _counting(store: SQLStore) -> Iterator[list[str]]:
    with store.reads_seen() as statements:
        yield statements


def test_one_poll_costs_the_same_queries_for_5_or_25_held_runs(inline: Harness) -> None:
    store = inline.store
    assert isinstance(store, SQLStore)
    old = [SignalRecord("other", {}, time.time() - 60, "test") for _ in range(300)]
    store.write(WriteBatch(signals=old))
    spec = flow(WaitSpec(id="w", signal="go"))
    engine = inline.engine()
    engine.start()
    counts = []
    try:
        for held in (5, 25):
            while len(engine.runs) < held:
                engine.add_run(inline.create(spec))
            engine.turn(max_wait=0)  # the wait steps start waiting (and take their cursor)
            engine._poll_commands()
            with _counting(store) as statements:
                engine._poll_commands()
            counts.append(len(statements))
            # Wait steps start after the signals older than their run: no scan from id 0.
            assert all(c >= 300 for s in engine.runs.values() for c in s.wait_cursors.values())
        assert counts[0] == counts[1] <= 2, counts
        # Commands still reach their runs.
        target = next(iter(engine.runs))
        operations.send_command(store, target, "kill", {})
        engine._poll_commands()
        engine.turn(max_wait=0)
        assert store.get_run(target).status is RunStatus.CANCELLED
    finally:
        engine.close()


def test_a_turn_looks_only_at_the_runs_something_happened_to(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With many runs held, waiting for a signal, a turn processes none of them; a run that
    gets a command is processed alone (the turn's cost follows the activity)."""
    from kaon.engine.runstate import RunState

    spec = flow(WaitSpec(id="w", signal="never"))
    run_ids = [inline.create(spec) for _ in range(40)]
    engine = inline.engine()
    try:
        for run_id in run_ids:
            engine.add_run(run_id)
        for _ in range(3):
            engine.turn(max_wait=0)
        processed: list[str] = []
        original = RunState.process

        def counting(state: RunState) -> None:
            processed.append(state.id)
            original(state)

        monkeypatch.setattr(RunState, "process", counting)
        for _ in range(5):
            engine.turn(max_wait=0)
        assert processed == []
        operations.send_command(inline.store, run_ids[7], "kill", {}, by="test")
        engine._next_poll = 0.0
        engine.turn(max_wait=0)
        assert processed == [run_ids[7]]
        assert inline.store.get_run(run_ids[7]).status is RunStatus.CANCELLED
    finally:
        engine.close()

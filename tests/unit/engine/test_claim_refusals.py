"""A claiming pass does not ask the run strategy again about queue heads it refused lately:
with many workflows whose heads wait on an active run, every pass (4 a second) asked about
each head again, one statement each (0.4 to 1.2 s a pass with 2,000 of them, holding the
engine's turn lock). A remembered refusal ends when a run of the workflow this engine held
ends, when the workflow's head changes, or after a bounded time."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from conftest import Harness, flow, task

from kaon.engine.refusals import RefusalMemory
from kaon.model.status import RunStatus
from kaon.store.base import DefinitionRecord, RunRecord, WriteBatch
from kaon.triggers.strategies import admit as strategy_admit

SEQUENTIAL = {"run_strategy": "sequential"}


def _counting(store: object) -> tuple[Callable[[RunRecord], bool], list[str]]:
    asked: list[str] = []
    sequential = functools.partial(strategy_admit, store, properties=lambda _s, _n: SEQUENTIAL)

    def admit(run: RunRecord) -> bool:
        asked.append(run.id)
        return sequential(run)

    return admit, asked


def _waiting_workflows(inline: Harness, count: int) -> None:
    """``count`` workflows, each with a run another engine holds and 3 waiting behind it."""
    now = time.time()
    batch = WriteBatch()
    for n in range(count):
        name = f"wf{n:03d}"
        batch.definitions.append(DefinitionRecord(f"h{n}", name, {}, "", now))
        batch.runs.append(
            RunRecord(
                f"{name}-0",
                name,
                f"h{n}",
                RunStatus.RUNNING,
                created_at=0,
                owner="another-engine",
                lease_until=now + 3600,
            )
        )
        for q in range(1, 4):
            batch.runs.append(
                RunRecord(f"{name}-{q}", name, f"h{n}", RunStatus.PENDING, created_at=q)
            )
    inline.store.write(batch)


def test_a_pass_does_not_ask_again_about_heads_it_refused(inline: Harness) -> None:
    _waiting_workflows(inline, 40)
    admit, asked = _counting(inline.store)
    engine = inline.engine()
    try:
        engine._claim(admit, 100)
        assert sorted(asked) == [f"wf{n:03d}-1" for n in range(40)]  # each head, once
        asked.clear()
        read: list[RunRecord] = []
        claimable = inline.store.claimable_runs

        def counted(**options: Any) -> list[RunRecord]:
            found = claimable(**options)
            read.extend(found)
            return found

        engine.store.claimable_runs = counted  # type: ignore[method-assign]
        engine._claim(admit, 100)
        engine._claim(admit, 100)
        assert asked == [] and not engine.runs
        assert read == []  # their runs are left out of the pages: not read, not decoded
    finally:
        engine.close()


def test_a_run_of_the_workflow_ending_here_or_a_new_head_is_asked_at_once(
    inline: Harness,
) -> None:
    spec = flow(task("a", "const"))
    first = inline.create(spec)
    second = inline.create(spec)
    admit, asked = _counting(inline.store)
    engine = inline.engine()
    try:
        engine._claim(admit, 10)
        assert list(engine.runs) == [first] and asked == [first, second]
        assert engine.run_until_done(first) is RunStatus.SUCCEEDED
        asked.clear()
        engine._claim(admit, 10)  # its place is free: the head is asked, and admitted
        assert asked == [second] and second in engine.runs
        assert engine.run_until_done(second) is RunStatus.SUCCEEDED
    finally:
        engine.close()


def test_a_refusal_is_remembered_for_its_head_and_a_bounded_time() -> None:
    memory = RefusalMemory(ttl_s=10.0)
    memory.refused("wf", "run-1", now=100.0)
    assert memory.remembered("wf", "run-1", now=105.0)
    assert not memory.remembered("wf", "run-0", now=105.0)  # a new head: asked
    assert not memory.remembered("wf", "run-1", now=105.0)  # ... and the old one forgotten
    memory.refused("wf", "run-1", now=100.0)
    assert not memory.remembered("wf", "run-1", now=115.1)  # 1.5 times the TTL at most
    memory.refused("wf", "run-1", now=100.0)
    memory.forget("wf")
    assert not memory.remembered("wf", "run-1", now=101.0)
    memory.refused("a", "x", now=0.0)
    memory.refused("b", "y", now=50.0)
    memory.sweep(now=20.0)
    assert len(memory) == 1


class _Changing:
    """An admission callback that says when what it decides by changed."""

    def __init__(self, inner: Callable[[RunRecord], bool]) -> None:
        self.inner, self.marker = inner, 0

    def __call__(self, run: RunRecord) -> bool:
        return self.inner(run)

    def changes(self) -> object:
        return self.marker


def test_heads_are_asked_again_when_the_admission_says_something_changed(
    inline: Harness,
) -> None:
    _waiting_workflows(inline, 5)
    admit, asked = _counting(inline.store)
    changing = _Changing(admit)
    engine = inline.engine()
    try:
        engine._claim(changing, 100)
        asked.clear()
        engine._claim(changing, 100)
        assert asked == []
        changing.marker += 1  # a property changed, or a workflow was unblocked
        engine._claim(changing, 100)
        assert len(asked) == 5
    finally:
        engine.close()

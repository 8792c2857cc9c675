"""Wait steps across an engine restart: the same outcome as without the restart."""

from __future__ import annotations

import time

from conftest import Harness, flow

from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.specs import WaitSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import SignalRecord, WriteBatch


def _send(h: Harness, name: str, **params: object) -> None:
    h.store.write(WriteBatch(signals=[SignalRecord(name, dict(params), time.time(), "test")]))


def _spec():  # type: ignore[no-untyped-def]
    # Two gates in a row on the same signal; the second one times out unless a *new* signal.
    return flow(
        WaitSpec(id="first", signal="go"),
        WaitSpec(id="second", signal="go", needs=("first",), timeout_s=1.5),
    )


def _first_gate_passed(h: Harness, *, lease_ttl: float = 30.0) -> tuple[str, Engine]:
    run_id = h.create(_spec())
    engine = Engine(h.store, create_executor("inline", workers=2), h.artifacts, lease_ttl=lease_ttl)
    engine.start()
    engine.add_run(run_id)
    h.turn_until(engine, run_id, "first", StepStatus.WAITING)
    _send(h, "go", n=1)
    h.turn_until(engine, run_id, "second", StepStatus.WAITING)
    return run_id, engine


def test_without_a_restart_the_second_gate_waits_for_a_new_signal(inline: Harness) -> None:
    run_id, engine = _first_gate_passed(inline)
    engine.close()
    assert inline.drive(run_id) is RunStatus.FAILED  # resumed at once: still times out
    assert inline.rows(run_id)["second"].error["type"] == "Timeout"


def test_after_a_restart_the_consumed_signal_does_not_open_the_second_gate(
    inline: Harness,
) -> None:
    run_id, _dead = _first_gate_passed(inline, lease_ttl=0.3)  # the engine dies (no close)
    time.sleep(0.4)  # its lease expires
    status = inline.drive(run_id)
    # The only "go" signal was consumed by the first gate: the second still times out.
    assert inline.rows(run_id)["second"].reason != "signal go #1"
    assert status is RunStatus.FAILED


def test_one_engine_throughout_the_second_gate_waits_for_a_new_signal(inline: Harness) -> None:
    run_id, engine = _first_gate_passed(inline)
    try:
        status = engine.run_until_done(run_id)
    finally:
        engine.close()
    assert status is RunStatus.FAILED
    assert inline.rows(run_id)["second"].error["type"] == "Timeout"

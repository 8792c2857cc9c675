"""A wait step sees the signals of its name received since the run was created, even those
that arrived while another wait step of the run (on another signal) was waiting."""

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


def _gates():  # type: ignore[no-untyped-def]
    # Features first, then labels; the labels' signal comes while the features are awaited.
    return flow(
        WaitSpec(id="features", signal="features_ready"),
        WaitSpec(id="labels", signal="labels_ready", needs=("features",), timeout_s=3.0),
    )


def test_a_signal_sent_while_another_wait_step_waits_is_kept_for_its_own(
    inline: Harness,
) -> None:
    run_id = inline.create(_gates())
    engine = Engine(inline.store, create_executor("inline", workers=2), inline.artifacts)
    engine.start()
    engine.add_run(run_id)
    try:
        inline.turn_until(engine, run_id, "features", StepStatus.WAITING)
        _send(inline, "labels_ready", path="/labels")
        for _ in range(5):  # the engine reads the labels' signal while features waits
            engine.turn(max_wait=0.05)
        _send(inline, "features_ready", path="/features")
        status = engine.run_until_done(run_id)
    finally:
        engine.close()
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert inline.value(run_id, "labels") == {"path": "/labels"}


def test_the_same_without_reading_in_between(inline: Harness) -> None:
    """Both signals sent before the engine looks: the outcome does not depend on when the
    engine polled (nor on a restart, which rebuilds the cursor from the run's creation)."""
    run_id = inline.create(_gates())
    _send(inline, "labels_ready", path="/labels")
    _send(inline, "features_ready", path="/features")
    assert inline.drive(run_id) is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert inline.value(run_id, "labels") == {"path": "/labels"}

"""A wait step sees the signals of its name received since the run was created, even those
that arrived while another wait step of the run (on another signal, or on the same one with
another match) was waiting, unless a wait step of the run took them."""

from __future__ import annotations

import time

from conftest import E, Harness, flow

from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.specs import ForeachSpec, GraphSpec, WaitSpec
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


def _regions():  # type: ignore[no-untyped-def]
    # One region at a time, each waiting for its own data; the data come in any order.
    wait = WaitSpec(id="w", signal="data_ready", match="signal.region == item", timeout_s=3.0)
    body = GraphSpec(steps=(wait,))
    return flow(ForeachSpec(id="fe", items=E('["eu", "us", "ap"]'), concurrency=1, body=body))


def test_a_signal_another_match_passed_over_reaches_its_own_wait_step(inline: Harness) -> None:
    """``us`` came while ``eu`` was awaited (read, and matched no waiting step); ``eu`` woke
    item 0 and the run's cursor for ``data_ready`` moved past ``us``: item 1 waited for a
    new one and timed out, although ``us`` had been received since the run was created."""
    run_id = inline.create(_regions())
    engine = Engine(inline.store, create_executor("inline", workers=2), inline.artifacts)
    engine.start()
    engine.add_run(run_id)
    try:
        inline.turn_until(engine, run_id, "fe[0].w", StepStatus.WAITING)
        _send(inline, "data_ready", region="ap", path="/ap")
        _send(inline, "data_ready", region="us", path="/us")
        for _ in range(5):  # the engine reads both while eu waits
            engine.turn(max_wait=0.05)
        _send(inline, "data_ready", region="eu", path="/eu")
        status = engine.run_until_done(run_id)
    finally:
        engine.close()
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert inline.value(run_id, "fe") == [
        {"region": "eu", "path": "/eu"},
        {"region": "us", "path": "/us"},
        {"region": "ap", "path": "/ap"},
    ]


def test_signals_sent_in_reverse_order_before_any_wait(inline: Harness) -> None:
    run_id = inline.create(_regions())
    for region in ("ap", "us", "eu"):
        _send(inline, "data_ready", region=region)
    _send(inline, "data_ready", region="us")  # a second one: taken by nobody
    assert inline.drive(run_id) is RunStatus.SUCCEEDED, inline.errors(run_id)
    reasons = [inline.rows(run_id)[f"fe[{i}].w"].reason for i in range(3)]
    assert reasons == ["signal data_ready #3", "signal data_ready #2", "signal data_ready #1"]

"""Wait steps: waiting for a signal, matching it, timing out; steps that emit signals."""

from __future__ import annotations

import threading
import time

from conftest import E, Harness, flow, task

from kaon.model.specs import ParamSpec, ParamType, WaitSpec
from kaon.model.status import RunStatus, StepStatus
from kaon.store.base import SignalRecord, WriteBatch


def _send(h: Harness, name: str, **params: object) -> None:
    h.store.write(WriteBatch(signals=[SignalRecord(name, dict(params), time.time(), "test")]))


def test_wait_step_is_woken_by_a_matching_signal(inline: Harness) -> None:
    spec = flow(
        WaitSpec(id="ready", signal="data_ready", match="signal.region == params.region"),
        task("use", "const", inputs={"value": E("steps.ready.path")}),
        params=(ParamSpec("region", ParamType.STR, "eu"),),
    )
    run_id = inline.create(spec)
    threading.Timer(0.3, _send, (inline, "data_ready"), {"region": "us", "path": "/us"}).start()
    threading.Timer(0.6, _send, (inline, "data_ready"), {"region": "eu", "path": "/eu"}).start()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED
    assert inline.value(run_id, "use") == "/eu"
    statuses = [
        e.data["status"] for e in inline.store.events(run_id) if e.data.get("path") == "ready"
    ]
    assert statuses == ["waiting", "succeeded"]


def test_wait_times_out(inline: Harness) -> None:
    spec = flow(WaitSpec(id="never", signal="nothing", timeout_s=0.3))
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    error = inline.rows(run_id)["never"].error
    assert error is not None and error["type"] == "Timeout"


def test_a_step_emits_a_signal_another_waits_for(harness: Harness) -> None:
    spec = flow(
        WaitSpec(id="gate", signal="go", match="signal.n > 1"),
        task("send", "announce", inputs={"name": "go", "n": 2}),
        task("after", "const", inputs={"value": E("steps.gate.n")}),
    )
    status, run_id = harness.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert harness.value(run_id, "after") == 2
    sent = harness.store.signals(name="go")
    assert [(s.params, s.source_run_id) for s in sent] == [({"n": 2}, run_id)]


def test_kill_cancels_a_waiting_step(inline: Harness) -> None:
    from kaon.engine import operations

    run_id = inline.create(flow(WaitSpec(id="w", signal="nope")))
    threading.Timer(0.3, operations.send_command, (inline.store, run_id, "kill", {})).start()
    assert inline.drive(run_id) is RunStatus.CANCELLED
    assert inline.rows(run_id)["w"].status is StepStatus.CANCELLED


def test_shell_step_emits_a_signal_through_the_line_protocol(inline: Harness) -> None:
    from kaon.model.specs import TaskSpec

    shell = TaskSpec(
        id="send", step_type="shell", config={"command": "echo '::kaon::signal go {\"n\": 5}'"}
    )
    spec = flow(WaitSpec(id="gate", signal="go"), shell)
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert inline.value(run_id, "gate") == {"n": 5}


def test_a_steps_signal_reaches_only_its_own_groups_workflows(inline: Harness) -> None:
    """A signal a step sends is scoped to its workflow's owner group, as if its owner sent
    it: another group's wait step stays asleep, the sender's own group's wakes up."""
    from kaon.engine.engine import Engine
    from kaon.engine.operations import create_run
    from kaon.executors import create_executor

    groups = {"sender": "team-b", "theirs": "team-a", "ours": "team-b"}
    engine = Engine(
        inline.store,
        create_executor("inline", workers=4),
        inline.artifacts,
        owner_group_of=groups.get,
    )
    serving = threading.Thread(target=engine.serve, kwargs={"claim_every_s": 0.05})
    serving.start()
    try:
        theirs = create_run(inline.store, flow(WaitSpec(id="w", signal="go"), name="theirs"), {})
        ours = create_run(inline.store, flow(WaitSpec(id="w", signal="go"), name="ours"), {})
        deadline = time.monotonic() + 20
        while not all(
            [e.data.get("status") for e in inline.store.events(r.id)].count("waiting")
            for r in (theirs, ours)
        ):
            assert time.monotonic() < deadline, "the wait steps never started waiting"
            time.sleep(0.02)
        sender = flow(task("send", "announce", inputs={"name": "go", "n": 1}), name="sender")
        create_run(inline.store, sender, {})
        while inline.store.get_run(ours.id).status is not RunStatus.SUCCEEDED:
            assert time.monotonic() < deadline, "the sender's own group's run was not woken"
            time.sleep(0.02)
        time.sleep(0.5)  # several command polls: the other group's run would have woken
        assert inline.store.get_run(theirs.id).status is RunStatus.RUNNING
        assert [s.scope for s in inline.store.signals(name="go")] == [["team-b"]]
    finally:
        engine.stop()
        serving.join(30)
        engine.close()


def test_a_signal_the_match_cannot_read_is_not_for_the_step(inline: Harness) -> None:
    """A signal of the name without the key the match reads (another sender's) failed the
    waiting step with ExpressionError, and the run with it; a signal trigger skips such a
    signal. The step now goes on waiting, and the run's events say why it was passed."""
    spec = flow(WaitSpec(id="w", signal="go", match="signal.n > 1", timeout_s=10.0))
    run_id = inline.create(spec)
    threading.Timer(0.3, _send, (inline, "go"), {"other": 1}).start()
    threading.Timer(0.8, _send, (inline, "go"), {"n": 5}).start()
    assert inline.drive(run_id) is RunStatus.SUCCEEDED, inline.errors(run_id)
    assert inline.value(run_id, "w") == {"n": 5}
    passed = [e.data for e in inline.store.events(run_id) if e.kind == "signal_not_matched"]
    assert [(d["path"], d["id"]) for d in passed] == [("w", 1)]
    assert "no such key 'n'" in passed[0]["error"]

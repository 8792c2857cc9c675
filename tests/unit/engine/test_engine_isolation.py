"""Run isolation: an error confined to one run fails that run, never the engine or others."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import E, Harness, flow, task

from kaon.engine.engine import Engine
from kaon.errors import StoreError
from kaon.model.specs import FailureMode, ForeachSpec, GraphSpec, StepDefaults
from kaon.model.status import STEP_ACTIVE, RunStatus, StepStatus
from kaon.store.base import DefinitionRecord, RunRecord, WriteBatch


def _serve(engine: Engine) -> threading.Thread:
    thread = threading.Thread(target=engine.serve, kwargs={"claim_every_s": 0.05})
    thread.start()
    return thread


def _wait_terminal(h: Harness, ids: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(h.store.get_run(i).status.is_terminal for i in ids):
            return
        time.sleep(0.05)


UNSTORABLE = "kaon-test-unstorable"


def _refuse_unstorable(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store refuses a step run row whose item is UNSTORABLE, as it refuses a value it
    cannot encode: a write that belongs to one run only."""
    write = h.store.write

    def refusing(batch: WriteBatch) -> None:
        if any(row.item == UNSTORABLE for row in batch.step_runs.values()):
            raise StoreError("cannot store a row of table step_runs: an unstorable item")
        write(batch)

    monkeypatch.setattr(h.store, "write", refusing)


def _unloadable_run(h: Harness) -> str:
    """A run whose stored definition is not a workflow spec (it cannot load)."""
    batch = WriteBatch()
    batch.definitions.append(DefinitionRecord("broken", "broken", {"graph": 42}, "", 1.0))
    batch.runs.append(RunRecord("r-broken", "broken", "broken", RunStatus.PENDING, created_at=1.0))
    h.store.write(batch)
    return "r-broken"


def test_poison_runs_fail_with_a_reason_and_healthy_runs_finish(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_unstorable(inline, monkeypatch)
    body = GraphSpec(steps=(task("use", "const", inputs={"value": E("item")}),))
    poison = inline.create(
        flow(
            task("src", "const", inputs={"value": [UNSTORABLE]}),
            ForeachSpec(id="each", items=E("steps.src"), body=body),
            name="poison",
        )
    )
    broken = _unloadable_run(inline)
    healthy = [inline.create(flow(task("a", "const", inputs={"value": i}))) for i in range(3)]
    engine = inline.engine()
    thread = _serve(engine)
    try:
        _wait_terminal(inline, [poison, broken, *healthy])
        assert thread.is_alive(), "the engine thread died"
    finally:
        engine.stop()
        thread.join(10)
        engine.close()
    assert [inline.store.get_run(i).status for i in healthy] == [RunStatus.SUCCEEDED] * 3
    for run_id, why in ((poison, "unstorable"), (broken, "")):
        record = inline.store.get_run(run_id)
        assert record.status is RunStatus.FAILED, run_id
        assert record.error is not None and record.error.startswith("quarantined"), record.error
        assert why in record.error
        assert "sqlite:///" not in record.error  # the run's readers see no database address
        assert record.owner is None
    assert any(e.kind == "run" and e.data.get("error") for e in inline.store.events(poison))
    # Its steps ended with it: none is left running (and counting time) in the record.
    active = inline.store.step_runs(poison, all_levels=True, statuses=sorted(STEP_ACTIVE))
    assert active == []
    assert inline.store.get_step_run(poison, "src").status is StepStatus.CANCELLED


def test_a_restarted_server_does_not_claim_a_quarantined_run_again(inline: Harness) -> None:
    broken = _unloadable_run(inline)
    first = inline.engine()
    thread = _serve(first)
    _wait_terminal(inline, [broken])
    first.stop()
    thread.join(10)
    first.close()
    ended = inline.store.get_run(broken).ended_at
    healthy = inline.create(flow(task("a", "const", inputs={"value": 1})))
    second = inline.engine()
    thread = _serve(second)
    try:
        _wait_terminal(inline, [healthy])
    finally:
        second.stop()
        thread.join(10)
        second.close()
    assert inline.store.get_run(healthy).status is RunStatus.SUCCEEDED
    assert inline.store.get_run(broken).ended_at == ended
    assert "r-broken" not in second.runs


def test_kaon_run_of_a_poison_run_reports_it_failed(
    inline: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_unstorable(inline, monkeypatch)
    body = GraphSpec(steps=(task("use", "const", inputs={"value": E("item")}),))
    spec = flow(
        task("src", "const", inputs={"value": [UNSTORABLE, "fine"]}),
        ForeachSpec(id="each", items=E("steps.src"), body=body),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.FAILED
    error = inline.store.get_run(run_id).error
    assert error is not None and "an unstorable item" in error


def test_an_expression_over_an_array_fails_its_step_not_the_run(inline: Harness) -> None:
    """A template over a numpy array (``"arr=${{ steps.mk.arr }}"``) raised a ValueError out
    of the CEL conversion: the run was quarantined, the finished ``mk`` shown cancelled (and
    run again by a restart), the other branch killed. Only the step fails now, naming the
    type; ``mk`` stays succeeded."""
    spec = flow(
        task("mk", "arrays"),
        task("use", "const", inputs={"value": E('"arr=" + string(steps.mk.arr)')}),
        task("small", "const", inputs={"value": E('"arr=" + string(steps.mk.small)')}),
        task("when", "const", inputs={"value": 1}, when="size(steps.mk.df) > 0"),
        task("days", "dates", inputs={"n": 2}),
        task(
            "day",
            "const",
            inputs={"value": 1},
            when="size(steps.days) > 1 && steps.days[0] != null",
        ),
        task("other", "const", inputs={"value": 5}),
        defaults=StepDefaults(on_failure=FailureMode.IGNORE),
    )
    status, run_id = inline.run(spec)
    record = inline.store.get_run(run_id)
    assert record.error is None or "quarantined" not in record.error, record.error
    rows = inline.rows(run_id)
    assert rows["mk"].status is StepStatus.SUCCEEDED
    assert rows["other"].status is StepStatus.SUCCEEDED
    kinds = (
        ("use", "numpy.ndarray"),
        ("small", "numpy.ndarray"),
        ("when", "pandas"),
        ("day", "datetime.date"),  # CEL has timestamps, not dates: its converter failed raw
    )
    for path, kind in kinds:
        assert rows[path].status is StepStatus.FAILED, path
        error = rows[path].error
        assert error is not None and error["type"] == "ExpressionError", (path, error)
        assert f"a value of type {kind}" in error["message"]
    assert status is RunStatus.SUCCEEDED


def test_a_dict_of_many_keys_is_one_output_read_by_key_all_the_same(inline: Harness) -> None:
    """500,000 keys made 500,000 outputs: a row each to record, and `kaon show` printing
    69,000 lines in 27 s. Past MAX_NAMED_OUTPUTS keys the dict is the `return` output."""
    from kaon.executors.runtime import MAX_NAMED_OUTPUTS

    big = MAX_NAMED_OUTPUTS + 1
    spec = flow(
        task("many", "scores", inputs={"n": big}),
        task("few", "scores", inputs={"n": 3}),
        task("one", "const", inputs={"value": E("steps.many.k7 + steps.few.k2")}),
        task("size", "const", inputs={"value": E("size(steps.many)")}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED, inline.errors(run_id)
    rows = inline.rows(run_id)
    assert set(rows["many"].outputs or {}) == {"return"}
    assert set(rows["few"].outputs or {}) == {"k0", "k1", "k2"}
    assert inline.value(run_id, "one") == 9
    assert inline.value(run_id, "size") == big


def test_a_quarantined_runs_error_names_no_database_address(inline: Harness) -> None:
    """A store error's text begins with the store's URL (PostgreSQL: account, host, port,
    database): the run's readers and its alerts saw it in the run's error."""
    from kaon.errors import StoreError

    run_id = inline.create(flow(task("slow", "sleeper", inputs={"seconds": 5})))
    engine = inline.engine()
    engine.start()
    try:
        engine.add_run(run_id)
        raw = "store postgresql+psycopg://kaon@10.0.0.5:5432/kaon: writing table logs failed"
        engine.quarantine(run_id, StoreError(raw))
    finally:
        engine.close()
    error = inline.store.get_run(run_id).error or ""
    assert error == "quarantined: StoreError: store: writing table logs failed", error

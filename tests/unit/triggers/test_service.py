"""The trigger service's pass: cron with a controllable clock, signals, data, repair, lag."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import fsspec
import pytest
from triggers_support import param, register, runs_of, workflow

from kaon.engine import operations
from kaon.model.codec import spec_hash, workflow_to_dict
from kaon.model.specs import Expr
from kaon.model.triggers import (
    CatchUp,
    CronTriggerSpec,
    DataTriggerSpec,
    SignalTriggerSpec,
    trigger_id,
)
from kaon.store.base import DefinitionRecord, SignalRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore, VersionRecord
from kaon.store.sql import SQLStore
from kaon.store.triggers import CLAIMED, CREATED, FiringRecord, SQLTriggerStore
from kaon.triggers.catalog import StaticCatalog
from kaon.triggers.service import FAKE_CLOCK_ENV, TriggerService, clock_from_env

T0 = dt.datetime(2024, 5, 1, 5, 59, 0, tzinfo=dt.UTC).timestamp()
SLOT = T0 + 60  # 06:00 UTC


def _service(store: SQLStore, *specs, clock=None, lags=None) -> TriggerService:  # type: ignore[no-untyped-def]
    hook = None if lags is None else (lambda name, lag: lags.append((name, lag)))
    return TriggerService(
        store,
        StaticCatalog(list(specs)),
        clock=clock or (lambda: T0),
        on_lag=hook,
        with_alerts=False,
    )


def test_cron_fires_with_a_controllable_clock(store: SQLStore) -> None:
    cron = CronTriggerSpec(cron="0 6 * * *", params={"day": Expr("slot")})
    spec = workflow("daily", cron, params=(param("day"),))
    now = [T0]
    lags: list[tuple[str, float]] = []
    service = _service(store, spec, clock=lambda: now[0], lags=lags)
    assert service.tick() == []  # first sight: starts from now
    now[0] = SLOT - 0.5
    assert service.tick() == []
    now[0] = SLOT + 0.3
    fired = service.tick()
    assert [f.key for f in fired] == ["2024-05-01T06:00:00+00:00"]
    (run,) = runs_of(store, "daily")
    assert run.params == {"day": "2024-05-01T06:00:00+00:00"}
    assert run.labels["trigger"] == "cron" and run.labels["slot"] == "2024-05-01T06:00:00+00:00"
    assert run.labels["trigger_id"] == trigger_id("daily", cron)
    assert lags == [("daily/cron", pytest.approx(0.3))]
    now[0] = SLOT + 1
    assert service.tick() == []  # fired once
    now[0] = SLOT + 86400 + 0.1
    assert len(service.tick()) == 1
    assert len(runs_of(store, "daily")) == 2


def test_cron_catch_up_after_downtime_and_restart(store: SQLStore) -> None:
    cron = CronTriggerSpec(cron="0 * * * *", catchup=CatchUp.ALL, catchup_window_s=3 * 3600)
    spec = workflow("hourly", cron)
    _service(store, spec).tick(T0)
    # A new service (a restarted server) ten hours later catches up the last three slots.
    fired = _service(store, spec).tick(T0 + 10 * 3600 + 30)
    hours = [f.key[11:16] for f in fired]
    assert hours == ["13:00", "14:00", "15:00"]
    assert _service(store, spec).tick(T0 + 10 * 3600 + 40) == []


def test_two_services_never_fire_one_slot_twice(store: SQLStore) -> None:
    spec = workflow("daily", CronTriggerSpec(cron="0 6 * * *"))
    first, second = _service(store, spec), _service(store, spec)
    first.tick(T0)
    fired = first.tick(SLOT + 1) + second.tick(SLOT + 1)
    assert len(fired) == 1 and len(runs_of(store, "daily")) == 1


def _signal(store: SQLStore, name: str, key: str | None = None, **params: object) -> None:
    record = SignalRecord(name, dict(params), time.time(), "test", dedupe_key=key)
    store.write(WriteBatch(signals=[record]))


def test_signal_triggers_match_compute_params_and_dedupe(store: SQLStore) -> None:
    eu = SignalTriggerSpec(
        signal="data_ready",
        match="signal.region == 'eu'",
        params={"path": Expr("signal.path")},
    )
    by_date = SignalTriggerSpec(signal="data_ready", dedupe="signal.date")
    spec_eu = workflow("eu", eu, params=(param("path"),))
    spec_dates = workflow("dates", by_date, params=(param("date"), param("region")))
    service = _service(store, spec_eu, spec_dates)
    service.tick()  # registers the triggers: signals from now on count
    _signal(store, "data_ready", region="eu", path="/eu/1", date="d1")
    _signal(store, "data_ready", region="us", path="/us/1", date="d1")
    _signal(store, "other", region="eu", path="/x", date="d1")
    _signal(store, "data_ready", region="eu", path="/eu/2", date="d2")
    fired = service.tick()
    assert sorted((f.workflow, f.key) for f in fired) == [
        ("dates", "key:d1"),
        ("dates", "key:d2"),
        ("eu", "signal:1"),
        ("eu", "signal:4"),
    ]
    assert [r.params for r in runs_of(store, "eu")] == [{"path": "/eu/1"}, {"path": "/eu/2"}]
    # Without params, the signal's parameters that the workflow declares are passed.
    assert [r.params for r in runs_of(store, "dates")] == [
        {"date": "d1", "region": "eu"},
        {"date": "d2", "region": "eu"},
    ]
    assert service.tick() == []  # the cursor moved on
    # A new service re-reading every signal still starts nothing twice.
    SQLTriggerStore(store).put_state("signals:cursor", {"id": 0}, time.time())
    assert _service(store, spec_eu, spec_dates).tick() == []


def test_a_sender_dedupe_key_starts_one_run(store: SQLStore) -> None:
    spec = workflow("wf", SignalTriggerSpec(signal="go"))
    service = _service(store, spec)
    service.tick()
    _signal(store, "go", key="batch-7")
    _signal(store, "go", key="batch-7")
    assert len(service.tick()) == 1


def test_a_signal_whose_expression_fails_is_skipped(store: SQLStore) -> None:
    spec = workflow("wf", SignalTriggerSpec(signal="go", match="signal.n > 1"))
    service = _service(store, spec)
    service.tick()
    _signal(store, "go")  # no n: the match fails on this signal
    _signal(store, "go", n=2)
    assert [f.key for f in service.tick()] == ["signal:2"]


def test_a_signal_match_over_budget_fails_only_that_firing(
    store: SQLStore, caplog: pytest.LogCaptureFixture
) -> None:
    match = "signal.L.all(a, signal.L.map(b, b).size() > 0)"
    spec = workflow("wf", SignalTriggerSpec(signal="go", match=match))
    service = _service(store, spec)
    service.tick()
    _signal(store, "go", L=list(range(3000)))  # minutes of work: refused before evaluating
    _signal(store, "go", L=[1, 2])
    started = time.monotonic()
    with caplog.at_level("WARNING"):
        assert [f.key for f in service.tick()] == ["signal:2"]
    assert time.monotonic() - started < 10
    (warning,) = [r.getMessage() for r in caplog.records if "over its budget" in r.getMessage()]
    assert "match: expression 'signal.L.all(" in warning and "signal 1 for wf" in warning


@pytest.mark.parametrize("scheme", ["local", "memory"])
def test_data_arrival_fires_once_per_new_path(store: SQLStore, tmp_path: Path, scheme: str) -> None:
    root = str(tmp_path / "lake") if scheme == "local" else f"memory://lake-{time.time_ns()}"
    template = root + "/{date:%Y/%m/%d}/_SUCCESS"
    trigger = DataTriggerSpec(path=template, poll_s=60, params={"day": Expr("date")})
    spec = workflow("loader", trigger, params=(param("day"),))
    now = dt.datetime(2024, 5, 2, 12, tzinfo=dt.UTC).timestamp()
    service = _service(store, spec)
    assert service.tick(now) == []
    fs, base = fsspec.core.url_to_fs(root)
    fs.makedirs(f"{base}/2024/05/02", exist_ok=True)
    fs.pipe_file(f"{base}/2024/05/02/_SUCCESS", b"")
    assert service.tick(now + 30) == []  # not polled again before poll_s
    fired = service.tick(now + 61)
    assert len(fired) == 1 and fired[0].key.endswith("2024/05/02/_SUCCESS")
    assert runs_of(store, "loader")[0].params == {"day": "2024-05-02"}
    assert service.tick(now + 125) == []  # same path: no second run
    fs.makedirs(f"{base}/2024/05/01", exist_ok=True)
    fs.pipe_file(f"{base}/2024/05/01/_SUCCESS", b"")  # yesterday's, within lookback
    assert [f.key[-19:] for f in service.tick(now + 190)] == ["2024/05/01/_SUCCESS"]


def test_a_claimed_firing_without_run_is_repaired(store: SQLStore) -> None:
    spec = workflow("wf", SignalTriggerSpec(signal="go"))
    triggers = SQLTriggerStore(store)
    firing = FiringRecord("t", "k", "wf", operations.new_run_id(), created_at=T0 - 100)
    assert triggers.claim_firing(firing)
    _service(store, spec).tick(T0)
    assert store.get_run(firing.run_id).labels == {}
    assert [f.status for f in triggers.firings()] == [CREATED]
    assert triggers.firings(statuses=[CLAIMED]) == []


def test_registry_catalog_serves_active_versions(store: SQLStore) -> None:
    spec = workflow("reg", SignalTriggerSpec(signal="go"))
    register(store, spec)
    service = TriggerService(store, clock=lambda: T0, on_lag=None, with_alerts=False)
    service.tick()
    _signal(store, "go")
    (fired,) = service.tick()
    assert store.get_run(fired.run_id).labels["version"] == 1


def test_fake_clock_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "clock"
    monkeypatch.setenv(FAKE_CLOCK_ENV, str(file))
    clock = clock_from_env()
    assert abs(clock() - time.time()) < 5  # no file yet: real time
    file.write_text("1234.5")
    assert clock() == 1234.5
    monkeypatch.delenv(FAKE_CLOCK_ENV)
    assert clock_from_env() is time.time


def test_the_first_signal_after_a_push_starts_a_run(store: SQLStore) -> None:
    # The pass that first sees the pushed trigger is the one that reads the signal sent
    # right after the push: the signal counts (the trigger started at the push).
    spec = workflow("pushed", SignalTriggerSpec(signal="go"))
    store.write(
        WriteBatch(
            definitions=[
                DefinitionRecord(spec_hash(spec), spec.name, workflow_to_dict(spec), "", 1.0)
            ]
        )
    )
    pushed_at = time.time()
    SQLRegistryStore(store).add_version(
        VersionRecord(spec.name, 0, spec_hash(spec), "", "t", pushed_at, "t"), activate=True
    )
    _signal(store, "go")
    service = TriggerService(store, clock=time.time, on_lag=None, with_alerts=False)
    (fired,) = service.tick()
    assert store.get_run(fired.run_id).labels["signal_id"] == 1
    # A signal sent before the push does not count for a trigger pushed later.
    late = workflow("later", SignalTriggerSpec(signal="early"))
    _signal(store, "early")
    store.write(
        WriteBatch(
            definitions=[
                DefinitionRecord(spec_hash(late), late.name, workflow_to_dict(late), "", 1.0)
            ]
        )
    )
    SQLRegistryStore(store).add_version(
        VersionRecord(late.name, 0, spec_hash(late), "", "t", time.time() + 1, "t"),
        activate=True,
    )
    assert service.tick(time.time() + 2) == []


def test_the_registry_catalog_reads_every_workflow_in_one_query(store: SQLStore) -> None:
    from kaon.triggers.catalog import RegistryCatalog

    for n in range(30):
        register(store, workflow(f"wf{n}", SignalTriggerSpec(signal="go")))
    catalog = RegistryCatalog(store, refresh_s=0.0)
    assert len(catalog.active_workflows()) == 30  # decodes each definition once
    with store.reads_seen() as statements:
        found = catalog.active_workflows()
    assert sorted(w.name for w in found) == sorted(f"wf{n}" for n in range(30))
    assert all(w.version == 1 for w in found)
    assert len(statements) == 1  # the registry's signature: unchanged, nothing re-read
    register(store, workflow("wf30", SignalTriggerSpec(signal="go")))
    SQLRegistryStore(store).set_active("wf3", None, time.time())
    with store.reads_seen() as statements:
        found = catalog.active_workflows()
    assert len(statements) == 3  # the signature, the one join, the new definition (once)
    names = {w.name for w in found}
    assert "wf30" in names and "wf3" not in names and len(names) == 30


def test_a_first_pass_over_many_cron_triggers_costs_a_few_statements(store: SQLStore) -> None:
    """Thousands of workflows start with two statements for their trigger state (one read,
    one write), not two per trigger; and a later pass with nothing due makes none."""
    specs = [workflow(f"c{n}", CronTriggerSpec(cron=f"{n % 60} 3 * * *")) for n in range(300)]
    service = TriggerService(store, StaticCatalog(specs), on_lag=None, with_alerts=False)
    at = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC).timestamp()
    service.tick(at)  # the repair pass and the alert scan run once first
    with store.reads_seen() as statements:
        service._next_cron.clear()  # as if these triggers were new
        service._last_slot.clear()
        service.tick(at + 1)
        first = len(statements)
        statements.clear()
        service.tick(at + 2)
    assert first <= 8, first
    assert len(statements) <= 3, statements


def _count_writes(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The store's write transactions from now on, by kind (a batch or a statement)."""
    seen: list[str] = []
    write, writing = store.write, store.writing

    def counted_write(batch: WriteBatch) -> None:
        seen.append("batch")
        write(batch)

    def counted_writing(doing: str = "writing"):  # type: ignore[no-untyped-def]
        seen.append(doing)
        return writing(doing)

    monkeypatch.setattr(store, "write", counted_write)
    monkeypatch.setattr(store, "writing", counted_writing)
    return seen


def test_a_pass_firing_many_triggers_writes_a_few_times(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixty cron triggers due at once are claimed, created, marked and their cursors saved
    in four write transactions, not four per firing: a pass's cost does not grow with the
    number of firings (the scale bench's trigger lag rests on it)."""
    cron = CronTriggerSpec(cron="0 6 * * *", params={"day": Expr("slot")})
    specs = [workflow(f"d{n}", cron, params=(param("day"),)) for n in range(60)]
    service = _service(store, *specs)
    service.tick(T0)  # first sight, the repair pass and the alert scan
    writes = _count_writes(store, monkeypatch)
    fired = service.tick(SLOT + 0.2)
    assert len(fired) == 60 and len({f.run_id for f in fired}) == 60
    assert len(writes) <= 4, writes
    assert sorted(r.workflow for r in store.list_runs(limit=1000)) == sorted(s.name for s in specs)
    firings = SQLTriggerStore(store).firings(limit=1000)
    assert {f.status for f in firings} == {CREATED} and len(firings) == 60
    writes.clear()
    assert service.tick(SLOT + 1) == [] and writes == []  # nothing due: nothing written


def test_a_launch_the_store_rejects_fails_alone(store: SQLStore) -> None:
    """One firing whose rows cannot be stored (a label that is not JSON) is left out and
    logged; the other firings of the same pass start their runs."""
    from kaon.triggers.catalog import ActiveWorkflow, Launch, launch_all

    spec = workflow("batch")
    active = ActiveWorkflow("batch", spec)
    good = [Launch(active, "t", f"k{n}", {}, {"trigger": "cron"}, T0) for n in range(3)]
    bad = Launch(active, "t", "bad", {}, {"trigger": "cron", "day": dt.date(2024, 5, 1)}, T0)
    created = launch_all(store, SQLTriggerStore(store), [good[0], bad, *good[1:]], now=T0)
    assert [item.key for item, _ in created] == ["k0", "k1", "k2"]
    assert len(runs_of(store, "batch")) == 3
    claimed = {f.dedupe_key: f.status for f in SQLTriggerStore(store).firings()}
    assert claimed == {"k0": CREATED, "k1": CREATED, "k2": CREATED}


def test_state_is_saved_after_the_claims_so_a_failed_pass_fires_later(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass whose launch fails (the store down) advances no cron cursor: the next pass
    fires the slot."""
    from kaon.errors import StoreUnavailableError

    spec = workflow("daily", CronTriggerSpec(cron="0 6 * * *"))
    service = _service(store, spec)
    service.tick(T0)
    claim = SQLTriggerStore.claim_firings

    def down(self: SQLTriggerStore, records: list[FiringRecord]) -> list[FiringRecord]:
        raise StoreUnavailableError("the database is down")

    monkeypatch.setattr(SQLTriggerStore, "claim_firings", down)
    with pytest.raises(StoreUnavailableError):
        service.tick(SLOT + 0.1)
    monkeypatch.setattr(SQLTriggerStore, "claim_firings", claim)
    (fired,) = service.tick(SLOT + 0.5)
    assert fired.key == "2024-05-01T06:00:00+00:00"
    assert len(runs_of(store, "daily")) == 1


def test_firings_claimed_by_a_pass_the_store_failed_start_a_second_later(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claims were written, then the store failed for a moment (a dead connection after a
    database restart) as the runs were created: a repair one second later creates them, not
    the one that waits 30 s for a crashed server's claims; their lag is reported."""
    from kaon.errors import StoreUnavailableError

    spec = workflow("daily", CronTriggerSpec(cron="0 6 * * *"))
    lags: list[tuple[str, float]] = []
    service = _service(store, spec, lags=lags)
    service.tick(T0)
    write = SQLStore.write

    def down_for_runs(self: SQLStore, batch: WriteBatch) -> None:
        if batch.runs:
            raise StoreUnavailableError("the server closed the connection unexpectedly")
        write(self, batch)

    monkeypatch.setattr(SQLStore, "write", down_for_runs)
    with pytest.raises(StoreUnavailableError):
        service.tick(SLOT + 0.1)
    monkeypatch.setattr(SQLStore, "write", write)
    assert runs_of(store, "daily") == []
    assert [f.status for f in SQLTriggerStore(store).firings()] == [CLAIMED]
    service.tick(SLOT + 1.2)
    (run,) = runs_of(store, "daily")
    assert run.labels["slot"] == "2024-05-01T06:00:00+00:00"
    assert lags == [("daily/cron", pytest.approx(1.2))]
    assert service.tick(SLOT + 2.0) == [] and len(runs_of(store, "daily")) == 1


def test_the_loop_wakes_when_a_slot_falls_due(store: SQLStore) -> None:
    """Between passes the loop waits the interval, or less when a cron slot falls due
    sooner; an overdue slot (a failing trigger) does not make it spin."""
    now = [T0]
    service = _service(
        store, workflow("daily", CronTriggerSpec(cron="0 6 * * *")), clock=lambda: now[0]
    )
    service.tick()
    assert service._until_due(0.25) == 0.25  # the slot is a minute away
    now[0] = SLOT - 0.1
    assert service._until_due(0.25) == pytest.approx(0.1)
    now[0] = SLOT + 5  # overdue and not fired yet
    assert service._until_due(0.25) == 0.25


def test_a_data_trigger_that_cannot_poll_fails_alone(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An S3 endpoint that refuses connections (``$KAON_S3_ENDPOINT_URL``, as the artifact
    store uses) is a warning for that trigger; the cron trigger of the same pass fires."""
    pytest.importorskip("s3fs")
    monkeypatch.setenv("KAON_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    data = workflow("landing", DataTriggerSpec(path="s3://landing/{date}/_SUCCESS", poll_s=1))
    cron = workflow("daily", CronTriggerSpec(cron="0 6 * * *"))
    service = _service(store, data, cron)
    service.tick(T0)
    caplog.clear()
    started = time.monotonic()
    with caplog.at_level("WARNING"):
        fired = service.tick(SLOT + 1)
    assert [f.workflow for f in fired] == ["daily"]
    assert time.monotonic() - started < 20
    (warning,) = [r.getMessage() for r in caplog.records if "landing" in r.getMessage()]
    assert "cannot poll 's3://landing/" in warning and "127.0.0.1:9" in warning


@pytest.mark.parametrize("restarted", [False, True], ids=["same-service", "after-a-restart"])
def test_a_rollback_to_another_schedule_fires_no_burst(store: SQLStore, restarted: bool) -> None:
    """v2 fires at 02:30, then v3 at 03:00 for two days, then v2 is active again: its 02:30
    slots of those days belonged to v3's time (each day's job ran at 03:00); v2 starts from
    its activation, as a trigger seen for the first time does."""
    day = 86400.0
    v2 = workflow("nightly", CronTriggerSpec(cron="30 2 * * *", catchup=CatchUp.ALL))
    v3 = workflow("nightly", CronTriggerSpec(cron="0 3 * * *", catchup=CatchUp.ALL))
    base = dt.datetime(2024, 4, 6, 12, tzinfo=dt.UTC).timestamp()
    service = _service(store, v2)
    assert service.tick(base) == []
    service = _service(store, v3) if restarted else service
    service.catalog = StaticCatalog([v3])
    fired = [f.key[11:16] for n in range(1, 4) for f in service.tick(base + n * day)]
    assert fired == ["03:00", "03:00"]  # v3 from its first sight (day 1, noon) on
    service = _service(store, v2) if restarted else service
    service.catalog = StaticCatalog([v2])
    assert service.tick(base + 3 * day + 60) == []  # no 02:30 of the three days
    assert [f.key[11:16] for f in service.tick(base + 4 * day)] == ["02:30"]


def test_a_schedule_served_before_downtime_still_catches_up(store: SQLStore) -> None:
    cron = CronTriggerSpec(cron="0 * * * *", catchup=CatchUp.ALL, catchup_window_s=3 * 3600)
    spec = workflow("hourly", cron)
    _service(store, spec).tick(T0)
    _service(store, spec).tick(T0 + 60)  # served twice: its served set is recorded
    fired = _service(store, spec).tick(T0 + 10 * 3600 + 30)
    assert [f.key[11:16] for f in fired] == ["13:00", "14:00", "15:00"]

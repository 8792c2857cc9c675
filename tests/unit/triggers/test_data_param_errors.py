"""A data path whose parameters cannot be computed starts no run and is given up once; the
trigger's other paths still fire (it used to stop the poll, on every poll, forever)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from triggers_support import param, runs_of, workflow

from kaon.model.specs import Expr
from kaon.model.triggers import DataTriggerSpec
from kaon.store.sql import SQLStore
from kaon.store.triggers import DROPPED, SQLTriggerStore
from kaon.triggers.catalog import StaticCatalog
from kaon.triggers.service import TriggerService

NOW = dt.datetime(2024, 5, 2, 12, tzinfo=dt.UTC).timestamp()


def test_a_path_whose_params_fail_does_not_hold_up_the_others(
    store: SQLStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lake = tmp_path / "lake"
    for part in ("a-bad", "b", "c"):  # listed in this order: the failing one first
        (lake / "2024-05-02" / part).mkdir(parents=True)
        (lake / "2024-05-02" / part / "_SUCCESS").write_text("")
    # Valid when checked, fails at run time for the path that holds "bad" only.
    shard = Expr("path.contains('bad') ? int(path) : path")
    trigger = DataTriggerSpec(path=f"{lake}/{{date}}/*/_SUCCESS", poll_s=1, params={"shard": shard})
    spec = workflow("loader", trigger, params=(param("shard"),))
    service = TriggerService(
        store, StaticCatalog([spec]), clock=lambda: NOW, on_lag=None, with_alerts=False
    )
    with caplog.at_level(logging.WARNING, logger="kaon.triggers"):
        fired = service.tick(NOW)
        for n in range(1, 6):  # later polls: nothing more, and the bad path not said again
            assert service.tick(NOW + 1.5 * n) == []
    assert sorted(f.key[-11:] for f in fired) == ["/b/_SUCCESS", "/c/_SUCCESS"]
    assert sorted(r.params["shard"][-11:] for r in runs_of(store, "loader")) == [
        "/b/_SUCCESS",
        "/c/_SUCCESS",
    ]
    warnings = [r.getMessage() for r in caplog.records if "a-bad" in r.getMessage()]
    assert len(warnings) == 1, warnings
    (dropped,) = SQLTriggerStore(store).firings(statuses=[DROPPED], limit=10)
    assert dropped.dedupe_key.endswith("a-bad/_SUCCESS") and "int(path)" in (dropped.error or "")

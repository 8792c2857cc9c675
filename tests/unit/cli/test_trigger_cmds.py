"""`kaon backfill`, `backfills`, `backfill-cancel`, `triggers`, `firings`, `unblock` on a
local store."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaon.cli.main import app

DAILY = textwrap.dedent(
    """
    name: daily
    params:
      day: {type: str, default: ""}
      n: {type: int, default: 0}
    steps:
      - id: echo
        shell: echo hi
    triggers:
      - cron: "0 6 * * *"
        params: {day: "${{ slot }}"}
    """
)


@pytest.fixture
def kaon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KAON_URL", raising=False)
    runner = CliRunner()
    file = tmp_path / "daily.yaml"
    file.write_text(DAILY)

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    assert invoke("push", str(file))[0] == 0
    return invoke


def test_backfill_commands(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, err = kaon(
        "backfill", "daily", "--start", "2024-01-01", "--end", "2024-01-10", "-c", "3",
        "-p", "n=5", "--json",
    )  # fmt: skip
    assert code == 0, err
    view = json.loads(out)
    assert (view["total"], view["concurrency"], view["status"]) == (10, 3, "running")
    code, out, _ = kaon("backfills")
    assert code == 0 and view["id"] in out and "0/10 started" in out
    code, out, _ = kaon("backfill-cancel", view["id"], "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"
    code, _, err = kaon("backfill-cancel", view["id"])
    assert code == 2 and "already cancelled" in err


def test_bad_backfill_arguments(kaon) -> None:  # type: ignore[no-untyped-def]
    code, _, err = kaon("backfill", "daily", "--start", "2024-01-05", "--end", "2024-01-01")
    assert code == 2 and "end is before its start" in err
    code, _, err = kaon("backfill", "nope", "--start", "2024-01-01", "--end", "2024-01-02")
    assert code == 2 and "nope" in err


def test_triggers_and_unblock(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kaon("triggers", "--json")
    assert code == 0
    (trigger,) = json.loads(out)
    assert trigger["description"] == "cron 0 6 * * * UTC" and trigger["next_due"]
    code, out, _ = kaon("unblock", "daily")
    assert code == 0 and "was not blocked" in out


def test_firings_lists_the_trigger_history(kaon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What fired, newest first, with the run it started or why it started none."""
    from kaon.store import open_store
    from kaon.store.sql import SQLStore
    from kaon.store.triggers import CREATED, DROPPED, FiringRecord, SQLTriggerStore

    code, out, _ = kaon("firings")
    assert code == 0 and "no firings" in out
    store = open_store(f"sqlite:///{tmp_path / 'home' / 'kaon.db'}")
    assert isinstance(store, SQLStore)
    try:
        slot = {"trigger": "cron", "slot": "2024-01-01T06:00:00+00:00"}
        ran = FiringRecord("daily:cron:1", "a", "daily", "run-1", CREATED, labels=slot)
        failed = FiringRecord("daily:cron:1", "b", "daily", "run-2", DROPPED, labels=slot)
        failed.error = "params.n: parameter 'n' must be of type int"
        SQLTriggerStore(store).claim_firings([ran, failed])
    finally:
        store.close()
    code, out, _ = kaon("firings", "--workflow", "daily")
    assert code == 0, out
    first, second = out.strip().splitlines()
    assert "dropped" in first and "must be of type int" in first
    assert "created" in second and "run-1" in second and "slot 2024-01-01T06:00" in second
    code, out, _ = kaon("firings", "--status", "dropped", "--json")
    assert code == 0 and [f["status"] for f in json.loads(out)] == ["dropped"]
    code, _, err = kaon("firings", "--status", "lost")
    assert code == 2 and "unknown firing status 'lost'" in err

"""Triggers against a real ``kaon server`` process: cron with a fake clock, signals, a
backfill of 30 slots, and each run strategy, driven through HTTP (and the CLI).

The server reads its trigger clock from the file named by ``KAON_FAKE_CLOCK_FILE``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ServerProcess, start_server

pytestmark = pytest.mark.integration

CRON_DAY = dt.datetime(2024, 5, 1, 6, 0, tzinfo=dt.UTC).timestamp()

WORKFLOWS = {
    "daily.yaml": """
        name: daily
        params:
          day: {type: str, default: ""}
        steps:
          - id: echo
            shell: echo "$KAON_PARAMS"
        triggers:
          - cron: "0 6 * * *"
            params: {day: "${{ slot }}"}
    """,
    "on_ready.yaml": """
        name: on_ready
        params:
          path: {type: str, default: ""}
        steps:
          - id: echo
            shell: echo "$KAON_PARAMS"
        triggers:
          - signal: data_ready
            match: signal.region == 'eu'
            params: {path: "${{ signal.path }}"}
    """,
    "hourly.yaml": """
        name: hourly
        params:
          slot: {type: str, default: ""}
        steps:
          - id: echo
            shell: echo "$KAON_PARAMS"
        triggers:
          - cron: "0 * * * *"
            params: {slot: "${{ slot }}"}
    """,
    "job.yaml": """
        name: job
        params:
          seconds: {type: float, default: 0.0}
          code: {type: int, default: 0}
        steps:
          - id: work
            shell: sleep $KAON_INPUT_SECONDS; exit $KAON_INPUT_CODE
            inputs: {seconds: "${{ params.seconds }}", code: "${{ params.code }}"}
    """,
}


@pytest.fixture
def clock(tmp_path: Path) -> Path:
    file = tmp_path / "clock"
    file.write_text(str(CRON_DAY - 3600))
    return file


@pytest.fixture
def server(tmp_path: Path, clock: Path) -> Iterator[ServerProcess]:
    running = start_server(tmp_path / "home", env={"KAON_FAKE_CLOCK_FILE": str(clock)})
    try:
        client = running.client()
        for name, text in WORKFLOWS.items():
            body = {"source": textwrap.dedent(text), "file_name": name}
            answer = client.post("/workflows", json=body)
            assert answer.status_code == 200, answer.text
        yield running
    finally:
        code = running.stop()
        assert code == 0, running.logs()


def until(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def runs(client: httpx.Client, workflow: str) -> list[dict[str, Any]]:
    found = client.get("/runs", params={"workflow": workflow, "limit": 1000}).json()
    return sorted(found, key=lambda r: (r["created_at"], r["id"]))


def finished(client: httpx.Client, workflow: str, count: int) -> list[dict[str, Any]] | None:
    found = runs(client, workflow)
    done = [r for r in found if r["status"] in ("succeeded", "failed", "cancelled")]
    return found if len(found) >= count and len(done) == len(found) else None


def test_cron_fires_when_the_fake_clock_reaches_the_slot(
    server: ServerProcess, clock: Path
) -> None:
    client = server.client()
    until(lambda: client.get("/triggers", params={"workflow": "daily"}).json(), what="triggers")
    (trigger,) = client.get("/triggers", params={"workflow": "daily"}).json()
    assert trigger["next_due"] == "2024-05-01T06:00:00+00:00"
    time.sleep(1.0)  # the trigger loop has seen the workflow before the slot
    assert runs(client, "daily") == []
    clock.write_text(str(CRON_DAY + 0.5))
    (run,) = until(lambda: finished(client, "daily", 1), what="the cron run")
    assert run["status"] == "succeeded"
    assert run["params"] == {"day": "2024-05-01T06:00:00+00:00"}
    # recorded by the trigger loop's process, reported to the API's
    until(
        lambda: 'kaon_trigger_lag_seconds_max{trigger="daily/cron"}' in client.get("/metrics").text,
        what="the trigger's lag in /metrics",
    )
    assert "kaon_trigger_lag_seconds_count 0.0" not in client.get("/metrics").text


def test_signal_triggered_runs(server: ServerProcess) -> None:
    client = server.client()
    time.sleep(1.0)  # the trigger sees the workflow: signals from now on count
    for region, path in (("us", "/us/1"), ("eu", "/eu/1"), ("eu", "/eu/2")):
        body = {"name": "data_ready", "params": {"region": region, "path": path}}
        assert client.post("/signals", json=body).status_code == 201
    assert server.cli("signal", "data_ready", "region=eu", "path=/eu/3").returncode == 0
    found = until(lambda: finished(client, "on_ready", 3), what="signal runs")
    time.sleep(0.5)
    found = runs(client, "on_ready")
    assert sorted(r["params"]["path"] for r in found) == ["/eu/1", "/eu/2", "/eu/3"]
    assert all(r["status"] == "succeeded" for r in found)


def test_backfill_of_30_slots(server: ServerProcess) -> None:
    client = server.client()
    body = {
        "workflow": "hourly",
        "start": "2024-01-01T00:00",
        "end": "2024-01-02T05:00",
        "concurrency": 5,
    }
    answer = client.post("/backfills", json=body)
    assert answer.status_code == 201, answer.text
    backfill = answer.json()
    assert backfill["total"] == 30
    done = until(
        lambda: (
            (b := client.get(f"/backfills/{backfill['id']}").json())["status"] == "finished" and b
        ),
        timeout=120,
        what="the backfill",
    )
    assert done["started"] == 30
    found = runs(client, "hourly")
    assert len(found) == 30 and all(r["status"] == "succeeded" for r in found)
    slots = sorted(r["params"]["slot"] for r in found)
    assert slots[0] == "2024-01-01T00:00:00+00:00" and slots[-1] == "2024-01-02T05:00:00+00:00"
    # Never more than 5 at once: no instant is inside more than 5 runs.
    spans = [(r["started_at"], r["ended_at"]) for r in found]
    assert max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans) <= 5
    listed = server.cli("backfills", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["id"] == backfill["id"]


def _strategy(client: httpx.Client, strategy: str, **more: Any) -> None:
    properties = {"run_strategy": strategy, **more}
    answer = client.patch("/workflows/job", json={"properties": properties})
    assert answer.status_code == 200, answer.text


def _start(client: httpx.Client, seconds: float = 0.0, code: int = 0) -> str:
    answer = client.post(
        "/runs", json={"workflow": "job", "params": {"seconds": seconds, "code": code}}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _status(client: httpx.Client, run_id: str) -> str:
    return str(client.get(f"/runs/{run_id}").json()["status"])


def _overlap(found: list[dict[str, Any]]) -> int:
    spans = [(r["started_at"], r["ended_at"]) for r in found if r["started_at"]]
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


def test_parallel_with_concurrency(server: ServerProcess) -> None:
    client = server.client()
    _strategy(client, "parallel", concurrency=2)
    for _ in range(5):
        _start(client, 0.5)
    found = until(lambda: finished(client, "job", 5), what="runs")
    assert all(r["status"] == "succeeded" for r in found)
    assert _overlap(found) == 2


def test_sequential(server: ServerProcess) -> None:
    client = server.client()
    _strategy(client, "sequential")
    ids = [_start(client, 0.3) for _ in range(3)]
    found = until(lambda: finished(client, "job", 3), what="runs")
    assert [r["id"] for r in found] == ids
    for before, after in itertools.pairwise(found):
        assert after["started_at"] >= before["ended_at"]


def test_strict_sequential_and_unblock(server: ServerProcess) -> None:
    client = server.client()
    _strategy(client, "strict_sequential")
    failing = _start(client, 0.0, code=3)
    until(lambda: _status(client, failing) == "failed", what="failure")
    waiting = _start(client)
    time.sleep(1.5)
    assert _status(client, waiting) == "pending"
    unblocked = server.cli("unblock", "job", "--json")
    assert unblocked.returncode == 0, unblocked.stderr
    assert json.loads(unblocked.stdout) == {"workflow": "job", "was_blocked": True}
    until(lambda: _status(client, waiting) == "succeeded", what="the unblocked run")


def test_first_only(server: ServerProcess) -> None:
    client = server.client()
    _strategy(client, "first_only")
    first = _start(client, 3.0)
    until(lambda: _status(client, first) == "running", what="first running")
    second = _start(client)
    until(lambda: _status(client, second) == "cancelled", what="second dropped")
    assert client.get(f"/runs/{second}").json()["error"] == "dropped by first-only strategy"
    until(lambda: _status(client, first) == "succeeded", what="first done")


def test_last_only(server: ServerProcess) -> None:
    client = server.client()
    _strategy(client, "last_only")
    first = _start(client, 60.0)
    until(lambda: _status(client, first) == "running", what="first running")
    second = _start(client)
    until(lambda: _status(client, second) == "succeeded", what="newest done")
    assert _status(client, first) == "cancelled"

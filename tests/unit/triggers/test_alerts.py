"""Alerts: webhooks to a real local HTTP receiver, with retries and backoff."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from triggers_support import register, workflow

from kaon.model.status import RunStatus
from kaon.store.base import EventRecord, RunRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore
from kaon.store.sql import SQLStore
from kaon.store.triggers import SQLTriggerStore
from kaon.triggers.alerts import AlertService, parse_deadline


class Receiver:
    """A webhook receiver on 127.0.0.1 answering the given codes in turn (then 200)."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.received: list[tuple[str, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((self.path, json.loads(body)))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def _run(store: SQLStore, run_id: str, status: RunStatus, **fields: Any) -> None:
    now = time.time()
    record = RunRecord(run_id, "alerted", "h", status, created_at=now, **fields)
    batch = WriteBatch(runs=[record])
    batch.events.append(EventRecord(run_id, "run", now, {"status": status.value}))
    store.write(batch)


def _alerts(store: SQLStore) -> AlertService:
    return AlertService(store, SQLTriggerStore(store), backoff_s=0.05, max_attempts=3)


def test_failure_alert_is_retried_until_delivered_and_recorded(
    store: SQLStore, receiver: Receiver
) -> None:
    alerts_config = {"on_failure": [receiver.url("/fail")], "on_success": receiver.url("/ok")}
    register(store, workflow("alerted"), alerts=alerts_config)
    service = _alerts(store)
    _run(store, "before", RunStatus.FAILED)
    assert service.scan(time.time()) == 0  # the first scan starts from now
    _run(store, "r1", RunStatus.FAILED, error="boom")
    _run(store, "r2", RunStatus.SUCCEEDED)
    _run(store, "r3", RunStatus.RUNNING)
    assert service.scan(time.time()) == 2
    assert service.scan(time.time()) == 0  # never twice
    receiver.codes = [500]
    assert service.deliver_due() == 1  # r2 delivered; r1 answered 500
    assert service.deliver_due() == 0  # r1 waits for its backoff
    time.sleep(0.06)
    assert service.deliver_due() == 1
    paths = [path for path, _ in receiver.received]
    assert sorted(paths) == ["/fail", "/fail", "/ok"]
    payload = next(body for path, body in receiver.received if path == "/fail")
    assert payload["alert"] == "failure" and payload["run_id"] == "r1"
    assert payload["error"] == "boom" and payload["workflow"] == "alerted"
    (delivery,) = SQLTriggerStore(store).deliveries(run_id="r1")
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 2, 200)
    events = [e.data for e in store.events("r1") if e.kind == "alert"]
    assert events == [
        {
            "alert": "failure",
            "url": receiver.url("/fail"),
            "outcome": "delivered",
            "attempts": 2,
            "response_code": 200,
            "error": None,
        }
    ]
    service.close()


def test_a_delivery_fails_for_good_after_max_attempts(store: SQLStore, receiver: Receiver) -> None:
    register(store, workflow("alerted"), alerts={"on_failure": [receiver.url("/x")]})
    service = _alerts(store)
    service.scan(time.time())
    _run(store, "r1", RunStatus.FAILED)
    service.scan(time.time())
    receiver.codes = [500, 502, 503]
    for _ in range(3):
        service.deliver_due(time.time() + 10)
    (delivery,) = SQLTriggerStore(store).deliveries(run_id="r1")
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 503")
    assert [e.data["outcome"] for e in store.events("r1") if e.kind == "alert"] == ["failed"]
    service.close()


def test_an_unreachable_url_is_retried(store: SQLStore, receiver: Receiver) -> None:
    dead = receiver.url("/x")
    receiver.close()
    register(store, workflow("alerted"), alerts={"on_failure": dead})
    service = _alerts(store)
    service.scan(time.time())
    _run(store, "r1", RunStatus.FAILED)
    service.scan(time.time())
    assert service.deliver_due() == 0
    (delivery,) = SQLTriggerStore(store).deliveries(run_id="r1")
    assert delivery.status == "pending" and delivery.attempts == 1
    assert "ConnectError" in (delivery.last_error or "")
    service.close()


def test_long_runs_and_missed_deadlines(store: SQLStore, receiver: Receiver) -> None:
    alerts_config = {
        "on_late": [receiver.url("/late")],
        "max_duration_s": 60,
        "deadline": "00:00 UTC",  # always passed: the day's run had to end by midnight
    }
    register(store, workflow("alerted"))
    now = time.time()
    # Set a day ago: today's midnight is the first deadline after it (one set after a
    # deadline passed counts from the next: tests/unit/triggers/test_alerts_late.py).
    SQLRegistryStore(store).update_workflow(
        "alerted", now - 86_400, properties={"alerts": alerts_config}
    )
    service = _alerts(store)
    _run(store, "slow", RunStatus.RUNNING, started_at=now - 120)
    _run(store, "fresh", RunStatus.RUNNING, started_at=now - 5)
    assert service.scan(now) == 2  # the slow run, and today's missed deadline
    assert service.scan(now + 1) == 0
    assert service.deliver_due() == 2
    kinds = sorted(body["alert"] for _, body in receiver.received)
    assert kinds == ["deadline", "duration"]
    service.close()


def test_a_deactivated_workflow_misses_no_deadline(store: SQLStore, receiver: Receiver) -> None:
    register(
        store,
        workflow("paused"),
        alerts={"on_late": [receiver.url("/late")], "deadline": "00:00 UTC"},
    )
    SQLRegistryStore(store).set_active("paused", None, time.time())
    service = _alerts(store)
    assert service.scan(time.time()) == 0
    service.close()


def test_parse_deadline() -> None:
    at, zone = parse_deadline("07:30 Europe/Paris")
    assert (at.hour, at.minute, str(zone)) == (7, 30, "Europe/Paris")
    assert str(parse_deadline("23:05")[1]) == "UTC"
    with pytest.raises(ValueError):
        parse_deadline("7h30 in Paris please")


def test_a_url_the_client_cannot_send_to_fails_its_delivery_not_the_pass(
    store: SQLStore, receiver: Receiver
) -> None:
    # "http://[::1" starts with http:// but is no URL: sending it raised httpx.InvalidURL,
    # which is not an httpx.HTTPError, out of the pass. The delivery kept its claim, came
    # back every 120 s to abort a pass with a traceback, and never failed nor showed up.
    broken = "http://[::1"
    register(store, workflow("alerted"), alerts={"on_failure": [broken, receiver.url("/ok")]})
    service = _alerts(store)
    service.scan(time.time())
    _run(store, "r1", RunStatus.FAILED)
    service.scan(time.time())
    assert service.deliver_due() == 1
    assert [path for path, _ in receiver.received] == ["/ok"]
    by_url = {d.url: d for d in SQLTriggerStore(store).deliveries(run_id="r1")}
    failed = by_url[broken]
    assert (failed.status, failed.attempts) == ("failed", 1)  # it cannot work: no retries
    assert failed.last_error is not None and "InvalidURL" in failed.last_error
    outcomes = [(e.data["url"], e.data["outcome"]) for e in store.events("r1") if e.kind == "alert"]
    assert sorted(outcomes) == sorted([(broken, "failed"), (receiver.url("/ok"), "delivered")])
    service.close()

"""A webhook that hangs or fails delays no other webhook's alerts.

Deliveries went out one at a time, oldest first, 100 a pass. In an alert storm each
delivery to a webhook that hangs took the client's whole timeout (10 s): the alerts of a
working webhook queued behind it for minutes (150 s for 30 failed runs on two replicas,
measured), and behind 100 or more of them were never in a pass at all until every one of
them had used up its attempts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from triggers_support import register, workflow

from kaon.model.status import RunStatus
from kaon.store.base import EventRecord, RunRecord, WriteBatch
from kaon.store.sql import SQLStore
from kaon.store.triggers import SQLTriggerStore
from kaon.triggers.alerts import AlertService

TIMEOUT_S = 0.3


class Hooks:
    """Webhooks on 127.0.0.1: ``/hang`` answers after the client gave up, ``/ok`` at once."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.release = threading.Event()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                hooks.received.append(self.path)
                if self.path == "/hang":
                    hooks.release.wait(10 * TIMEOUT_S)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    made = Hooks()
    yield made
    made.close()


def _failed_runs(store: SQLStore, count: int, workflow_name: str) -> None:
    now = time.time()
    batch = WriteBatch()
    for n in range(count):
        run_id = f"{workflow_name}-{n:04d}"
        batch.runs.append(RunRecord(run_id, workflow_name, "h", RunStatus.FAILED, created_at=now))
        batch.events.append(EventRecord(run_id, "run", now, {"status": "failed"}))
    store.write(batch)


def test_a_hanging_webhook_delays_the_others_by_one_timeout_a_pass_at_most(
    store: SQLStore, hooks: Hooks
) -> None:
    register(store, workflow("storm"), alerts={"on_failure": [hooks.url("/hang")]})
    register(store, workflow("paged"), alerts={"on_failure": [hooks.url("/ok")]})
    service = AlertService(store, SQLTriggerStore(store), timeout_s=TIMEOUT_S)
    service.scan(time.time())
    _failed_runs(store, 120, "storm")  # more than a pass lists, all due before the page
    _failed_runs(store, 3, "paged")
    assert service.scan(time.time()) == 123
    started = time.monotonic()
    assert service.deliver_due() == 3  # the page went out in this pass
    took = time.monotonic() - started
    assert hooks.received.count("/ok") == 3
    # The hanging webhook was tried once, not once per delivery: its others wait for a pass
    # of their own (each one's attempts and backoff are unchanged).
    assert hooks.received.count("/hang") == 1
    assert took < 4 * TIMEOUT_S
    pending = [d for d in SQLTriggerStore(store).deliveries(limit=200) if d.status == "pending"]
    assert len(pending) == 120 and sum(d.attempts for d in pending) == 1
    service.close()

"""A database outage is logged once by the trigger loop and the alert sender, not per pass.

Both loops logged every failed pass with its traceback: with PostgreSQL stopped for about
a minute, each of two servers wrote 1.4 MB of log (65 "trigger pass failed" and 28 "alert
delivery pass failed" tracebacks in its first 20 s), passes going on at full speed.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from kaon.errors import StoreUnavailableError
from kaon.store.sql import SQLStore
from kaon.store.triggers import AlertDeliveryRecord, SQLTriggerStore
from kaon.triggers.alerts import AlertService
from kaon.triggers.pass_failures import LONGEST_PAUSE_S, REMIND_EVERY_S, PassFailures


def test_an_outage_is_logged_when_it_starts_now_and_then_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    failures = PassFailures(logging.getLogger("kaon.test"), "a pass", 0.25, clock=lambda: now[0])
    down = StoreUnavailableError("store pg: reading failed: connection refused")
    caplog.set_level(logging.DEBUG, logger="kaon.test")
    pauses = []
    for _ in range(400):  # 100 s of failed passes
        pauses.append(failures.failed(down))
        now[0] += 0.25
    failures.succeeded()
    failures.succeeded()
    lines = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert lines == [
        ("WARNING", f"a pass: the state store is unavailable, retrying: {down}", None),
        (
            "WARNING",
            f"a pass: the state store is still unavailable after {REMIND_EVERY_S:.0f} s "
            f"(241 passes failed): {down}",
            None,
        ),
        ("INFO", "a pass: the state store answers again after 100 s (400 passes failed)", None),
    ]
    assert pauses[:4] == [0.25, 0.5, 1.0, 2.0] and max(pauses) == LONGEST_PAUSE_S
    assert failures.failed(down) == 0.25  # a new outage starts over


def test_another_failure_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    failures = PassFailures(logging.getLogger("kaon.test"), "a pass", 0.25)
    try:
        raise KeyError("bug")
    except KeyError as error:
        assert failures.failed(error) == 0.25
    (record,) = caplog.records
    assert record.getMessage() == "a pass failed" and record.exc_info is not None


def test_the_alert_sender_logs_a_store_outage_once(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    read = SQLTriggerStore.due_deliveries
    outage = threading.Event()
    outage.set()

    def due(self: SQLTriggerStore, *args: object, **kwargs: object) -> list[AlertDeliveryRecord]:
        if outage.is_set():
            raise StoreUnavailableError("store pg: reading failed: connection refused")
        return read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SQLTriggerStore, "due_deliveries", due)
    caplog.set_level(logging.INFO, logger="kaon.alerts")
    service = AlertService(store, SQLTriggerStore(store))
    stop = threading.Event()
    sender = threading.Thread(target=service.run_forever, args=(stop, 0.02))
    sender.start()
    time.sleep(0.5)  # some 25 passes at the interval
    outage.clear()
    time.sleep(0.5)
    stop.set()
    sender.join(5)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("alert delivery pass: the state store is unavailable")
    assert messages[1].startswith("alert delivery pass: the state store answers again after")
    assert all(r.exc_info is None for r in caplog.records)
    service.close()

"""Two servers on one store deliver each alert once.

Every ``kaon server`` replica runs an alert delivery thread over the shared
``alert_deliveries`` table. Before, each read the pending deliveries and POSTed them: a
delivery due while both polled (every 0.5 s, and a POST can take seconds) went out twice.
"""

from __future__ import annotations

import time

import httpx
from triggers_support import register, workflow

from kaon.model.status import RunStatus
from kaon.store.base import EventRecord, RunRecord, WriteBatch
from kaon.store.sql import SQLStore
from kaon.store.triggers import SQLTriggerStore
from kaon.triggers.alerts import AlertService

URL = "http://hooks.test/kaon"


def test_an_alert_due_on_two_replicas_is_posted_once(store: SQLStore) -> None:
    register(store, workflow("alerted"), alerts={"on_failure": [URL]})
    posted: list[str] = []
    replicas: list[AlertService] = []

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append(str(request.url))
        if len(posted) == 1:  # while the first replica's POST is in flight
            assert replicas[1].deliver_due() == 0
        return httpx.Response(200)

    for _ in range(2):
        client = httpx.Client(transport=httpx.MockTransport(answer))
        replicas.append(AlertService(store, SQLTriggerStore(store), client=client))
    first = replicas[0]
    first.scan(time.time())  # the first scan starts from now
    now = time.time()
    run = RunRecord("r1", "alerted", "h", RunStatus.FAILED, created_at=now)
    store.write(
        WriteBatch(runs=[run], events=[EventRecord("r1", "run", now, {"status": "failed"})])
    )
    assert first.scan(now) == 1
    assert first.deliver_due() == 1
    assert posted == [URL]
    (delivery,) = SQLTriggerStore(store).deliveries(run_id="r1")
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert replicas[1].deliver_due(time.time() + 3600) == 0  # delivered: never again


def test_a_delivery_claimed_by_a_replica_that_died_is_sent_later(store: SQLStore) -> None:
    register(store, workflow("alerted"), alerts={"on_failure": [URL]})
    posted: list[str] = []
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: posted.append("x") or httpx.Response(200))
    )
    service = AlertService(store, SQLTriggerStore(store), client=client, timeout_s=10.0)
    service.scan(time.time())
    now = time.time()
    run = RunRecord("r1", "alerted", "h", RunStatus.FAILED, created_at=now)
    store.write(
        WriteBatch(runs=[run], events=[EventRecord("r1", "run", now, {"status": "failed"})])
    )
    service.scan(now)
    (due,) = SQLTriggerStore(store).due_deliveries(time.time())
    # A replica claimed it and died before it could record the outcome.
    assert SQLTriggerStore(store).claim_delivery(due, until=time.time() + 30)
    assert service.deliver_due() == 0  # claimed: not sent again meanwhile
    assert service.deliver_due(time.time() + 31) == 1  # the claim ran out: sent
    assert len(posted) == 1


def test_a_claim_lasts_its_length_from_when_it_is_taken_not_from_the_pass_start(
    store: SQLStore,
) -> None:
    # A pass lists its due deliveries, then claims and POSTs them one by one. Each claim ran
    # from the pass's start: behind a slow webhook, a later delivery's claim had run out
    # before its POST began, and another replica took it and POSTed it too.
    slow, fast = "http://hooks.test/slow", "http://hooks.test/fast"
    register(store, workflow("alerted"), alerts={"on_failure": [slow, fast]})
    posted: list[str] = []
    replicas: list[AlertService] = []

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append(str(request.url))
        if str(request.url) == slow:
            time.sleep(0.4)  # longer than a claim lasts
        elif len(replicas) == 2:  # while the first replica POSTs the fast one
            assert replicas[1].deliver_due() == 0
        return httpx.Response(200)

    for _ in range(2):
        client = httpx.Client(transport=httpx.MockTransport(answer))
        replicas.append(AlertService(store, SQLTriggerStore(store), client=client, claim_s=0.3))
    first = replicas[0]
    first.scan(time.time())
    now = time.time()
    run = RunRecord("r1", "alerted", "h", RunStatus.FAILED, created_at=now)
    store.write(
        WriteBatch(runs=[run], events=[EventRecord("r1", "run", now, {"status": "failed"})])
    )
    assert first.scan(now) == 2
    assert first.deliver_due() == 2
    assert posted == [slow, fast]

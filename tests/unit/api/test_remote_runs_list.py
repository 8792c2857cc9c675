"""``kaon runs -n N`` against a server lists N runs, as it does locally.

The command takes ``--limit`` up to 10,000 (``kaon runs -s failed -n 5000``, in an
incident) while ``GET /runs`` answers at most 1,000 a page: against a server, anything over
1,000 ended in ``error: query.limit: Input should be less than or equal to 1000``. The
client now follows the pages.
"""

from __future__ import annotations

from typing import Any

from kaon.api.deps import Services
from kaon.model.status import RunStatus
from kaon.service.limits import MAX_RUNS_LISTED, MAX_RUNS_PAGE
from kaon.service.remote import RemoteService
from kaon.store.base import RunRecord, WriteBatch

RUNS = 2 * MAX_RUNS_PAGE + 50


def test_a_list_longer_than_a_page_follows_the_pages(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    runs = [
        RunRecord(f"r{n:05d}", "wf", "h", RunStatus.FAILED, created_at=float(n))
        for n in range(RUNS)
    ]
    services.store.write(WriteBatch(runs=runs))
    remote = RemoteService("http://testserver", token=tokens["viewer"], transport=client._transport)
    newest_first = [f"r{n:05d}" for n in reversed(range(RUNS))]
    found = remote.list_runs(status="failed", limit=MAX_RUNS_LISTED)
    assert [v.id for v in found] == newest_first
    found = remote.list_runs(limit=MAX_RUNS_PAGE + 10, offset=5)
    assert [v.id for v in found] == newest_first[5 : 5 + MAX_RUNS_PAGE + 10]
    assert [v.id for v in remote.list_runs(limit=3)] == newest_first[:3]

"""Following a run on a server rides out the server restarting: its stream ends, it refuses
connections, then answers 503 while its store opens. ``kaon run``/``watch`` exited at the
first refused connection ("cannot reach the Kaon server"), while the run went on there."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kaon.api.deps import Services
from kaon.model.status import RunStatus
from kaon.service import remote as remote_module
from kaon.service.remote import RemoteService

HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


class _Restarting(httpx.BaseTransport):
    """The app, after ``refusals`` refused connections then ``unavailable`` 503 answers."""

    def __init__(self, inner: httpx.BaseTransport, refusals: int, unavailable: int) -> None:
        self.inner = inner
        self.refusals = refusals
        self.unavailable = unavailable

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.refusals:
            self.refusals -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if self.unavailable:
            self.unavailable -= 1
            body = {"error": "StoreUnavailableError", "message": "the store is briefly down"}
            return httpx.Response(503, json=body, headers={"Retry-After": "1"})
        return self.inner.handle_request(request)


def test_following_a_run_rides_out_a_server_restart(
    client: Any, services: Services, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    assert client.post("/workflows", json={"source": HELLO, "file_name": "h.yaml"}, headers=owner)
    started = client.post("/runs", json={"workflow": "hello"}, headers=owner).json()
    assert services.runs.execute(started["id"]) is RunStatus.SUCCEEDED
    transport = _Restarting(client._transport, refusals=3, unavailable=2)
    remote = RemoteService("http://testserver", token=tokens["viewer"], transport=transport)
    assert remote.follow(started["id"]) is RunStatus.SUCCEEDED
    assert transport.refusals == transport.unavailable == 0


def test_a_server_gone_for_good_is_named_after_the_outage_budget(
    client: Any, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaon.errors import ConfigurationError

    monkeypatch.setattr(remote_module, "FOLLOW_OUTAGE_S", 1.0)
    transport = _Restarting(client._transport, refusals=10_000, unavailable=0)
    remote = RemoteService("http://testserver", token=tokens["viewer"], transport=transport)
    with pytest.raises(ConfigurationError, match=r"lost the Kaon server .* for 1 s.*kaon watch"):
        remote.follow("some-run")

"""The remote client's POSTs that create something (a run, a signal, a version) are sent
with an Idempotency-Key and sent again with it when the answer is lost: the server acts
once. A lost answer was "cannot reach the Kaon server", and a user retrying by hand created
a second run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kaon.api.deps import Services
from kaon.service import remote as remote_module
from kaon.service.remote import RemoteService

HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


class _LosesFirstAnswers(httpx.BaseTransport):
    """Hands each request to the app, then loses the answer of the first ``lose`` POSTs (a
    read timeout after the server did the work), as a flaky network does."""

    def __init__(self, inner: httpx.BaseTransport, lose: int) -> None:
        self.inner = inner
        self.lose = lose
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers.get("Idempotency-Key"))
            if self.lose:
                self.lose -= 1
                response.read()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_module, "RETRY_PAUSES_S", (0.0, 0.0, 0.0, 0.0))


def _remote(client: Any, token: str, lose: int) -> tuple[RemoteService, _LosesFirstAnswers]:
    transport = _LosesFirstAnswers(client._transport, lose)
    return RemoteService("http://testserver", token=token, transport=transport), transport


def test_a_run_whose_answer_is_lost_is_created_once(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    assert client.post("/workflows", json={"source": HELLO, "file_name": "h.yaml"}, headers=owner)
    remote, transport = _remote(client, tokens["operator"], lose=2)
    view = remote.start_run("hello", {})
    assert [r.id for r in services.store.list_runs(workflow="hello")] == [view.id]
    assert len(transport.keys) == 3 and len(set(transport.keys)) == 1 and transport.keys[0]
    again = remote.start_run("hello", {})  # a new call is a new key: a second run
    assert again.id != view.id


def test_a_signal_whose_answer_is_lost_is_stored_once(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    remote, _ = _remote(client, tokens["operator"], lose=1)
    sent = remote.send_signal("landed", {"day": 1})
    assert [s.id for s in services.store.signals(name="landed")] == [sent.id]


def test_an_answer_lost_every_time_is_cannot_reach(client: Any, tokens: dict[str, str]) -> None:
    from kaon.errors import ConfigurationError

    remote, transport = _remote(client, tokens["operator"], lose=99)
    with pytest.raises(ConfigurationError, match="cannot reach the Kaon server"):
        remote.send_signal("landed", {})
    assert len(transport.keys) == 5  # the first try and four more, with one key

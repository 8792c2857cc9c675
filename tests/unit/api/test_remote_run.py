"""kaon.start(url=...): a run on a server, steered through its HTTP API."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.client import _start_remote
from kaon.model.status import RunStatus
from kaon.remote_run import RemoteRunHandle
from kaon.service.remote import RemoteService

HELLO = (
    "name: hello\nparams:\n  n: {type: int, default: 2}\nsteps:\n  - id: a\n    shell: echo hi\n"
)


@pytest.fixture
def remote(client: Any, tokens: dict[str, str]) -> RemoteService:
    """A RemoteService whose HTTP calls reach the app in process."""
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    pushed = client.post("/workflows", json={"source": HELLO, "file_name": "h.yaml"}, headers=owner)
    assert pushed.is_success
    return RemoteService("http://testserver", token=tokens["operator"], transport=client._transport)


def test_remote_handle_waits_pauses_and_continues(
    remote: RemoteService, services: Services
) -> None:
    view = remote.start_run("hello", {}, breakpoints=["a"])
    handle = RemoteRunHandle(remote, view.id)
    assert handle.status == "pending"
    with pytest.raises(TimeoutError):
        handle.wait(timeout=0.1)
    result: dict[str, RunStatus] = {}
    engine = threading.Thread(target=lambda: result.update(s=services.runs.execute(view.id)))
    engine.start()  # the server's engine
    assert handle.wait(timeout=20) == "paused"
    assert [s.path for s in handle.paused()] == ["a"]
    handle.resume(params={"n": 5})
    engine.join(30)
    assert handle.wait(timeout=5) == "succeeded" and result["s"] is RunStatus.SUCCEEDED
    assert [line.text for line in handle.logs("a")] == ["hi"]
    assert handle.detail().params == {"n": 5}
    assert handle.restart(from_step="a").status == "pending"  # queued for the engine
    assert handle.kill() == "cancelled"


def test_start_with_url_starts_the_registered_workflow(remote: RemoteService) -> None:
    handle = _start_remote(remote, "hello", False, (), ["a:after"], {"n": 3})
    assert isinstance(handle, RemoteRunHandle)
    assert handle.status == "pending" and handle.detail().params == {"n": 3}


def test_the_last_log_id_of_a_run_is_one_call_to_the_server(
    remote: RemoteService, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``kaon restart --url`` starts its log tail: the run summary's ``last_log_id``,
    one HTTP call, not a page of the log per 200 lines."""
    view = remote.start_run("hello", {})
    assert remote.last_log_id(view.id) == 0
    assert services.runs.execute(view.id) is RunStatus.SUCCEEDED
    calls: list[str] = []
    call = remote._call

    def counted(method: str, path: str, **kwargs: Any) -> Any:
        calls.append(path)
        return call(method, path, **kwargs)

    monkeypatch.setattr(remote, "_call", counted)
    (line,) = remote.log_window(view.id, "a").lines
    calls.clear()
    assert remote.last_log_id(view.id) == line.id and calls == [f"/runs/{view.id}/summary"]

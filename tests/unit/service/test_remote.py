"""RemoteService over a mocked transport: error mapping and following a run's events."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from kaon.errors import (
    AuthenticationError,
    ConfigurationError,
    DefinitionError,
    InvalidActionError,
    KaonError,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
)
from kaon.model.status import RunStatus
from kaon.service.remote import RemoteService, raise_for_answer
from kaon.store.base import EventRecord


def answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", "http://k/x"))


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (401, "AuthenticationError", AuthenticationError),
        (403, "PermissionDeniedError", PermissionDeniedError),
        (404, "NotFoundError", NotFoundError),
        (409, "InvalidActionError", InvalidActionError),
        (400, "ConfigurationError", ConfigurationError),
        (500, "OSError", KaonError),
    ],
)
def test_error_answers_become_kaon_errors(status: int, kind: str, expected: type) -> None:
    with pytest.raises(expected, match="it went wrong"):
        raise_for_answer(answer(status, {"error": kind, "message": "it went wrong"}))


def test_422_keeps_problems_and_their_locations() -> None:
    body = {
        "error": "ParameterError",
        "message": "x",
        "problems": [{"message": "must be int", "file": None, "line": None, "field": "params.n"}],
    }
    with pytest.raises(ParameterError) as caught:
        raise_for_answer(answer(422, body))
    assert caught.value.problems[0].location.field == "params.n"
    with pytest.raises(DefinitionError, match=r"f\.yaml:3"):
        raise_for_answer(
            answer(
                422,
                {
                    "error": "DefinitionError",
                    "message": "m",
                    "problems": [{"message": "bad", "file": "f.yaml", "line": 3, "field": None}],
                },
            )
        )
    raise_for_answer(answer(200, {}))


def _frame(event_id: int, kind: str, data: dict[str, Any]) -> str:
    payload = {"id": event_id, "run_id": "r1", "kind": kind, "at": 1.0, "data": data}
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(payload)}\n\n"


def test_execute_follows_events_until_the_run_ends() -> None:
    statuses = iter(["pending", "succeeded", "succeeded"])
    seen_auth: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_auth.append(request.headers.get("authorization"))
        if request.url.path in ("/runs/r1", "/runs/r1/summary"):  # summary: O(1) in run size
            view = {"id": "r1", "workflow": "w", "status": next(statuses), "created_at": 1.0}
            return httpx.Response(200, json=view)
        assert request.url.path == "/events" and request.url.params["run_id"] == "r1"
        stream = ": connected\n\n" + _frame(1, "run", {"status": "running"})
        stream += _frame(2, "step", {"path": "a", "status": "succeeded"})
        stream += _frame(3, "run", {"status": "succeeded"})
        return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"})

    received: list[EventRecord] = []
    remote = RemoteService("http://k", token="secret", transport=httpx.MockTransport(handler))
    with remote:
        status = remote.execute("r1", listener=received.extend)
    assert status is RunStatus.SUCCEEDED
    assert [(e.id, e.kind) for e in received] == [(1, "run"), (2, "step"), (3, "run")]
    assert set(seen_auth) == {"Bearer secret"}


def test_execute_follows_a_run_that_finished_before_it_could_be_resumed() -> None:
    """The server's engine may finish the run between the status read and the resume."""
    statuses = iter(["running", "succeeded", "succeeded", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in ("/runs/r1", "/runs/r1/summary"):
            view = {"id": "r1", "workflow": "w", "status": next(statuses), "created_at": 1.0}
            return httpx.Response(200, json=view)
        if request.url.path == "/runs/r1/resume":
            body = {"error": "InvalidActionError", "message": "run r1 is succeeded"}
            return httpx.Response(409, json=body)
        stream = ": connected\n\n" + _frame(1, "run", {"status": "succeeded"})
        return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"})

    with RemoteService("http://k", transport=httpx.MockTransport(handler)) as remote:
        assert remote.execute("r1") is RunStatus.SUCCEEDED


def test_unreachable_server_is_a_configuration_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    remote = RemoteService("http://k", token="", transport=httpx.MockTransport(refuse))
    with remote, pytest.raises(ConfigurationError, match="cannot reach the Kaon server"):
        remote.list_runs()


def test_paused_steps_are_read_from_the_server() -> None:
    """``kaon paused RUN`` with KAON_URL reads ``GET /runs/RUN/paused`` (it opened the local
    store, which a server's user does not have)."""
    held = [{"path": "train", "moment": "before", "inputs": {}, "outputs": {}}]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/runs/r1/paused"
        return httpx.Response(200, json=held)

    with RemoteService("http://k", transport=httpx.MockTransport(handler)) as remote:
        (view,) = remote.paused_views("r1")
    assert (view.path, view.moment) == ("train", "before")

"""A ``POST /runs`` whose commit's answer the database lost (``WriteOutcomeUnknownError``: the
run may be recorded) is answered 503 saying the write may have been made, and the client's
retry with the same ``Idempotency-Key`` finds the run the first request made: the key was
dropped and the retry reserved a new run id, so a second run was created."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.errors import WriteOutcomeUnknownError

HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


def h(secret: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **extra}


def test_a_retry_after_a_lost_commit_answer_finds_the_run_it_made(
    client: Any, tokens: dict[str, str], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = h(tokens["owner"])
    pushed = client.post("/workflows", json={"source": HELLO, "file_name": "h.yaml"}, headers=owner)
    assert pushed.status_code < 300, pushed.text
    start = services.registry.start_run
    lost: list[str] = []

    def committed_then_lost(*args: Any, **kwargs: Any) -> Any:
        view = start(*args, **kwargs)  # recorded, but the commit's answer never came back
        if not lost:
            lost.append(view.id)
            raise WriteOutcomeUnknownError("store x: the connection was lost while committing")
        return view

    monkeypatch.setattr(services.registry, "start_run", committed_then_lost)
    keyed = h(tokens["owner"], **{"Idempotency-Key": "k-1"})
    first = client.post("/runs", json={"workflow": "hello"}, headers=keyed)
    assert first.status_code == 503, first.text
    assert "may have been" in first.json()["message"]
    again = client.post("/runs", json={"workflow": "hello"}, headers=keyed)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == lost[0]
    listed = client.get("/runs", params={"workflow": "hello"}, headers=owner).json()
    assert [run["id"] for run in listed] == lost

"""``DELETE /runs/{id}``: who may delete a run, what a refusal looks like, and the audit."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.api.deps import Services

FLOW = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _finished_run(client: Any, services: Services, tokens: dict[str, str]) -> str:
    owner = _bearer(tokens["owner"])
    body = {"source": FLOW, "file_name": "hello.yaml", "owner_group": "ml"}
    assert client.post("/workflows", json=body, headers=owner).is_success
    run_id = str(client.post("/runs", json={"workflow": "hello"}, headers=owner).json()["id"])
    services.runs.execute(run_id)
    return run_id


def test_an_operator_of_the_group_deletes_a_finished_run_and_it_is_audited(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    run_id = _finished_run(client, services, tokens)
    kept = _finished_run(client, services, tokens)
    operator = _bearer(tokens["operator"])

    answer = client.delete(f"/runs/{run_id[:22]}", headers=operator)  # a unique prefix
    assert answer.status_code == 204 and answer.content == b""
    assert client.get(f"/runs/{run_id}", headers=operator).status_code == 404
    assert client.get(f"/runs/{kept}", headers=operator).status_code == 200
    again = client.delete(f"/runs/{run_id}", headers=operator)
    assert again.status_code == 404 and again.json()["error"]

    audit = client.get(
        "/audit", params={"target": f"run:{run_id}"}, headers=_bearer(tokens["admin"])
    )
    entries = [(e["actor"], e["action"], e["data"]) for e in audit.json()]
    assert ("operator", "run.delete", {"workflow": "hello"}) in entries


def test_a_viewer_or_another_team_may_not_delete(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    run_id = _finished_run(client, services, tokens)
    for who in ("viewer", "stranger"):
        refused = client.delete(f"/runs/{run_id}", headers=_bearer(tokens[who]))
        assert refused.status_code == 403, who
        assert set(refused.json()) == {"error", "message", "problems"}
    assert client.get(f"/runs/{run_id}", headers=_bearer(tokens["viewer"])).status_code == 200
    assert client.delete("/runs/nope", headers=_bearer(tokens["admin"])).status_code == 404


def test_an_active_run_is_refused_with_409(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    _finished_run(client, services, tokens)
    owner = _bearer(tokens["owner"])
    pending = client.post("/runs", json={"workflow": "hello"}, headers=owner).json()["id"]
    refused = client.delete(f"/runs/{pending}", headers=owner)
    assert refused.status_code == 409
    assert "only a finished run can be deleted" in refused.json()["message"]
    assert client.get(f"/runs/{pending}", headers=owner).json()["status"] == "pending"


def test_the_remote_service_deletes_through_the_api(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    from kaon.errors import InvalidActionError, NotFoundError
    from kaon.service.remote import RemoteService

    run_id = _finished_run(client, services, tokens)
    pending = client.post("/runs", json={"workflow": "hello"}, headers=_bearer(tokens["owner"]))
    remote = RemoteService(
        "http://testserver", token=tokens["operator"], transport=client._transport
    )
    remote.delete_run(run_id)
    with pytest.raises(NotFoundError):
        remote.delete_run(run_id)
    with pytest.raises(InvalidActionError, match="finished"):
        remote.delete_run(pending.json()["id"])


def test_a_steps_run_token_cannot_delete_nor_restart_its_run_once_it_ended(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """A run token (what a step gets) stays valid for a day, and a step can leave a process
    behind in its warm worker: once its run ended, that token deleted the run (its logs and
    records, which needs an operator of the workflow's group) or restarted it again and
    again. It still reads its run."""
    assert services.auth.run_tokens is not None
    run_id = _finished_run(client, services, tokens)
    step = _bearer(services.auth.run_tokens.mint(run_id))

    refused = client.delete(f"/runs/{run_id}", headers=step)
    assert refused.status_code == 403, refused.text
    assert "while" in refused.json()["message"]
    assert client.post(f"/runs/{run_id}/restart", headers=step).status_code == 403
    assert client.get(f"/runs/{run_id}", headers=step).status_code == 200
    assert client.get(f"/runs/{run_id}", headers=_bearer(tokens["operator"])).json()["status"] == (
        "succeeded"
    )

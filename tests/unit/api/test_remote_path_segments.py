"""A run id, hash, step path or name that RemoteService puts in a route's path is one
segment, percent-encoded: ``Client(url=...).run("x?y")`` asked ``GET /runs/x?y/summary``,
i.e. the run ``x`` (a prefix: the client resolved an id that matches no run), and an empty id
or one holding ``/`` reached no route, which the client reported as "not a Kaon server's
answer" (exit 2 in the CLI) where the local client says there is no such run."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.errors import NotFoundError
from kaon.service.remote import RemoteService

FLOW = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


def _remote(client: Any, services: Services, tokens: dict[str, str]) -> tuple[RemoteService, str]:
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    body = {"source": FLOW, "file_name": "hello.yaml", "owner_group": "ml"}
    assert client.post("/workflows", json=body, headers=owner).is_success
    run_id = str(client.post("/runs", json={"workflow": "hello"}, headers=owner).json()["id"])
    services.runs.execute(run_id)
    remote = RemoteService("http://testserver", token=tokens["owner"], transport=client._transport)
    return remote, run_id


@pytest.mark.parametrize("tail", ["?x", "#x", "%3F", "/..", "/summary"])
def test_a_run_id_is_one_segment_of_the_path(
    client: Any, services: Services, tokens: dict[str, str], tail: str
) -> None:
    remote, run_id = _remote(client, services, tokens)
    with remote:
        assert remote.resolve_run_id(run_id[:10]) == run_id
        with pytest.raises(NotFoundError, match="no run matches"):
            remote.resolve_run_id(run_id[:10] + tail)
        with pytest.raises(NotFoundError):
            remote.logs(run_id, "a" + tail)
        assert [line.text for line in remote.logs(run_id, "a")] == ["hi"]


@pytest.mark.parametrize("given", ["", ".", ".."])
def test_an_empty_or_dot_name_is_not_found_as_locally(
    client: Any, services: Services, tokens: dict[str, str], given: str
) -> None:
    remote, run_id = _remote(client, services, tokens)
    with remote:
        with pytest.raises(NotFoundError):
            remote.get_run(given)
        with pytest.raises(NotFoundError):
            remote.experiments.resolve_artifact(given)
        with pytest.raises(NotFoundError):
            remote.workflow(given)
        with pytest.raises(NotFoundError):
            remote.experiments.step_outputs(run_id, given)

"""`kaon compare` given fewer than two runs is refused in the same words locally and by a
server: it said `compare needs at least two different runs` (InvalidActionError) locally,
and through the API `query.run: List should have at least 2 items after validation, not 1`
(a DefinitionError) for one run, `run: compare needs ..., got [...]` (a ParameterError) for
one run given twice. The API's schema still asks for two runs (one is not a valid request);
the client refuses one before asking, in the service's words."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.errors import ParameterError
from kaon.service.remote import RemoteService

HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


def _run(client: Any, admin: str) -> str:
    headers = {"Authorization": f"Bearer {admin}"}
    pushed = client.post(
        "/workflows", json={"source": HELLO, "file_name": "hello.yaml"}, headers=headers
    )
    assert pushed.status_code in (200, 201), pushed.text
    started = client.post("/runs", json={"workflow": "hello"}, headers=headers)
    assert started.status_code in (200, 201, 202), started.text
    return str(started.json()["id"])


@pytest.mark.parametrize("twice", [False, True])
def test_one_run_to_compare_is_refused_alike_locally_and_by_the_api(
    client: Any, services: Services, tokens: dict[str, str], twice: bool
) -> None:
    run_id = _run(client, tokens["admin"])
    given = [run_id, run_id[:12]] if twice else [run_id]
    with pytest.raises(ParameterError) as local:
        services.runs.experiments.compare(given)
    remote = RemoteService("http://testserver", token=tokens["admin"], transport=client._transport)
    with pytest.raises(ParameterError) as through_server:
        remote.experiments.compare(given)
    assert str(through_server.value) == str(local.value)
    assert "compare needs at least two different runs" in str(local.value)
    if twice:  # two prefixes of one run: a valid request, which the server refuses so
        answer = client.get(
            "/compare",
            params={"run": given},
            headers={"Authorization": f"Bearer {tokens['admin']}"},
        )
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["error"] == "ParameterError", body
        assert body["message"] == str(local.value), (body, str(local.value))

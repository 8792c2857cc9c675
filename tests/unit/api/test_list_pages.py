"""Every list route pages the same way: ``limit`` (with a documented maximum), ``before``
for a newest-first list and ``after`` for an oldest-first one, and a ``Kaon-Next`` header,
on a page after which more may remain, holding what to send back as that parameter.

``GET /backfills`` and ``GET /tokens`` answered every row at once; firings and versions said
``Kaon-Older: true``, signals ``Kaon-Scanned-To``, the audit trails and a run's events
nothing at all (a client could not tell a full last page from a page with more behind it).
"""

from __future__ import annotations

import textwrap
from typing import Any

from kaon.api.deps import Services
from kaon.service.auth import LOCAL_PRINCIPAL
from kaon.service.remote import RemoteService

HOURLY = textwrap.dedent(
    """
    name: hourly
    params:
      slot: {type: str, default: ""}
    steps:
      - id: echo
        shell: echo hi
    triggers:
      - cron: "0 * * * *"
        params: {slot: "${{ slot }}"}
    """
)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _walk(client: Any, path: str, param: str, headers: dict[str, str], **query: Any) -> list[Any]:
    """Every page of ``path`` (``limit`` in ``query``), following ``Kaon-Next`` as ``param``;
    a page without the header is the last."""
    pages: list[Any] = []
    while True:
        answer = client.get(path, params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        following = answer.headers.get("Kaon-Next")
        if following is None:
            return pages
        assert len(pages) < 50, "Kaon-Next never ends"
        query[param] = following


def test_backfills_are_listed_a_page_at_a_time(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    services.registry.push(HOURLY, "hourly.yaml", LOCAL_PRINCIPAL, owner_group="ml")
    made = []
    for day in range(1, 6):
        body = {"workflow": "hourly", "start": f"2024-01-0{day}", "end": f"2024-01-0{day}"}
        answer = client.post("/backfills", json=body, headers=_auth(tokens["operator"]))
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["id"])
    headers = _auth(tokens["viewer"])
    pages = _walk(client, "/backfills", "before", headers, limit=2)
    assert [[b["id"] for b in page] for page in pages] == [made[:2:-1], made[2:0:-1], made[:1]]
    assert client.get("/backfills?limit=1001", headers=headers).status_code == 422
    bad = client.get("/backfills?before=nope", headers=headers)
    assert bad.status_code == 422 and "before" in bad.text
    # The CLI's client (kaon backfills --url) follows the pages.
    import kaon.cli.main  # noqa: F401  (the commands' module registers itself on it)
    from kaon.cli.trigger_cmds import _Client, _Remote

    remote = _Remote.__new__(_Remote)
    remote.service = RemoteService(
        "http://testserver", token=tokens["viewer"], transport=client._transport
    )
    cli = _Client.__new__(_Client)
    cli.remote, cli.local, cli._local_store = remote, None, None
    assert [b.id for b in cli.backfills(None, None, page=2)] == made[::-1]


def test_tokens_are_listed_a_page_at_a_time(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    headers = _auth(tokens["admin"])
    everyone = [t["name"] for t in client.get("/tokens", headers=headers).json()]
    assert len(everyone) == 5
    pages = _walk(client, "/tokens", "after", headers, limit=2)
    assert [[t["name"] for t in page] for page in pages] == [
        everyone[:2],
        everyone[2:4],
        everyone[4:],
    ]
    assert client.get("/tokens?limit=1001", headers=headers).status_code == 422
    remote = RemoteService("http://testserver", token=tokens["admin"], transport=client._transport)
    assert [t.name for t in remote.list_tokens(page=2)] == everyone

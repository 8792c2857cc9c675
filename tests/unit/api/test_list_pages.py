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
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL
from kaon.service.remote import RemoteService
from kaon.store.base import EventRecord, RunRecord, WriteBatch
from kaon.store.registry import SQLRegistryStore, VersionRecord
from kaon.store.triggers import FiringRecord, SQLTriggerStore

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


def test_every_paged_list_names_its_next_page_kaon_next(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    headers = _auth(tokens["admin"])
    services.registry.push(HOURLY, "hourly.yaml", LOCAL_PRINCIPAL, owner_group="ml")
    services.registry.push(HOURLY + "# 2\n", "hourly.yaml", LOCAL_PRINCIPAL)
    services.registry.push(HOURLY + "# 3\n", "hourly.yaml", LOCAL_PRINCIPAL)
    versions = _walk(client, "/workflows/hourly/versions", "before", headers, limit=2)
    assert [[v["version"] for v in page] for page in versions] == [[2, 3], [1]]

    triggers = SQLTriggerStore(services.store)
    triggers.claim_firings(
        [FiringRecord("hourly:cron:abc", f"2024-01-0{n}", "hourly", f"r{n}") for n in (1, 2, 3)]
    )
    firings = _walk(client, "/triggers/firings", "before", headers, limit=2)
    assert [[f["run_id"] for f in page] for page in firings] == [["r3", "r2"], ["r1"]]

    for n in range(3):
        assert client.post("/signals", json={"name": f"s{n}"}, headers=headers).is_success
    signals = _walk(client, "/signals", "after", headers, limit=2)
    assert [s["name"] for s in signals[0]] == ["s0", "s1"]
    assert [s["name"] for page in signals for s in page] == ["s0", "s1", "s2"]

    run = RunRecord("run-1", "hourly", "h", RunStatus.SUCCEEDED, created_at=1.0)
    events = [EventRecord("run-1", "step.log", float(n), {"n": n}) for n in range(3)]
    services.store.write(WriteBatch(runs=[run], events=events))
    for action in ("run.kill", "run.restart", "run.skip"):
        services.auth.audit(LOCAL_PRINCIPAL, action, "run:run-1")
        services.auth.audit(LOCAL_PRINCIPAL, "workflow.update", "workflow:hourly")
    for path in ("/runs/run-1/events", "/runs/run-1/audit", "/workflows/hourly/audit", "/audit"):
        pages = _walk(client, path, "after", headers, limit=2)
        assert len(pages) >= 2 and len(pages[0]) == 2, (path, pages)
        ids = [row["id"] for page in pages for row in page]
        assert ids == sorted(set(ids)), path


def test_triggers_are_listed_a_page_at_a_time(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """``GET /triggers`` answered every trigger of every active workflow at once."""
    for name in ("c", "a", "b"):
        source = HOURLY.replace("name: hourly", f"name: {name}")
        source += '  - cron: "30 * * * *"\n'
        services.registry.push(source, f"{name}.yaml", LOCAL_PRINCIPAL)
    headers = _auth(tokens["viewer"])
    everything = client.get("/triggers", headers=headers).json()
    assert [t["workflow"] for t in everything] == ["a", "a", "b", "b", "c", "c"]
    pages = _walk(client, "/triggers", "after", headers, limit=4)
    assert [[t["id"] for t in page] for page in pages] == [
        [t["id"] for t in everything[:4]],
        [t["id"] for t in everything[4:]],
    ]
    assert client.get("/triggers?limit=1001", headers=headers).status_code == 422
    import kaon.cli.main  # noqa: F401  (the commands' module registers itself on it)
    from kaon.cli.trigger_cmds import _Client, _Remote

    remote = _Remote.__new__(_Remote)
    remote.service = RemoteService(
        "http://testserver", token=tokens["viewer"], transport=client._transport
    )
    cli = _Client.__new__(_Client)
    cli.remote, cli.local, cli._local_store = remote, None, None
    assert [t.id for t in cli.triggers(None, page=4)] == [t["id"] for t in everything]


def test_workflows_are_listed_by_name_a_page_at_a_time(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """``GET /workflows`` paged by ``offset`` only, with no ``Kaon-Next``; and ``kaon
    workflows`` on a local store listed the first 100 workflows (the default page), while
    against a server it listed them all."""
    names = [f"wf{n:03d}" for n in range(105)]
    registry = SQLRegistryStore(services.store)
    for name in reversed(names):  # a push of each takes a second: the records will do
        registry.add_version(VersionRecord(name, 0, f"h-{name}"), activate=False)
    headers = _auth(tokens["viewer"])
    pages = _walk(client, "/workflows", "after", headers, limit=50)
    assert [len(page) for page in pages] == [50, 50, 5]
    assert [w["name"] for page in pages for w in page] == names
    old = client.get("/workflows", params={"limit": 2, "offset": 3}, headers=headers).json()
    assert [w["name"] for w in old] == names[3:5]  # offset still works (deprecated)
    remote = RemoteService("http://testserver", token=tokens["viewer"], transport=client._transport)
    assert [w.name for w in remote.workflows()] == names
    from kaon.service.client import LocalRegistry

    local = LocalRegistry.__new__(LocalRegistry)
    local.services = services
    assert [w.name for w in local.workflows()] == names


def test_a_runs_artifacts_name_their_next_page_kaon_next(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """``GET /runs/{id}/artifacts`` said where its next page starts in its body only
    (``next_offset``, sent back as ``offset``), unlike every other list."""
    three = "name: three\nsteps:\n" + "".join(
        f"  - id: s{n}\n    shell: echo {n}\n" for n in range(3)
    )
    services.registry.push(three, "three.yaml", LOCAL_PRINCIPAL)
    headers = _auth(tokens["viewer"])
    run_id = client.post("/runs", json={"workflow": "three"}, headers=_auth(tokens["admin"]))
    run_id = run_id.json()["id"]
    services.runs.execute(run_id)
    pages = _walk(client, f"/runs/{run_id}/artifacts", "after", headers, limit=2)
    assert [page["offset"] for page in pages] == [0, 2]
    assert [page["next_offset"] for page in pages] == [2, None]  # still said (deprecated)

"""The trigger routes in-process: backfills, triggers, unblock; auth and bad input."""

from __future__ import annotations

import textwrap
from typing import Any

from kaon.api.deps import Services
from kaon.service.auth import LOCAL_PRINCIPAL
from kaon.store.triggers import DROPPED, FiringRecord, SQLTriggerStore
from kaon.triggers.backfill import backfill_trigger_id

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
        timezone: Europe/Paris
        params: {slot: "${{ slot }}"}
    """
)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _push(services: Services) -> None:
    services.registry.push(HOURLY, "hourly.yaml", LOCAL_PRINCIPAL, owner_group="ml")


def test_backfill_lifecycle(client: Any, services: Services, tokens: dict[str, str]) -> None:
    _push(services)
    body = {"workflow": "hourly", "start": "2024-01-01", "end": "2024-01-01", "concurrency": 3}
    created = client.post("/backfills", json=body, headers=_auth(tokens["operator"]))
    assert created.status_code == 201, created.text
    view = created.json()
    assert (view["total"], view["status"], view["timezone"]) == (24, "running", "Europe/Paris")
    listed = client.get("/backfills", params={"status": "running"}, headers=_auth(tokens["viewer"]))
    assert [b["id"] for b in listed.json()] == [view["id"]]
    got = client.get(f"/backfills/{view['id']}", headers=_auth(tokens["viewer"]))
    assert got.json()["started"] == 0
    cancelled = client.post(f"/backfills/{view['id']}/cancel", headers=_auth(tokens["operator"]))
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/backfills/{view['id']}/cancel", headers=_auth(tokens["operator"]))
    assert again.status_code == 409
    trail = [a.action for a in services.auth.registry.audit()]
    assert "backfill.start" in trail and "backfill.cancel" in trail


def test_bad_backfill_requests_are_4xx(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    _push(services)
    headers = _auth(tokens["admin"])
    cases = [
        ({"workflow": "nope", "start": "2024-01-01", "end": "2024-01-02"}, 404),
        ({"workflow": "hourly", "start": "yesterday", "end": "2024-01-02"}, 422),
        ({"workflow": "hourly", "start": "2024-01-02", "end": "2024-01-01"}, 409),
        ({"workflow": "hourly", "start": "2024-01-01", "end": "2024-01-01", "cron": "x"}, 422),
        ({"workflow": "hourly", "start": "2024-01-01", "end": "2024-01-01", "color": 1}, 422),
        (
            {"workflow": "hourly", "start": "2024-01-01", "end": "2024-01-01", "params": {"x": 1}},
            422,
        ),
    ]
    for body, code in cases:
        answer = client.post("/backfills", json=body, headers=headers)
        assert answer.status_code == code, (body, answer.text)
        if code == 422 and ("cron" in body or body["start"] == "yesterday"):
            field = "cron" if "cron" in body else "start"  # the field is named
            assert answer.json()["problems"][0]["field"] == field, answer.text
    assert client.get("/backfills/bf-nope", headers=headers).status_code == 404


def test_permissions(client: Any, services: Services, tokens: dict[str, str]) -> None:
    _push(services)
    body = {"workflow": "hourly", "start": "2024-01-01", "end": "2024-01-01"}
    assert client.post("/backfills", json=body).status_code == 401
    assert client.post("/backfills", json=body, headers=_auth(tokens["viewer"])).status_code == 403
    denied = client.post("/backfills", json=body, headers=_auth(tokens["stranger"]))
    assert denied.status_code == 403
    unblock = client.post("/workflows/hourly/unblock", headers=_auth(tokens["stranger"]))
    assert unblock.status_code == 403


def test_triggers_and_unblock(client: Any, services: Services, tokens: dict[str, str]) -> None:
    _push(services)
    (trigger,) = client.get("/triggers", headers=_auth(tokens["viewer"])).json()
    assert trigger["workflow"] == "hourly" and trigger["kind"] == "cron"
    assert trigger["next_due"].endswith(("+01:00", "+02:00"))
    headers = _auth(tokens["operator"])
    answer = client.post("/workflows/hourly/unblock", headers=headers)
    assert answer.json() == {"workflow": "hourly", "was_blocked": False}
    assert client.post("/workflows/nope/unblock", headers=headers).status_code == 404
    assert client.get("/openapi.json").json()["paths"]["/backfills"]["post"]


SIGNALLED = textwrap.dedent(
    """
    name: signalled
    steps:
      - id: echo
        shell: echo hi
    triggers:
      - signal: data_ready
        match: "signal.path == 's3://ml-private/2026'"
    """
)


def test_another_groups_triggers_show_no_definition(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """A signal trigger's ``match`` (a private path here) is part of the definition, which
    only the workflow's group reads: another group sees that the trigger exists, not it."""
    services.registry.push(SIGNALLED, "signalled.yaml", LOCAL_PRINCIPAL, owner_group="ml")
    (ours,) = client.get("/triggers", headers=_auth(tokens["operator"])).json()
    assert ours["details"]["match"] == "signal.path == 's3://ml-private/2026'"
    (theirs,) = client.get("/triggers", headers=_auth(tokens["stranger"])).json()
    assert (theirs["workflow"], theirs["kind"]) == ("signalled", "signal")
    assert theirs["details"] == {} and "ml-private" not in theirs["description"]


def test_another_groups_backfills_show_no_skipped_slot_errors(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """A skipped slot's error quotes the parameters its trigger's definition computed
    (``got str 'SECRET-...'``): another group saw them in ``GET /backfills``, while its
    runs' parameters and errors, its triggers' definitions are hidden from that group."""
    _push(services)
    body = {"workflow": "hourly", "start": "2024-01-01", "end": "2024-01-01"}
    created = client.post("/backfills", json=body, headers=_auth(tokens["operator"])).json()
    error = "params.n: parameter 'n' must be of type int, got str 'SECRET-2024-01-01'"
    dropped = FiringRecord(
        backfill_trigger_id(created["id"]), "2024-01-01T01:00:00+01:00", "hourly", "", DROPPED
    )
    dropped.error = error
    assert SQLTriggerStore(services.store).claim_firing(dropped)
    for who, shown in (("operator", True), ("viewer", True), ("stranger", False)):
        listed = client.get("/backfills", headers=_auth(tokens[who])).json()
        one = client.get(f"/backfills/{created['id']}", headers=_auth(tokens[who])).json()
        for view in (listed[0], one):
            assert view["skipped"] == 1, view  # that a slot was skipped is no secret
            assert ("SECRET" in str(view["skipped_slots"])) is shown, (who, view)


def test_the_trigger_history_pages_and_hides_what_fired_from_another_group(
    client: Any, services: Services, tokens: dict[str, str]
) -> None:
    """``GET /triggers/firings``: what fired, newest first, with its run or why none; a
    dropped firing's error quotes parameters, a signal's name and a data path are the
    definition's: another group sees when and what became of each, not those."""
    _push(services)
    triggers = SQLTriggerStore(services.store)
    created = FiringRecord("hourly:cron:abc", "2024-01-01T06:00:00+01:00", "hourly", "run-1")
    created.labels, created.params = {"trigger": "cron", "slot": "2024-01-01T06:00"}, {"k": 1}
    created.status, created.due_at = "created", 1_704_085_200.0
    dropped = FiringRecord("hourly:data:abc", "s3://ml-private/x", "hourly", "run-2", DROPPED)
    dropped.labels = {"trigger": "data", "path": "s3://ml-private/x"}
    dropped.error = "params.n: got str 'SECRET'"
    triggers.claim_firings([created, dropped])
    answer = client.get("/triggers/firings", headers=_auth(tokens["operator"]))
    assert answer.status_code == 200, answer.text
    assert answer.headers["Kaon-Older"] == "false"
    newest, oldest = answer.json()
    assert (newest["kind"], newest["status"], newest["run_id"]) == ("data", "dropped", None)
    assert newest["what"] == "path s3://ml-private/x" and "SECRET" in newest["error"]
    assert (oldest["kind"], oldest["run_id"], oldest["what"]) == (
        "cron",
        "run-1",
        "slot 2024-01-01T06:00",
    )
    assert oldest["due"] == "2024-01-01T05:00:00+00:00" and oldest["params"] == {"k": 1}
    page = client.get("/triggers/firings?limit=1", headers=_auth(tokens["viewer"]))
    assert page.headers["Kaon-Older"] == "true" and page.json()[0]["id"] == newest["id"]
    rest = client.get(f"/triggers/firings?before={newest['id']}", headers=_auth(tokens["viewer"]))
    assert [f["id"] for f in rest.json()] == [oldest["id"]]
    only = client.get("/triggers/firings?status=dropped", headers=_auth(tokens["viewer"]))
    assert [f["id"] for f in only.json()] == [newest["id"]]
    theirs = client.get("/triggers/firings", headers=_auth(tokens["stranger"])).json()
    assert [(f["workflow"], f["status"], f["run_id"]) for f in theirs] == [
        ("hourly", "dropped", None),
        ("hourly", "created", "run-1"),
    ]
    assert "ml-private" not in str(theirs) and "SECRET" not in str(theirs)
    bad = client.get("/triggers/firings?status=lost", headers=_auth(tokens["viewer"]))
    assert bad.status_code == 422 and "status" in bad.text
    assert client.get("/triggers/firings").status_code == 401

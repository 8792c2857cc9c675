"""Tokens expire and rotate, refused attempts are audited (bounded), and an
``Idempotency-Key`` makes a retried request return the first answer."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kaon.api.deps import Services
from kaon.cli.main import app
from kaon.service.auth import REFUSALS_PER_WINDOW, Principal
from kaon.store.registry import IdempotencyRecord

HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


def h(secret: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **extra}


def test_a_token_expires(client: Any, tokens: dict[str, str], services: Services) -> None:
    made = client.post(
        "/tokens",
        json={"name": "short", "role": "viewer", "expires_in": 0.5},
        headers=h(tokens["admin"]),
    )
    assert made.status_code == 201 and made.json()["expires_at"] is not None
    secret = made.json()["token"]
    assert client.get("/whoami", headers=h(secret)).status_code == 200
    time.sleep(0.7)
    late = client.get("/whoami", headers=h(secret))
    assert late.status_code == 401 and "expired" in late.json()["message"]


def test_an_unknown_role_is_named_with_the_roles(client: Any, tokens: dict[str, str]) -> None:
    """``role: superuser`` was refused with the model's regular expression (``String should
    match pattern '^(viewer|operator|owner|admin)$'``), and so was `kaon token create --role
    superuser` against a server, where the local store says which roles there are."""
    made = client.post(
        "/tokens", json={"name": "x", "role": "superuser"}, headers=h(tokens["admin"])
    )
    assert made.status_code == 422
    body = made.json()
    assert body["message"] == (
        "body.role: unknown role 'superuser'; choose one of viewer, operator, owner, admin"
    ), body
    assert body["problems"][0]["field"] == "body.role"
    schema = client.get("/openapi.json", headers=h(tokens["admin"])).json()
    role = schema["components"]["schemas"]["TokenRequest"]["properties"]["role"]
    assert role["enum"] == ["viewer", "operator", "owner", "admin"]  # still documented


def test_rotation_replaces_the_secret_and_records_last_use(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    me = client.get("/tokens", headers=h(tokens["admin"])).json()
    viewer = next(t for t in me if t["name"] == "viewer")
    assert client.get("/whoami", headers=h(tokens["viewer"])).status_code == 200
    listed = client.get("/tokens", headers=h(tokens["admin"])).json()
    assert next(t for t in listed if t["id"] == viewer["id"])["last_used_at"] is not None
    admin_id = next(t["id"] for t in me if t["name"] == "admin")
    refused = client.post(f"/tokens/{admin_id}/rotate", headers=h(tokens["viewer"]))
    assert refused.status_code == 403
    rotated = client.post(f"/tokens/{viewer['id']}/rotate", headers=h(tokens["viewer"]))
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()["token"]
    assert fresh != tokens["viewer"]
    assert client.get("/whoami", headers=h(tokens["viewer"])).status_code == 401
    assert client.get("/whoami", headers=h(fresh)).json()["name"] == "viewer"
    assert client.post("/tokens/nope/rotate", headers=h(tokens["admin"])).status_code == 404


def test_refused_attempts_are_audited_but_cannot_flood_the_audit(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    client.get("/runs", headers=h("kaon_forged"))
    client.post("/signals", content=b"{", headers={"Content-Type": "application/json"})
    client.post("/tokens", json={"name": "x", "role": "admin"}, headers=h(tokens["viewer"]))
    audit = client.get("/audit", params={"limit": 1000}, headers=h(tokens["admin"])).json()
    refused = [a for a in audit if a["action"] == "auth.refused"]
    assert [(a["actor"], a["data"]["status"]) for a in refused] == [
        ("anonymous", 401),
        ("anonymous", 401),
        ("viewer", 403),
    ]
    assert refused[0]["target"] == "GET /runs" and "kaon_forged" not in json.dumps(audit)
    for _ in range(3 * REFUSALS_PER_WINDOW):
        client.get("/runs", headers=h("kaon_forged"))
    audit = client.get("/audit", params={"limit": 1000}, headers=h(tokens["admin"])).json()
    refused = [a for a in audit if a["action"] == "auth.refused"]
    assert len([a for a in refused if a["actor"] == "anonymous"]) == REFUSALS_PER_WINDOW
    assert len(refused) == REFUSALS_PER_WINDOW + 1  # and the viewer's, in a window of its own


def test_a_refused_read_is_audited_under_the_token_that_tried_it(
    client: Any, tokens: dict[str, str]
) -> None:
    # A read refused by its route's role (a viewer listing tokens or reading the audit
    # trail, a run token outside its run) was audited as "anonymous": only a refused write,
    # checked by the request guard, named its token.
    for path in ("/tokens", "/audit"):
        assert client.get(path, headers=h(tokens["operator"])).status_code == 403
    audit = client.get("/audit", params={"limit": 1000}, headers=h(tokens["admin"])).json()
    refused = [a for a in audit if a["action"] == "auth.refused"]
    assert [(a["actor"], a["target"]) for a in refused] == [
        ("operator", "GET /tokens"),
        ("operator", "GET /audit"),
    ]


def test_revoking_a_revoked_token_keeps_when_and_by_whom_it_was_revoked(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    # A second DELETE of a revoked token stamped a new revoked_at over the first and added a
    # second token.revoke entry: the time the token stopped working, and who stopped it,
    # read later as another admin at another time.
    _, second_admin = services.auth.create_token("second", "admin")
    victim = next(t for t in services.auth.registry.list_tokens() if t.name == "viewer")
    assert client.delete(f"/tokens/{victim.id}", headers=h(tokens["admin"])).status_code == 204
    listed = client.get("/tokens", headers=h(tokens["admin"])).json()
    first = next(t["revoked_at"] for t in listed if t["id"] == victim.id)
    time.sleep(0.01)
    assert client.delete(f"/tokens/{victim.id}", headers=h(second_admin)).status_code == 204
    listed = client.get("/tokens", headers=h(tokens["admin"])).json()
    assert next(t["revoked_at"] for t in listed if t["id"] == victim.id) == first
    audit = client.get("/audit", params={"target": f"token:{victim.id}"}, headers=h(second_admin))
    assert [(a["actor"], a["action"]) for a in audit.json()] == [
        ("local", "token.create"),
        ("admin", "token.revoke"),
    ]
    assert client.delete("/tokens/ghost", headers=h(tokens["admin"])).status_code == 404


def test_a_flood_of_anonymous_refusals_does_not_hide_a_tokens_refusals(
    client: Any, tokens: dict[str, str]
) -> None:
    # The rate limit of auth.refused was one window for every caller: anyone without a token
    # sending 20 requests a minute kept every refused attempt of a real token (an operator
    # trying to read the audit trail, to push, to revoke) out of the audit trail.
    for _ in range(2 * REFUSALS_PER_WINDOW):
        client.get("/runs", headers=h("kaon_forged"))
    assert client.get("/audit", headers=h(tokens["operator"])).status_code == 403
    assert client.delete("/tokens/x", headers=h(tokens["operator"])).status_code == 403
    audit = client.get("/audit", params={"limit": 1000}, headers=h(tokens["admin"])).json()
    refused = [(a["actor"], a["target"]) for a in audit if a["action"] == "auth.refused"]
    assert refused.count(("anonymous", "GET /runs")) == REFUSALS_PER_WINDOW
    assert refused[-2:] == [("operator", "GET /audit"), ("operator", "DELETE /tokens/x")]


def test_idempotency_keys_return_the_first_answer(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    pushed = [
        client.post(
            "/workflows",
            json={"source": HELLO, "file_name": "hello.yaml"},
            headers=h(tokens["owner"], **{"Idempotency-Key": "p1"}),
        )
        for _ in range(2)
    ]
    assert [p.json()["created"] for p in pushed] == [True, True]  # the first answer, twice
    key = {"Idempotency-Key": "k1"}
    first = client.post("/runs", json={"workflow": "hello"}, headers=h(tokens["operator"], **key))
    again = client.post("/runs", json={"workflow": "hello"}, headers=h(tokens["operator"], **key))
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/runs", json={"workflow": "hello"}, headers=h(tokens["admin"], **key))
    assert other.json()["id"] != first.json()["id"]  # keys are per caller
    changed = client.post(
        "/runs",
        json={"workflow": "hello", "labels": {"a": "b"}},
        headers=h(tokens["operator"], **key),
    )
    assert changed.status_code == 409
    for _ in range(2):
        sent = client.post(
            "/signals",
            json={"name": "go"},
            headers=h(tokens["operator"], **{"Idempotency-Key": "s"}),
        )
        assert sent.status_code == 201
    assert len(client.get("/signals", headers=h(tokens["viewer"])).json()) == 1
    assert len(client.get("/runs", headers=h(tokens["viewer"])).json()) == 2


def test_a_retry_after_a_crash_mid_request_creates_the_run_once(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    assert client.post(
        "/workflows", json={"source": HELLO, "file_name": "hello.yaml"}, headers=h(tokens["owner"])
    ).is_success
    operator = services.auth.authenticate(tokens["operator"])
    assert isinstance(operator, Principal) and operator.token_id
    # The first attempt reserved its key and created its run, then the server died.
    made = services.registry.start_run("hello", {}, operator, run_id="20260101-000000-abcdef")
    body = {
        "workflow": "hello",
        "version": None,
        "params": {},
        "from_strings": False,
        "no_cache": False,
        "force": [],
        "breakpoints": [],
        "priority": None,
    }
    services.auth.registry.reserve_idempotency(
        IdempotencyRecord(
            operator.token_id,
            "crash",
            _digest({"route": "start_run", **body, "labels": {}}),
            0,
            {"run_id": made.id},
            time.time() - 600,
        )
    )
    retried = client.post(
        "/runs",
        json={"workflow": "hello"},
        headers=h(tokens["operator"], **{"Idempotency-Key": "crash"}),
    )
    assert retried.status_code == 201 and retried.json()["id"] == made.id
    assert len(client.get("/runs", headers=h(tokens["viewer"])).json()) == 1


def _digest(request: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def test_cli_token_create_list_rotate_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    made = runner.invoke(
        app, ["token", "create", "ci", "--role", "operator", "--expires-in", "7d", *home, "--json"]
    )
    assert made.exit_code == 0, made.output
    record = json.loads(made.output)
    assert record["expires_at"] - record["created_at"] == 7 * 86400
    listed = runner.invoke(app, ["token", "list", *home, "--json"])
    assert [t["name"] for t in json.loads(listed.output)] == ["ci"]
    rotated = runner.invoke(app, ["token", "rotate", record["id"], *home])
    assert rotated.exit_code == 0 and rotated.output.strip().startswith("kaon_")
    assert runner.invoke(app, ["token", "revoke", record["id"], *home]).exit_code == 0
    listed = runner.invoke(app, ["token", "list", *home])
    assert "revoked" in listed.output


def test_a_token_rotating_itself_keeps_its_expiry_and_cannot_extend_it(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    made = client.post(
        "/tokens",
        json={"name": "brief", "role": "operator", "expires_in": 120},
        headers=h(tokens["admin"]),
    ).json()
    expires_at = made["expires_at"]
    assert expires_at is not None
    itself = client.post(f"/tokens/{made['id']}/rotate", headers=h(made["token"]))
    assert itself.status_code == 200, itself.text
    assert itself.json()["expires_at"] == expires_at  # was: null, a token that never expires
    secret = itself.json()["token"]
    longer = client.post(
        f"/tokens/{made['id']}/rotate", json={"expires_in": 315_360_000}, headers=h(secret)
    )
    assert longer.status_code == 403 and "only an admin" in longer.json()["message"]
    assert client.get("/whoami", headers=h(secret)).status_code == 200  # not rotated
    shorter = client.post(
        f"/tokens/{made['id']}/rotate", json={"expires_in": 60}, headers=h(secret)
    )
    assert shorter.status_code == 200 and shorter.json()["expires_at"] < expires_at
    by_admin = client.post(
        f"/tokens/{made['id']}/rotate", json={"expires_in": 3600}, headers=h(tokens["admin"])
    )
    assert by_admin.status_code == 200 and by_admin.json()["expires_at"] > expires_at
    kept = client.post(f"/tokens/{made['id']}/rotate", headers=h(tokens["admin"]))
    assert kept.json()["expires_at"] == by_admin.json()["expires_at"]


def test_a_refused_ui_login_is_audited_like_a_refused_api_call(
    client: Any, tokens: dict[str, str]
) -> None:
    answer = client.post("/ui/login", data={"token": "kaon_guess", "next": "/ui"})
    assert answer.status_code == 401
    audit = client.get("/audit", params={"limit": 1000}, headers=h(tokens["admin"])).json()
    refused = [a for a in audit if a["action"] == "auth.refused"]
    assert [(a["actor"], a["target"], a["data"]["status"]) for a in refused] == [
        ("anonymous", "POST /ui/login", 401)
    ]
    assert "kaon_guess" not in json.dumps(audit)


def test_rotating_an_expired_token_needs_a_new_lifetime(
    client: Any, tokens: dict[str, str]
) -> None:
    """Rotating an expired token kept its expiry: the 200 carried a secret that was already
    dead (``expires_at`` in the past). It is a 409 saying when it expired and how to revive
    it; an admin's rotation with ``expires_in`` gives a live token."""
    made = client.post(
        "/tokens",
        json={"name": "short", "role": "viewer", "expires_in": 0.5},
        headers=h(tokens["admin"]),
    ).json()
    time.sleep(0.7)
    dead = client.post(f"/tokens/{made['id']}/rotate", headers=h(tokens["admin"]))
    assert dead.status_code == 409, dead.text
    message = dead.json()["message"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(made["expires_at"]))
    assert f"expired at {when}" in message and "expires_in" in message, message
    revived = client.post(
        f"/tokens/{made['id']}/rotate", json={"expires_in": 60}, headers=h(tokens["admin"])
    )
    assert revived.status_code == 200, revived.text
    assert revived.json()["expires_at"] > time.time()
    assert client.get("/whoami", headers=h(revived.json()["token"])).status_code == 200


@pytest.mark.parametrize("group", ["", "ml ", "x" * 201])
def test_a_token_group_is_checked_as_an_owner_group_is(
    client: Any, tokens: dict[str, str], group: str
) -> None:
    """``POST /tokens`` took any group (``""``, ``"ml "``, any length) while a workflow's
    owner group had to be 1-200 characters: one rule now holds for both, said in the
    schema, and a refusal names the group's place."""
    made = client.post(
        "/tokens",
        json={"name": "ci", "role": "viewer", "groups": ["ml", group]},
        headers=h(tokens["admin"]),
    )
    assert made.status_code == 422, made.text
    assert made.json()["problems"][0]["field"] == "body.groups.1", made.json()
    pushed = client.post(
        "/workflows",
        json={"source": HELLO, "file_name": "hello.yaml", "owner_group": group},
        headers=h(tokens["admin"]),
    )
    assert pushed.status_code == 422 and pushed.json()["problems"][0]["field"] == (
        "body.owner_group"
    )
    schema = client.get("/openapi.json", headers=h(tokens["admin"])).json()["components"]
    item = schema["schemas"]["TokenRequest"]["properties"]["groups"]["items"]
    owner = schema["schemas"]["PushRequest"]["properties"]["owner_group"]["anyOf"][0]
    assert item == owner and (item["minLength"], item["maxLength"]) == (1, 200), item


@pytest.mark.parametrize("group", ["", "ml "])
def test_cli_token_create_refuses_a_group_naming_the_option(tmp_path: Path, group: str) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    made = runner.invoke(app, ["token", "create", "ci", "--group", group, *home])
    assert made.exit_code == 2, made.output
    assert "--group" in made.output, made.output
    listed = runner.invoke(app, ["token", "list", *home, "--json"])
    assert listed.exit_code != 0 or json.loads(listed.output) == []


def test_the_audit_trail_names_the_token_that_acted_not_only_its_name(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """Token names are not unique and audit entries held only the name: two live tokens
    called ``ci``, a viewer and an admin, were one actor in the trail. Each entry made by a
    token records its id."""
    made = {
        role: client.post(
            "/tokens", json={"name": "ci", "role": role}, headers=h(tokens["admin"])
        ).json()
        for role in ("viewer", "admin")
    }
    viewer, admin = made["viewer"], made["admin"]
    pushed = client.post(
        "/workflows", json={"source": HELLO, "file_name": "hello.yaml"}, headers=h(admin["token"])
    )
    assert pushed.status_code == 200, pushed.text
    run = client.post("/runs", json={"workflow": "hello"}, headers=h(admin["token"])).json()
    services.runs.execute(run["id"])
    assert client.delete(f"/runs/{run['id']}", headers=h(admin["token"])).status_code == 204
    refused = client.post(
        "/tokens", json={"name": "x", "role": "viewer"}, headers=h(viewer["token"])
    )
    assert refused.status_code == 403
    rotated = client.post(f"/tokens/{viewer['id']}/rotate", headers=h(viewer["token"]))
    assert rotated.status_code == 200
    trail = client.get("/audit", params={"actor": "ci"}, headers=h(tokens["admin"])).json()
    acts = [(a["action"], a["token_id"]) for a in trail]
    assert acts == [
        ("workflow.push", admin["id"]),
        ("run.start", admin["id"]),
        ("run.delete", admin["id"]),
        ("auth.refused", viewer["id"]),
        ("token.rotate", viewer["id"]),
    ], acts
    assert all("token_id" not in a["data"] for a in trail)
    creations = client.get(
        "/audit", params={"target": f"token:{admin['id']}"}, headers=h(tokens["admin"])
    )
    [creation] = creations.json()
    admin_id = next(
        t["id"]
        for t in client.get("/tokens", headers=h(tokens["admin"])).json()
        if t["name"] == "admin"
    )
    assert (creation["actor"], creation["token_id"]) == ("admin", admin_id)

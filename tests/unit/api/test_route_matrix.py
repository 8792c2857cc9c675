"""Every route of the OpenAPI schema x every kind of caller -> the expected status.

The operations come from the app's own schema, so a new route without an expectation fails
this test until someone decides who may call it. Callers: anonymous, and a token of each
role (viewer, operator, owner, admin) in the owning group (``ml``) and in another group
(``other``), plus a viewer without groups (an organisation-wide reader). The objects
(workflow ``hello``, its finished run) belong to group ``ml``.

Rules: anonymous gets 401 (``/healthz`` excepted); a role below the operation's gets 403; a
*scoped* operation (one on a workflow's object: its runs, logs, artifacts, events, source,
actions) gets 403 for a token outside the owning group (admins excepted; a viewer without
groups reads); everything else gets one of the operation's success statuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kaon.api.app import stop_streams
from kaon.api.deps import Services
from kaon.service.auth import role_rank

HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


@dataclass(frozen=True)
class Rule:
    """Who may call an operation and what a permitted call answers."""

    role: str | None  # None: no token needed
    scoped: bool = False
    ok: frozenset[int] = frozenset({200})
    body: Any = None
    after: Callable[[Any, dict[str, str]], None] | None = field(default=None, compare=False)


def _reactivate(client: Any, secrets: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    client.post("/workflows/hello/activate", json={"version": 1}, headers=admin)


OK_201 = frozenset({201})
ACTION = frozenset({200, 409})  # an action on a run in a state that may not allow it
EXPECT: dict[str, Rule] = {
    "GET /healthz": Rule(None),
    "GET /readyz": Rule(None, ok=frozenset({200, 503})),
    "GET /metrics": Rule("viewer"),
    "GET /whoami": Rule("viewer"),
    "GET /tokens": Rule("admin"),
    "POST /tokens": Rule("admin", ok=OK_201, body={"name": "n", "role": "viewer"}),
    "POST /tokens/{token_id}/rotate": Rule("admin"),
    "DELETE /tokens/{token_id}": Rule("admin", ok=frozenset({204})),
    "GET /audit": Rule("admin"),
    # Pools and tag permits: anyone reads, admins change (a second delete finds none: 404).
    "GET /pools": Rule("viewer"),
    "PUT /pools/{name}": Rule("admin", body={"slots": 2}),
    "DELETE /pools/{name}": Rule("admin", ok=frozenset({204, 404})),
    "GET /permits": Rule("viewer"),
    "PUT /permits/{tag}": Rule("admin", body={"max": 2}),
    "DELETE /permits/{tag}": Rule("admin", ok=frozenset({204, 404})),
    "GET /workflows": Rule("viewer"),
    "POST /workflows": Rule("owner", True, body={"source": HELLO, "file_name": "hello.yaml"}),
    "GET /workflows/{name}": Rule("viewer"),
    "PATCH /workflows/{name}": Rule("owner", True, body={"properties": {"k": 1}}),
    "GET /workflows/{name}/versions": Rule("viewer"),
    "GET /workflows/{name}/versions/{version}": Rule("viewer", True),
    "POST /workflows/{name}/activate": Rule("owner", True, body={"version": 1}),
    "POST /workflows/{name}/deactivate": Rule("owner", True, after=_reactivate),
    "POST /runs": Rule("operator", True, OK_201, body={"workflow": "hello"}),
    "GET /runs": Rule("viewer"),
    "GET /runs/{run_id}": Rule("viewer", True),
    "DELETE /runs/{run_id}": Rule("operator", True, frozenset({204})),  # a fresh run each call
    "POST /runs/{run_id}/kill": Rule("operator", True, ACTION),
    "POST /runs/{run_id}/restart": Rule("operator", True, ACTION),
    "POST /runs/{run_id}/skip": Rule("operator", True, ACTION, body={"path": "a"}),
    "POST /runs/{run_id}/resume": Rule("operator", True, ACTION),
    "POST /runs/{run_id}/continue": Rule("operator", True, ACTION, body={}),
    "GET /runs/{run_id}/paused": Rule("viewer", True),
    "GET /runs/{run_id}/events": Rule("viewer", True),
    "GET /runs/{run_id}/metrics": Rule("viewer", True),
    "GET /runs/{run_id}/artifacts": Rule("viewer", True),
    "GET /runs/{run_id}/steps/{path}": Rule("viewer", True),
    "GET /runs/{run_id}/steps/{path}/attempts": Rule("viewer", True),
    "GET /runs/{run_id}/steps/{path}/logs": Rule("viewer", True),
    "GET /runs/{run_id}/steps/{path}/metrics": Rule("viewer", True),
    "GET /runs/{run_id}/summary": Rule("viewer", True),
    "GET /runs/{run_id}/children": Rule("viewer", True),
    "GET /runs/{run_id}/step": Rule("viewer", True),  # called with ?path=a
    "GET /runs/{run_id}/log": Rule("viewer", True),  # called with ?path=a
    "GET /workflows/{name}/params": Rule("viewer", True),
    "GET /workflows/{name}/diff": Rule("viewer", True),  # called with ?old=1&new=1
    "GET /workflows/{name}/audit": Rule("viewer", True),
    "GET /workflows/{name}/runs": Rule("viewer", True),
    "GET /runs/{run_id}/audit": Rule("viewer", True),
    "GET /runs/{run_id}/preview": Rule("viewer", True),  # called with ?path=a
    "GET /runs/{run_id}/lineage": Rule("viewer", True, ok=frozenset({404})),  # a value
    "POST /signals": Rule("operator", ok=OK_201, body={"name": "go"}),
    "GET /signals": Rule("viewer"),
    "GET /events": Rule("viewer", True),  # called with ?run_id= (the stream of one run)
    "GET /triggers": Rule("viewer"),
    "GET /triggers/firings": Rule("viewer"),
    "POST /backfills": Rule(
        "operator",
        True,
        OK_201,
        body={
            "workflow": "hello",
            "cron": "0 0 * * *",
            "start": "2024-01-01T00:00:00Z",
            "end": "2024-01-02T00:00:00Z",
        },
    ),
    "GET /backfills": Rule("viewer"),
    "GET /backfills/{backfill_id}": Rule("viewer", ok=frozenset({404})),
    "POST /backfills/{backfill_id}/cancel": Rule("operator", ok=frozenset({404})),
    "POST /workflows/{name}/unblock": Rule("operator", True),
    "POST /workflows/{name}/match": Rule(
        "operator", True, body={"source": HELLO, "file_name": "hello.yaml"}
    ),
    "GET /runs/{run_id}/outputs": Rule("viewer", True),  # called with ?path=a
    "GET /runs/{run_id}/explain": Rule("viewer", True),  # called with ?path=a
    "GET /runs/{run_id}/metric-rows": Rule("viewer", True),
    "GET /compare": Rule("viewer", True, ok=frozenset({422})),  # ?run=<id>&run=<id>: one run
    "GET /plot": Rule("viewer", True, ok=frozenset({404})),  # no such metric
    # A blob that does not exist: 404 for every reader (one of another group gets 404 too).
    "GET /artifacts/{artifact}": Rule("viewer", ok=frozenset({404})),
    "GET /artifacts/{artifact}/blob": Rule("viewer", ok=frozenset({404})),
    "GET /artifacts/{artifact}/lineage": Rule("viewer", ok=frozenset({404})),
}

_STEP_READS = ("/runs/{run_id}/explain", "/runs/{run_id}/preview", "/runs/{run_id}/lineage")

CALLERS: list[tuple[str, str | None, tuple[str, ...]]] = [
    ("anonymous", None, ()),
    ("viewer-everything", "viewer", ()),
    *[
        (f"{role}-{group}", role, (group,))
        for role in ("viewer", "operator", "owner", "admin")
        for group in ("ml", "other")
    ],
]


def expected(rule: Rule, role: str | None, groups: tuple[str, ...]) -> frozenset[int]:
    """The statuses ``rule`` allows for a caller of ``role`` in ``groups``."""
    if rule.role is None:
        return rule.ok
    if role is None:
        return frozenset({401})
    if role_rank(role) < role_rank(rule.role):
        return frozenset({403})
    if rule.scoped and role != "admin" and groups and "ml" not in groups:
        return frozenset({403})
    return rule.ok


def test_every_route_answers_every_caller_as_the_table_says(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    assert client.post("/workflows", json=EXPECT["POST /workflows"].body, headers=owner).is_success
    run_id = client.post("/runs", json={"workflow": "hello"}, headers=owner).json()["id"]
    services.runs.execute(run_id)
    secrets = {"admin": tokens["admin"]}
    for name, role, groups in CALLERS[1:]:
        assert role is not None
        secrets[name] = services.auth.create_token(name, role, groups)[1]
    stop_streams(client.app)  # GET /events answers its headers, then ends at once

    schema = client.get("/openapi.json").json()
    operations = [
        f"{method.upper()} {path}" for path, item in schema["paths"].items() for method in item
    ]
    assert sorted(operations) == sorted(EXPECT), "a route without an expectation (or a stale one)"
    wrong: list[str] = []
    checked = 0
    for operation in operations:
        rule = EXPECT[operation]
        method, path = operation.split(" ", 1)
        for name, role, groups in CALLERS:
            victim = services.auth.create_token("victim", "viewer")[0].id
            url = path.format(
                name="hello",
                tag="hello",
                version=1,
                run_id=run_id,
                path="a",
                token_id=victim,
                backfill_id="nope",
                artifact="ab" * 32,
            )
            params: dict[str, Any] | None = {"run_id": run_id} if path == "/events" else None
            if path in ("/runs/{run_id}/step", "/runs/{run_id}/log", "/runs/{run_id}/outputs"):
                params = {"path": "a"}
            if path in _STEP_READS:
                params = {"path": "a"}
            if path in ("/compare", "/plot"):
                params = {"run": [run_id, run_id], "metric": "m"}
            if path == "/workflows/{name}/diff":
                params = {"old": 1, "new": 1}
            if operation == "DELETE /runs/{run_id}":  # each caller deletes a run of its own
                doomed = client.post("/runs", json={"workflow": "hello"}, headers=owner)
                services.runs.execute(doomed.json()["id"])
                url = f"/runs/{doomed.json()['id']}"
            headers = {"Authorization": f"Bearer {secrets[name]}"} if role else {}
            answer = client.request(method, url, json=rule.body, params=params, headers=headers)
            checked += 1
            allowed = expected(rule, role, groups)
            if answer.status_code not in allowed:
                wrong.append(
                    f"{operation} as {name}: {answer.status_code} (expected "
                    f"{sorted(allowed)}): {answer.text[:160]}"
                )
            if rule.after and answer.is_success:
                rule.after(client, secrets)
    assert not wrong, "\n".join(wrong)
    assert checked == len(EXPECT) * len(CALLERS)

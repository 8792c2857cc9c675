"""The HTTP API in process: routes, auth, error mapping, audit, metrics."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.api.deps import Services
from kaon.model.status import RunStatus

HELLO = (
    "name: hello\nparams:\n  n: {type: int, default: 2}\nsteps:\n  - id: a\n    shell: echo hi\n"
)


def h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def push(client: Any, secret: str, source: str = HELLO, **extra: Any) -> Any:
    body = {"source": source, "file_name": "hello.yaml", **extra}
    return client.post("/workflows", json=body, headers=h(secret))


def test_health_needs_no_token_but_everything_else_does(client: Any) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    for path in ("/workflows", "/runs", "/metrics", "/signals", "/audit", "/events"):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["error"] == "AuthenticationError"
    assert client.get("/runs", headers=h("kaon_wrong")).status_code == 401


def test_push_versions_activate_and_properties(client: Any, tokens: dict[str, str]) -> None:
    first = push(client, tokens["owner"]).json()
    assert first["created"] and first["version"] == 1 and first["active_version"] == 1
    same = push(client, tokens["owner"]).json()
    assert not same["created"] and same["version"] == 1
    second = push(client, tokens["owner"], HELLO.replace("echo hi", "echo bye"), activate=False)
    assert second.json()["version"] == 2 and second.json()["active_version"] == 1
    versions = client.get("/workflows/hello/versions", headers=h(tokens["viewer"])).json()
    assert [(v["version"], v["active"]) for v in versions] == [(1, True), (2, False)]
    one = client.get("/workflows/hello/versions/2", headers=h(tokens["viewer"])).json()
    assert "echo bye" in one["source"]
    active = client.post(
        "/workflows/hello/activate", json={"version": 2}, headers=h(tokens["owner"])
    )
    assert active.json()["active_version"] == 2
    patched = client.patch(
        "/workflows/hello",
        json={"properties": {"run_strategy": "sequential", "concurrency": 3}},
        headers=h(tokens["owner"]),
    ).json()
    assert patched["properties"] == {"run_strategy": "sequential", "concurrency": 3}
    removed = client.patch(
        "/workflows/hello", json={"properties": {"concurrency": None}}, headers=h(tokens["owner"])
    ).json()
    assert removed["properties"] == {"run_strategy": "sequential"}
    assert removed["owner_group"] == "ml" and removed["latest_version"] == 2
    off = client.post("/workflows/hello/deactivate", headers=h(tokens["owner"])).json()
    assert off["active_version"] is None
    refused = client.post("/runs", json={"workflow": "hello"}, headers=h(tokens["operator"]))
    assert refused.status_code == 409 and "deactivated" in refused.json()["message"]


def test_roles_and_groups(client: Any, tokens: dict[str, str], services: Services) -> None:
    push(client, tokens["owner"])
    assert push(client, tokens["operator"]).status_code == 403
    other = push(client, tokens["stranger"], HELLO.replace("echo hi", "echo x"))
    assert other.status_code == 403 and "group 'ml'" in other.json()["message"]
    viewer = client.post("/runs", json={"workflow": "hello"}, headers=h(tokens["viewer"]))
    assert viewer.status_code == 403 and "needs operator" in viewer.json()["message"]
    started = client.post("/runs", json={"workflow": "hello"}, headers=h(tokens["operator"]))
    assert started.status_code == 201
    assert (
        client.post(
            "/tokens", json={"name": "x", "role": "viewer"}, headers=h(tokens["owner"])
        ).status_code
        == 403
    )
    made = client.post(
        "/tokens", json={"name": "x", "role": "viewer"}, headers=h(tokens["admin"])
    ).json()
    assert made["token"].startswith("kaon_")
    assert client.get("/whoami", headers=h(made["token"])).json()["name"] == "x"
    assert client.delete(f"/tokens/{made['id']}", headers=h(tokens["admin"])).status_code == 204
    assert client.get("/whoami", headers=h(made["token"])).status_code == 401
    actions = [(a.actor, a.action) for a in services.auth.registry.audit()]
    assert ("owner", "workflow.push") in actions
    assert ("operator", "run.start") in actions
    assert ("admin", "token.revoke") in actions
    assert ("viewer", "run.start") not in actions


def test_a_refused_group_says_whose_it_is(client: Any, tokens: dict[str, str]) -> None:
    """Giving ml's workflow to group 'other' was refused with "owner is not in group 'other',
    which owns this workflow" (ml owns it; 'other' is where it would go), and so was a new
    workflow pushed for a group the caller is not in."""
    push(client, tokens["owner"])
    moved = client.patch(
        "/workflows/hello", json={"owner_group": "other"}, headers=h(tokens["owner"])
    )
    assert moved.status_code == 403
    assert moved.json()["message"] == (
        "owner is not in group 'other', to which the workflow would be given"
    )
    new = client.post(
        "/workflows",
        json={"source": HELLO.replace("hello", "fresh"), "file_name": "f.yaml", "owner_group": "x"},
        headers=h(tokens["owner"]),
    )
    assert new.status_code == 403
    assert new.json()["message"] == (
        "owner is not in group 'x', to which the workflow would be given"
    )
    stranger = push(client, tokens["stranger"], HELLO.replace("echo hi", "echo x"))
    assert stranger.json()["message"] == "stranger is not in group 'ml', which owns this workflow"


def test_start_runs_with_parameters_and_precise_422(client: Any, tokens: dict[str, str]) -> None:
    push(client, tokens["owner"])
    op = h(tokens["operator"])
    bad_param = client.post("/runs", json={"workflow": "hello", "params": {"n": "x"}}, headers=op)
    assert bad_param.status_code == 422
    body = bad_param.json()
    assert body["error"] == "ParameterError" and body["problems"][0]["field"] == "params.n"
    unknown = client.post("/runs", json={"workflow": "hello", "params": {"zz": 1}}, headers=op)
    assert unknown.status_code == 422
    extra = client.post("/runs", json={"workflow": "hello", "oops": 1}, headers=op)
    assert extra.status_code == 422 and extra.json()["problems"][0]["field"] == "body.oops"
    wrong_type = client.post("/runs", json={"workflow": "hello", "version": "two"}, headers=op)
    assert wrong_type.status_code == 422
    malformed = client.post(
        "/runs", content=b"{not json", headers={**op, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 422 and "JSON" in malformed.json()["message"]
    assert client.post("/runs", json={"workflow": "ghost"}, headers=op).status_code == 404
    from_strings = client.post(
        "/runs",
        json={"workflow": "hello", "params": {"n": "5"}, "from_strings": True},
        headers=op,
    )
    assert from_strings.status_code == 201 and from_strings.json()["params"] == {"n": 5}


def test_bad_definitions_list_every_problem_with_location(
    client: Any, tokens: dict[str, str]
) -> None:
    answer = push(client, tokens["owner"], "name: x\nsteps:\n  - id: a\n  - id: b\n")
    assert answer.status_code == 422
    problems = answer.json()["problems"]
    assert len(problems) == 2
    assert {p["file"] for p in problems} == {"hello.yaml"}
    assert [p["field"] for p in problems] == ["steps[0]", "steps[1]"]
    bad_name = client.post(
        "/workflows",
        json={"source": HELLO, "file_name": "../evil.yaml"},
        headers=h(tokens["owner"]),
    )
    assert bad_name.status_code == 422


def test_run_lifecycle_over_the_api(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    push(client, tokens["owner"])
    op = h(tokens["operator"])
    run = client.post("/runs", json={"workflow": "hello"}, headers=op).json()
    assert run["status"] == "pending"
    listed = client.get("/runs", params={"workflow": "hello"}, headers=op).json()
    assert [r["id"] for r in listed] == [run["id"]]
    assert client.get("/runs", params={"status": "bogus"}, headers=op).status_code == 422
    restart = client.post(f"/runs/{run['id']}/restart", headers=op)
    assert restart.status_code == 409
    assert services.runs.execute(run["id"]) is RunStatus.SUCCEEDED
    detail = client.get(f"/runs/{run['id'][:15]}", headers=op).json()
    assert detail["id"] == run["id"] and detail["steps"][0]["status"] == "succeeded"
    logs = client.get(f"/runs/{run['id']}/steps/a/logs", headers=op).json()
    assert [line["text"] for line in logs] == ["hi"]
    step = client.get(f"/runs/{run['id']}/steps/a", headers=op).json()
    assert step["attempt_list"][0]["status"] == "succeeded"
    attempts = client.get(f"/runs/{run['id']}/steps/a/attempts", headers=op).json()
    assert len(attempts) == 1
    assert client.get(f"/runs/{run['id']}/steps/ghost", headers=op).status_code == 404
    assert client.get(f"/runs/{run['id']}/artifacts", headers=op).status_code == 200
    assert client.get(f"/runs/{run['id']}/metrics", headers=op).json() == []
    events = client.get(f"/runs/{run['id']}/events", headers=op).json()
    assert events[0]["kind"] == "run" and events[-1]["data"]["status"] == "succeeded"
    again = client.post(f"/runs/{run['id']}/restart", json={"from_step": "a"}, headers=op)
    # Queued again: the engine's claim starts it, as the workflow's run strategy admits it.
    assert again.status_code == 200 and again.json()["status"] == "pending"
    killed = client.post(f"/runs/{run['id']}/kill", headers=op)
    assert killed.json()["status"] == "cancelled"
    assert client.post(f"/runs/{run['id']}/kill", headers=op).status_code == 409
    assert client.post(f"/runs/{run['id']}/resume", headers=op).status_code == 409
    skipped = client.post(f"/runs/{run['id']}/skip", json={"path": "a"}, headers=op)
    assert skipped.json()["how"] == "recorded"
    assert client.get("/runs/nope", headers=op).status_code == 404
    assert client.post("/runs/nope/kill", headers=op).status_code == 404


def test_signals_are_stored(client: Any, tokens: dict[str, str], services: Services) -> None:
    sent = client.post(
        "/signals",
        json={"name": "data_ready", "params": {"day": "2024-01-01"}},
        headers=h(tokens["operator"]),
    )
    assert sent.status_code == 201
    stored = services.store.signals(name="data_ready")
    assert [s.params for s in stored] == [{"day": "2024-01-01"}]
    assert stored[0].by == "operator" and stored[0].id == sent.json()["id"]
    listed = client.get("/signals", headers=h(tokens["viewer"])).json()
    assert listed[0]["name"] == "data_ready"
    refused = client.post("/signals", json={"name": "x"}, headers=h(tokens["viewer"]))
    assert refused.status_code == 403


def test_metrics_exposition(client: Any, tokens: dict[str, str], services: Services) -> None:
    from kaon.service import telemetry

    push(client, tokens["owner"])
    run = client.post("/runs", json={"workflow": "hello"}, headers=h(tokens["operator"])).json()
    client.post("/runs", json={"workflow": "hello"}, headers=h(tokens["operator"]))
    services.runs.execute(run["id"])
    telemetry.record_trigger_lag("hello/cron", 0.25)
    for seconds in (0.0005, 0.003, 0.003, 2.0):
        telemetry.record_engine_turn(seconds)
    try:
        text = client.get("/metrics", headers=h(tokens["viewer"])).text
    finally:
        telemetry.reset()
    assert 'kaon_runs{status="succeeded"} 1.0' in text
    assert "kaon_queue_depth 1.0" in text
    assert 'kaon_step_runs{status="succeeded"} 1.0' in text
    assert "kaon_step_duration_seconds_count 1.0" in text
    assert 'kaon_trigger_lag_seconds_max{trigger="hello/cron"} 0.25' in text
    assert 'kaon_trigger_lag_seconds_bucket{le="0.25"} 1.0' in text
    assert 'kaon_api_requests_total{method="POST",status="201"} 2.0' in text
    assert 'kaon_engine_turn_seconds_bucket{le="0.001"} 1.0' in text
    assert 'kaon_engine_turn_seconds_bucket{le="0.005"} 3.0' in text
    assert 'kaon_engine_turn_seconds_bucket{le="+Inf"} 4.0' in text
    assert "kaon_engine_turn_seconds_count 4.0" in text


def test_unknown_routes_and_methods_are_json_4xx(client: Any, tokens: dict[str, str]) -> None:
    missing = client.get("/nothing-here", headers=h(tokens["viewer"]))
    assert missing.status_code == 404 and missing.json()["error"] == "HTTPError"
    assert client.put("/runs", headers=h(tokens["viewer"])).status_code == 405


@pytest.mark.parametrize("path", ["/openapi.json"])
def test_openapi_schema_is_published(client: Any, path: str) -> None:
    schema = client.get(path).json()
    assert "/runs/{run_id}/restart" in schema["paths"]
    assert "/workflows" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_start_and_restart_carry_the_cache_policy(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    push(client, tokens["owner"])
    op = h(tokens["operator"])
    body = {"workflow": "hello", "no_cache": True, "force": ["a"]}
    run = client.post("/runs", json=body, headers=op).json()
    labels = services.store.get_run(run["id"]).labels
    assert labels["kaon.cache"] == {"lookup": False, "force": ["a"], "restart_force": False}
    unknown = client.post("/runs", json={"workflow": "hello", "force": ["zz"]}, headers=op)
    assert unknown.status_code == 422 and "no step 'zz'" in unknown.json()["message"]
    assert services.runs.execute(run["id"]) is RunStatus.SUCCEEDED
    again = client.post(f"/runs/{run['id']}/restart", json={"force": True}, headers=op)
    assert again.status_code == 200
    assert services.store.get_run(run["id"]).labels["kaon.cache"]["restart_force"] is True


def test_breakpoints_through_the_api(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    import threading
    import time

    push(client, tokens["owner"])
    op = h(tokens["operator"])
    body = {"workflow": "hello", "breakpoints": ["a"]}
    run = client.post("/runs", json=body, headers=op).json()
    assert client.post("/runs", json={**body, "breakpoints": ["zz"]}, headers=op).status_code == 422
    result: dict[str, RunStatus] = {}
    thread = threading.Thread(target=lambda: result.update(s=services.runs.execute(run["id"])))
    thread.start()
    deadline = time.monotonic() + 20
    while client.get(f"/runs/{run['id']}", headers=op).json()["status"] != "paused":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    step = client.get(f"/runs/{run['id']}/steps/a", headers=op).json()
    assert step["status"] == "paused"
    viewer = h(tokens["viewer"])
    held = client.get(f"/runs/{run['id']}/paused", headers=viewer).json()
    assert [(s["path"], s["moment"], s["outputs"]) for s in held] == [("a", "before", {})]
    assert client.get(f"/runs/{run['id']}/paused?path=zz", headers=viewer).json() == []
    refused = client.post(f"/runs/{run['id']}/continue", json={}, headers=viewer)
    assert refused.status_code == 403
    answer = client.post(f"/runs/{run['id']}/continue", json={"params": {"n": 7}}, headers=op)
    assert answer.status_code == 200
    thread.join(30)
    assert result["s"] is RunStatus.SUCCEEDED
    detail = client.get(f"/runs/{run['id']}", headers=op).json()
    assert detail["params"] == {"n": 7} and detail["steps"][0]["status"] == "succeeded"
    again = client.post(f"/runs/{run['id']}/continue", json={}, headers=op)
    assert again.status_code == 409  # not paused
    # Who continued it, and which parameters they changed (names only), is in the audit.
    audit = client.get("/audit", params={"target": f"run:{run['id']}"}, headers=h(tokens["admin"]))
    continued = [a for a in audit.json() if a["action"] == "run.continue"]
    assert [(a["actor"], a["data"]["params"]) for a in continued] == [("operator", ["n"])]

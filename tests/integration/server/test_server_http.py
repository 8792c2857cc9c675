"""A real ``kaon server`` driven over HTTP and through the CLI with KAON_URL."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

HELLO = """\
name: hello
params:
  n: {type: int, default: 2}
steps:
  - id: a
    shell: echo hello
  - id: b
    shell: echo b
    needs: [a]
"""

FLAKY = """\
name: flaky
steps:
  - id: check
    shell: test -f {flag}
  - id: after
    shell: echo after
    needs: [check]
"""

SLOW = """\
name: slow
steps:
  - id: nap
    shell: sleep 30
"""


def push(client: httpx.Client, source: str, name: str) -> dict[str, Any]:
    answer = client.post("/workflows", json={"source": source, "file_name": name})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def token(client: httpx.Client, name: str, role: str, *groups: str) -> str:
    made = client.post("/tokens", json={"name": name, "role": role, "groups": list(groups)})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.mark.slow
def test_cli_push_versions_activate_and_run(server: Any, tmp_path: Path) -> None:
    flow = tmp_path / "hello.yaml"
    flow.write_text(HELLO)
    pushed = server.cli("push", str(flow), "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["version"] == 1
    assert "unchanged, version 1" in server.cli("push", str(flow)).stdout
    flow.write_text(HELLO.replace("echo b", "echo bee"))
    assert "new version 2" in server.cli("push", str(flow)).stdout
    listed = server.cli("versions", "hello").stdout.splitlines()
    assert listed[0].startswith(" ") and listed[1].startswith("*")
    assert server.cli("activate", "hello", "1").returncode == 0
    assert "*    1" in server.cli("versions", "hello").stdout
    ran = server.cli("run", str(flow), "-p", "n=3", "--json")
    assert ran.returncode == 0, ran.stderr
    detail = json.loads(ran.stdout)  # one document
    run_id = detail["id"]
    assert detail["status"] == "succeeded"
    assert detail["params"] == {"n": 3}
    # `kaon run FILE` ran the pushed content (version 2) without activating it.
    assert "*    1" in server.cli("versions", "hello").stdout
    shown = server.cli("show", run_id[:17], "--json")
    assert json.loads(shown.stdout)["steps"][1]["status"] == "succeeded"
    assert server.cli("logs", run_id, "b").stdout.strip().endswith("bee")
    assert run_id in server.cli("runs", "--workflow", "hello").stdout
    props = server.cli("workflow", "set", "hello", "run_strategy=sequential", "concurrency=2")
    assert props.returncode == 0, props.stderr
    shown_wf = json.loads(server.cli("workflow", "show", "hello", "--json").stdout)
    assert shown_wf["properties"] == {"run_strategy": "sequential", "concurrency": 2}
    signal = server.cli("signal", "data_ready", "day=2024-01-01", "n=3", "--json")
    assert json.loads(signal.stdout)["params"] == {"day": "2024-01-01", "n": 3}
    bad = server.cli("run", str(flow), "-p", "n=x")
    assert bad.returncode == 2 and "params.n" in bad.stderr


def test_runs_started_over_http_succeed_and_stream_events(server: Any, wait: Any) -> None:
    admin = server.client()
    push(admin, HELLO, "hello.yaml")
    started = admin.post("/runs", json={"workflow": "hello", "params": {"n": 4}})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    seen: list[dict[str, Any]] = []
    with admin.stream("GET", "/events", params={"run_id": run_id}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                last = seen[-1]
                if last["kind"] == "run" and last["data"]["status"] == "succeeded":
                    break
    steps = [(e["data"]["path"], e["data"]["status"]) for e in seen if e["kind"] == "step"]
    assert ("a", "succeeded") in steps and ("b", "succeeded") in steps
    assert all(e["run_id"] == run_id for e in seen)
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids)
    assert wait(admin, run_id, {"succeeded"})["params"] == {"n": 4}
    # Reconnecting after an id misses nothing and repeats nothing.
    with admin.stream("GET", "/events", params={"run_id": run_id, "after": ids[2]}) as stream:
        for line in stream.iter_lines():
            if line.startswith("id:"):
                assert int(line[3:]) == ids[3]
                break
    metrics = admin.get("/metrics").text
    assert 'kaon_runs{status="succeeded"} 1.0' in metrics


def test_an_open_event_stream_ends_when_its_token_is_revoked(server: Any) -> None:
    admin = server.client()
    made = admin.post("/tokens", json={"name": "watcher", "role": "viewer", "groups": []})
    assert made.status_code == 201, made.text
    watcher = server.client(made.json()["token"])
    began = time.monotonic()
    with watcher.stream("GET", "/events", timeout=60) as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        assert admin.delete(f"/tokens/{made.json()['id']}").status_code in (200, 204)
        for _line in lines:  # the stream keeps going until the server ends it
            assert time.monotonic() - began < 45, "the stream outlived its revoked token"
    assert time.monotonic() - began < 45
    assert watcher.get("/events").status_code == 401


def test_auth_denials_and_audit(server: Any) -> None:
    admin = server.client()
    push(admin, HELLO, "hello.yaml")
    anonymous = server.client(token="")
    assert anonymous.get("/runs").status_code == 401
    assert anonymous.get("/healthz").status_code == 200
    viewer = server.client(token(admin, "vera", "viewer"))
    operator = server.client(token(admin, "otto", "operator", "ml"))
    assert viewer.get("/runs").status_code == 200
    assert viewer.post("/runs", json={"workflow": "hello"}).status_code == 403
    denied = operator.post("/workflows", json={"source": HELLO, "file_name": "h.yaml"})
    assert denied.status_code == 403 and "needs owner" in denied.json()["message"]
    started = operator.post("/runs", json={"workflow": "hello"})
    assert started.status_code == 201
    cli = server.cli("runs", token="")
    assert cli.returncode == 2 and "KAON_TOKEN" in cli.stderr  # the user can fix it
    audit = admin.get("/audit").json()
    done = {(a["actor"], a["action"]) for a in audit}
    assert ("root", "workflow.push") in done
    assert ("otto", "run.start") in done
    assert ("root", "token.create") in done
    # A refused attempt is audited as such, and only as such.
    assert {a["action"] for a in audit if a["actor"] == "vera"} == {"auth.refused"}
    assert ("otto", "auth.refused") in done and ("anonymous", "auth.refused") in done
    assert viewer.get("/audit").status_code == 403


def test_kill_restart_skip_over_the_api(server: Any, wait: Any, tmp_path: Path) -> None:
    admin = server.client()
    flag = tmp_path / "flag"
    push(admin, FLAKY.format(flag=flag), "flaky.yaml")
    push(admin, SLOW, "slow.yaml")
    failed = admin.post("/runs", json={"workflow": "flaky"}).json()["id"]
    wait(admin, failed, {"failed"})
    flag.write_text("ok")
    restarted = admin.post(f"/runs/{failed}/restart")
    assert restarted.status_code == 200 and restarted.json()["status"] == "pending"
    assert wait(admin, failed, {"succeeded"})["restarts"] == 1
    flag.unlink()
    again = admin.post(f"/runs/{failed}/restart", json={"from_step": "check"})
    assert again.status_code == 200
    wait(admin, failed, {"failed"})
    skipped = admin.post(f"/runs/{failed}/skip", json={"path": "check"})
    assert skipped.json()["how"] == "recorded"
    admin.post(f"/runs/{failed}/restart")
    detail = wait(admin, failed, {"succeeded"})
    assert [s["status"] for s in detail["steps"]] == ["skipped", "succeeded"]
    slow = admin.post("/runs", json={"workflow": "slow"}).json()["id"]
    wait(admin, slow, {"running"})
    busy = admin.post(f"/runs/{slow}/restart")
    assert busy.status_code == 409 and "only a finished run" in busy.json()["message"]
    killed = admin.post(f"/runs/{slow}/kill")
    assert killed.status_code == 200 and killed.json()["status"] == "cancelled"


def test_bad_input_gets_precise_4xx(server: Any) -> None:
    admin = server.client()
    push(admin, HELLO, "hello.yaml")
    raw = admin.post(
        "/runs", content=b'{"workflow": ', headers={"Content-Type": "application/json"}
    )
    assert raw.status_code == 422 and "JSON" in raw.json()["message"]
    extra = admin.post("/runs", json={"workflow": "hello", "paramz": {}})
    assert extra.status_code == 422 and extra.json()["problems"][0]["field"] == "body.paramz"
    typed = admin.post("/runs", json={"workflow": "hello", "params": {"n": [1]}})
    assert typed.status_code == 422 and typed.json()["error"] == "ParameterError"
    assert admin.get("/runs/20990101-000000-abcdef").status_code == 404
    assert admin.get("/workflows/ghost/versions").status_code == 404
    assert admin.post("/workflows/hello/activate", json={"version": 0}).status_code == 422
    assert admin.post("/workflows/hello/activate", json={"version": 9}).status_code == 404
    assert admin.get("/runs", params={"limit": 0}).status_code == 422
    assert admin.get("/events", params={"run_id": "nope"}).status_code == 404


def test_sigterm_then_a_new_server_resumes_the_run(tmp_path: Path, launch: Any, wait: Any) -> None:
    home = tmp_path / "home"
    first = launch(home)
    admin = first.client()
    source = (
        "name: nap\nsteps:\n  - id: sleep\n    shell: sleep 2\n"
        "  - id: done\n    shell: echo done\n    needs: [sleep]\n"
    )
    push(admin, source, "nap.yaml")
    run_id = admin.post("/runs", json={"workflow": "nap"}).json()["id"]
    wait(admin, run_id, {"running"})
    time.sleep(0.5)
    started = time.monotonic()
    assert first.stop() == 0, first.logs()
    assert time.monotonic() - started < 15
    second = launch(home)
    try:
        detail = wait(second.client(), run_id, {"succeeded", "failed"}, timeout=60)
        assert detail["status"] == "succeeded", detail
    finally:
        assert second.stop() == 0, second.logs()

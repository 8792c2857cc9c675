"""Tenant isolation against a real server: a signal reaches only the workflows its sender
may operate (triggers and wait steps), a retried run start never duplicates the run, and
anonymous 100 MB bodies during a run load leave the server's memory bounded."""

from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from conftest import ServerProcess

pytestmark = pytest.mark.integration

B_TRIGGERED = """
name: b_flow
steps:
  - id: a
    shell: echo b
triggers:
  - signal: b_go
"""

B_WAITING = """
name: b_wait
steps:
  - id: hold
    wait: b_release
  - id: after
    shell: echo released
    needs: [hold]
"""

HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hi\n"


def token(admin: httpx.Client, name: str, role: str, groups: list[str]) -> str:
    answer = admin.post("/tokens", json={"name": name, "role": role, "groups": groups})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def runs_of(client: httpx.Client, workflow: str) -> list[dict[str, Any]]:
    return list(client.get("/runs", params={"workflow": workflow}).json())


def test_signals_reach_only_workflows_the_sender_may_operate(server: ServerProcess) -> None:
    admin = server.client()
    owner_b = server.client(token(admin, "owner-b", "owner", ["b"]))
    operator_a = server.client(token(admin, "operator-a", "operator", ["a"]))
    operator_b = server.client(token(admin, "operator-b", "operator", ["b"]))
    for source, name in ((B_TRIGGERED, "b_flow.yaml"), (B_WAITING, "b_wait.yaml")):
        pushed = owner_b.post("/workflows", json={"source": source, "file_name": name})
        assert pushed.status_code == 200, pushed.text
    assert operator_a.post("/runs", json={"workflow": "b_wait"}).status_code == 403
    waiting = operator_b.post("/runs", json={"workflow": "b_wait"}).json()["id"]
    deadline = time.monotonic() + 30
    while admin.get(f"/runs/{waiting}/steps/hold").json().get("status") != "waiting":
        assert time.monotonic() < deadline, "the run never waited"
        time.sleep(0.1)
    time.sleep(1.0)  # the trigger loop has seen b_flow: signals from now on count
    for _ in range(3):
        assert operator_a.post("/signals", json={"name": "b_go"}).status_code == 201
    assert operator_a.post("/signals", json={"name": "b_release"}).status_code == 201
    time.sleep(3.0)
    assert runs_of(admin, "b_flow") == []
    assert admin.get(f"/runs/{waiting}/steps/hold").json()["status"] == "waiting"
    assert operator_b.post("/signals", json={"name": "b_go"}).status_code == 201
    assert operator_b.post("/signals", json={"name": "b_release"}).status_code == 201
    deadline = time.monotonic() + 30
    while not (
        runs_of(admin, "b_flow") and admin.get(f"/runs/{waiting}").json()["status"] == "succeeded"
    ):
        assert time.monotonic() < deadline, "operator b's signals did not reach b"
        time.sleep(0.2)
    assert len(runs_of(admin, "b_flow")) == 1


def test_a_retried_run_start_returns_the_first_run(server: ServerProcess) -> None:
    admin = server.client()
    assert admin.post("/workflows", json={"source": HELLO, "file_name": "hello.yaml"}).is_success
    key = {"Idempotency-Key": "retry-1"}
    first = admin.post("/runs", json={"workflow": "hello"}, headers=key)
    again = admin.post("/runs", json={"workflow": "hello"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(runs_of(admin, "hello")) == 1
    other = admin.post("/runs", json={"workflow": "hello", "labels": {"x": "y"}}, headers=key)
    assert other.status_code == 409


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _stream_anonymous_body(url: str, megabytes: int, outcome: list[str]) -> None:
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /signals HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {megabytes * 1024 * 1024}\r\n\r\n"
    ).encode()
    chunk = b"x" * (1024 * 1024)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        try:
            sock.sendall(head)
            for _ in range(megabytes):
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed without reading: what we want
        try:
            outcome.append(sock.recv(200).decode(errors="replace").split("\r\n")[0])
        except OSError as exc:
            outcome.append(f"closed: {exc}")


def test_anonymous_100_mb_bodies_during_runs_keep_memory_bounded(server: ServerProcess) -> None:
    admin = server.client()
    assert admin.post("/workflows", json={"source": HELLO, "file_name": "hello.yaml"}).is_success
    started = [admin.post("/runs", json={"workflow": "hello"}).json()["id"] for _ in range(6)]
    peak = 0.0
    outcome: list[str] = []
    senders = [
        threading.Thread(target=_stream_anonymous_body, args=(server.url, 100, outcome))
        for _ in range(4)
    ]
    for sender in senders:
        sender.start()
    while any(s.is_alive() for s in senders):
        peak = max(peak, _rss_mb(server.process.pid))
        time.sleep(0.05)
    for sender in senders:
        sender.join()
    assert len(outcome) == 4
    assert all("401" in line or "closed" in line or line == "" for line in outcome), outcome
    sys.stdout.write(f"server RSS peak during 4 x 100 MB anonymous bodies: {peak:.0f} MB\n")
    assert peak < 300, f"server RSS peaked at {peak:.0f} MB"
    deadline = time.monotonic() + 60
    while {admin.get(f"/runs/{r}").json()["status"] for r in started} != {"succeeded"}:
        assert time.monotonic() < deadline, "the runs did not finish"
        time.sleep(0.2)

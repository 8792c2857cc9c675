"""A real ``kaon server`` survives expressions over their cost budget (issue 12).

Before cost limits, an expression could ask for terabytes (the server aborted, and again on
every restart while resuming the run) or hold the interpreter lock for minutes (``/healthz``
took 36 s). Now a literal bomb is refused when pushed, one whose size comes from a run's
parameters fails that run's step before evaluating, and the server stays responsive and
finishes other runs.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

DOUBLING = '["ab"]' + ".map(x, x + x)" * 40
NESTED = "params.L.map(a, params.L.map(b, params.L))"
BOMB = f"""\
name: bomb
steps:
  - id: a
    shell: echo never
    when: ${{{{ size({DOUBLING}) > 0 }}}}
"""
HEAVY = f"""\
name: heavy
params:
  L: {{type: list}}
steps:
  - id: nested
    shell: echo never
    when: ${{{{ size({NESTED}) > 0 }}}}
  - id: tagged
    shell: echo $KAON_INPUT_N
    inputs: {{n: "${{{{ params.L.filter(a, params.L.exists(b, b < 0)).size() }}}}"}}
"""
HELLO = "name: hello\nsteps:\n  - id: a\n    shell: echo hello\n"


def _healthz_seconds(url: str) -> float:
    started = time.monotonic()
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    return time.monotonic() - started


def test_server_stays_up_and_other_runs_finish(server: Any, wait: Any) -> None:
    admin = server.client()
    refused = admin.post("/workflows", json={"source": BOMB, "file_name": "bomb.yaml"})
    assert refused.status_code == 422, refused.text
    assert "over its budget" in refused.text and "bomb.yaml" in refused.text
    pushed = admin.post("/workflows", json={"source": HEAVY, "file_name": "heavy.yaml"})
    assert pushed.status_code == 200, pushed.text
    assert admin.post("/workflows", json={"source": HELLO, "file_name": "hello.yaml"}).is_success

    heavy = admin.post("/runs", json={"workflow": "heavy", "params": {"L": list(range(600))}})
    assert heavy.status_code == 201, heavy.text
    hello = admin.post("/runs", json={"workflow": "hello"})
    assert hello.status_code == 201, hello.text
    assert _healthz_seconds(server.url) < 2.0

    detail = wait(admin, heavy.json()["id"], {"failed", "succeeded"}, timeout=60)
    assert detail["status"] == "failed"
    step = admin.get(f"/runs/{heavy.json()['id']}/steps/nested").json()
    error = step["error"]
    assert error["type"] == "ExpressionError" and "over its budget" in error["message"]
    assert "heavy.yaml" in error["message"] and "when" in error["message"]
    assert wait(admin, hello.json()["id"], {"succeeded"}, timeout=60)["status"] == "succeeded"
    assert _healthz_seconds(server.url) < 2.0
    assert server.process.poll() is None  # still running

    again = admin.post("/runs", json={"workflow": "hello"})
    assert wait(admin, again.json()["id"], {"succeeded"}, timeout=60)["status"] == "succeeded"

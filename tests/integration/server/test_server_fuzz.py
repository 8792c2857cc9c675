"""Schemathesis fuzzes the server's own OpenAPI schema: no 5xx, no schema violation.

Every check runs (``--checks all``) against a server holding one workflow and one finished
run, whose names are given to the fuzzer so that path parameters reach real resources. Two
operations validate meaning the schema cannot express (a workflow file's content, a
workflow's declared parameters): for them a schema-valid request may also get 422. The live
stream ``/events`` never ends by design and is tested in test_server_http.py instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ST = str(Path(sys.executable).parent / "st")
HELLO = (
    "name: hello\nparams:\n  n: {type: int, default: 2}\nsteps:\n  - id: a\n    shell: echo hi\n"
)


def test_schemathesis_finds_no_server_error_or_schema_violation(
    server: Any, wait: Any, tmp_path: Path
) -> None:
    admin = server.client()
    body = {"source": HELLO, "file_name": "hello.yaml", "owner_group": "ml"}
    assert admin.post("/workflows", json=body).is_success
    run_id = admin.post("/runs", json={"workflow": "hello"}).json()["id"]
    wait(admin, run_id, {"succeeded"})
    report = _fuzz(server, server.token, run_id, tmp_path, examples=15)
    assert "Tested:" in report
    _reads_still_work(server)


@pytest.mark.parametrize(
    ("role", "group"), [("owner", "ml"), ("operator", "ml"), ("viewer", "other")]
)
def test_schemathesis_stateful_with_each_role_finds_no_server_error(
    server: Any, wait: Any, tmp_path: Path, role: str, group: str
) -> None:
    """Each role's token (in the owning group, or another) fuzzes and chains calls through
    the schema's links; afterwards every list a person reads still answers 200."""
    admin = server.client()
    body = {"source": HELLO, "file_name": "hello.yaml", "owner_group": "ml"}
    assert admin.post("/workflows", json=body).is_success
    run_id = admin.post("/runs", json={"workflow": "hello"}).json()["id"]
    wait(admin, run_id, {"succeeded"})
    made = admin.post("/tokens", json={"name": role, "role": role, "groups": [group]})
    secret = made.json()["token"]
    # One worker: CPython 3.11's parser is not thread-safe under hypothesis' lambda
    # descriptions ("AST constructor recursion depth mismatch"), a client-side flake.
    _fuzz(
        server, secret, run_id, tmp_path, examples=5, phases="examples,fuzzing,stateful", workers=1
    )
    _reads_still_work(server)


def _reads_still_work(server: Any) -> None:
    """Every list a person reads answers 200, asked with a fresh admin token (the fuzzer
    may have rotated or revoked the ones it knew)."""
    from kaon.api.app import build_services
    from kaon.service.settings import Settings

    services = build_services(Settings.from_env(home=str(server.home)))
    try:
        secret = services.auth.create_token("checker", "admin")[1]
    finally:
        services.runs.close()
    admin = server.client(secret)
    for path in ("/tokens", "/signals", "/audit", "/workflows", "/runs", "/backfills"):
        answer = admin.get(path, params={"limit": 1000} if path == "/audit" else None)
        assert answer.status_code == 200, (path, answer.text[:500])


def _fuzz(
    server: Any,
    secret: str,
    run_id: str,
    tmp_path: Path,
    *,
    examples: int,
    phases: str = "examples,coverage,fuzzing",
    workers: int = 2,
) -> str:
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"""
headers = {{ Authorization = "Bearer {secret}" }}

[parameters]
"path.name" = "hello"
"path.run_id" = "{run_id}"
"path.path" = "a"
"path.version" = 1

[[operations]]
include-path = ["/workflows", "/runs"]
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = [200, 201, 401, 403, 404, 409, 422]
"""
    )
    command = [ST, "--no-color", "--config-file", str(config), "run", f"{server.url}/openapi.json"]
    command += [
        "--checks",
        "all",
        "--max-examples",
        os.environ.get("KAON_FUZZ_EXAMPLES", str(examples)),
        "--seed",
        os.environ.get("KAON_FUZZ_SEED", "7"),
        "--no-shrink",
    ]
    command += ["--exclude-path", "/events", "--phases", phases]
    command += ["--request-timeout", "20", "--workers", str(workers)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        check=False,
    )
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    return str(done.stdout)

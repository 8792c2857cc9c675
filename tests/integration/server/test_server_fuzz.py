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
    assert admin.post("/workflows", json={"source": HELLO, "file_name": "hello.yaml"}).is_success
    run_id = admin.post("/runs", json={"workflow": "hello"}).json()["id"]
    wait(admin, run_id, {"succeeded"})
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"""
headers = {{ Authorization = "Bearer {server.token}" }}

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
        os.environ.get("KAON_FUZZ_EXAMPLES", "15"),
        "--seed",
        os.environ.get("KAON_FUZZ_SEED", "7"),
        "--no-shrink",
    ]
    command += ["--exclude-path", "/events", "--phases", "examples,coverage,fuzzing"]
    command += ["--request-timeout", "20", "--workers", "2"]
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
    assert "Tested:" in done.stdout

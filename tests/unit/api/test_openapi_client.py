"""A Python client generated from the OpenAPI document alone (openapi-python-client, which
the Makefile fetches into ``.venv/tools``) pushes a workflow, starts a run and reads it back
with typed models, and gets the documented error body for a bad request: the document is
usable as it is published."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from kaon.api.app import create_app
from kaon.api.deps import Services

TOOLS = Path(sys.executable).parent.parent / "tools"
FLOW = "name: hello\nparams:\n  n: {type: int, default: 2}\nsteps:\n  - id: a\n    shell: echo hi\n"


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = sorted(TOOLS.glob("openapi_python_client-*.whl"))
    assert wheels, f"no openapi-python-client wheel in {TOOLS}: run `make test` (it fetches it)"
    target = tmp_path_factory.mktemp("generator")
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
    subprocess.run(
        [*install, str(target), str(wheels[-1])],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return target


def _generate(services: Services, generator: Path, where: Path) -> Any:
    document = where / "openapi.json"
    document.write_text(json.dumps(create_app(services).openapi()))
    bin_dir = str(Path(sys.executable).parent)  # the generator formats with ruff from here
    generate = [sys.executable, "-m", "openapi_python_client", "generate", "--meta", "none"]
    subprocess.run(
        [*generate, "--path", str(document), "--output-path", str(where / "kaon_api")],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(generator), "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module("kaon_api")
    finally:
        sys.path.remove(str(where))


def test_a_generated_client_drives_the_api(
    services: Services, tokens: dict[str, str], generator: Path, tmp_path: Path
) -> None:
    api = _generate(services, generator, tmp_path)
    push = importlib.import_module("kaon_api.api.workflows.push")
    start = importlib.import_module("kaon_api.api.runs.start_run")
    get_run = importlib.import_module("kaon_api.api.runs.get_run")
    models = importlib.import_module("kaon_api.models")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient warns about httpx at import
        from fastapi.testclient import TestClient
    with TestClient(
        create_app(services), headers={"Authorization": f"Bearer {tokens['admin']}"}
    ) as http:
        client = api.AuthenticatedClient(base_url="http://testserver", token=tokens["admin"])
        client.set_httpx_client(http)

        pushed = push.sync(client=client, body=models.PushRequest(source=FLOW, file_name="h.yaml"))
        assert isinstance(pushed, models.PushResult) and pushed.version == 1
        params = models.StartRunRequestParams.from_dict({"n": 3})
        run = start.sync(
            client=client, body=models.StartRunRequest(workflow="hello", params=params)
        )
        assert isinstance(run, models.RunView) and run.status == "pending"
        services.runs.execute(run.id)
        done = get_run.sync(run.id, client=client)
        assert done is not None and done.status == "succeeded"
        assert done.params.to_dict() == {"n": 3}

        bad = start.sync_detailed(client=client, body=models.StartRunRequest(workflow="nope"))
        assert bad.status_code == 404
        assert isinstance(bad.parsed, models.ErrorBody) and "nope" in bad.parsed.message

"""A step whose attempt failed on the artifact store, against a real S3 API (a moto server on
a loopback port): a store that refuses Kaon (no credentials) fails the step at once, with the
store and the fix named, instead of spending the platform retry budget."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import moto.server as moto_server
import pytest
from conftest import Harness, flow, task

from kaon.artifacts import open_artifact_store
from kaon.engine.engine import Engine
from kaon.executors import create_executor
from kaon.model.status import RunStatus, StepStatus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1, stopped after the module."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"kaon-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


def _s3_env(monkeypatch: pytest.MonkeyPatch, tmp: Path, endpoint: str, *, keys: bool) -> None:
    """Steps and the engine reach ``endpoint``, with test keys or no credentials at all."""
    monkeypatch.setenv("KAON_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    if keys:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def test_a_store_refusing_kaon_fails_the_step_without_platform_retries(
    inline: Harness, endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3_env(monkeypatch, inline.tmp, endpoint, keys=False)
    url = f"s3://{bucket}/no-credentials"
    engine = Engine(inline.store, create_executor("inline", workers=2), open_artifact_store(url))
    run_id = inline.create(flow(task("big", "biglist", inputs={"n": 10_000})))
    assert inline.drive(run_id, engine=engine) is RunStatus.FAILED
    row = inline.rows(run_id)["big"]
    assert row.status is StepStatus.FAILED
    assert len(inline.store.attempts(run_id, row.id)) == 1  # not 1 + platform_attempts (3)
    error = row.error or {}
    assert error.get("type") == "kaon.errors.ArtifactAccessError", error
    message = str(error.get("message"))
    assert url in message and "Unable to locate credentials" in message, message
    assert "AWS_ACCESS_KEY_ID" in message, message

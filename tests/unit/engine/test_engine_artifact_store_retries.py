"""A step whose attempt failed on the artifact store, against a real S3 API (a moto server on
a loopback port): a store that refuses Kaon (no credentials) fails the step at once, with the
store and the fix named, instead of spending the platform retry budget; a store that does not
answer (stopped) is retried after a pause (the step ``retrying``, its next attempt's time
recorded), so that an S3 restart is ridden out."""

from __future__ import annotations

import logging
import socket
import threading
import time
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


def _create_bucket(endpoint: str, name: str) -> None:
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)


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


def test_a_step_failed_by_a_stopped_store_retries_after_a_pause_and_rides_it_out(
    inline: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()  # S3 is stopped: nothing listens there yet
    endpoint = f"http://127.0.0.1:{port}"
    _s3_env(monkeypatch, inline.tmp, endpoint, keys=True)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # each attempt fails at once, not in seconds
    bucket = f"kaon-{uuid.uuid4().hex[:12]}"
    url = f"s3://{bucket}/restarted"
    engine = Engine(inline.store, create_executor("inline", workers=2), open_artifact_store(url))
    run_id = inline.create(flow(task("big", "biglist", inputs={"n": 10_000})))
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    timer = threading.Timer(60.0, engine.stop)
    timer.start()
    started = False
    try:
        engine.start()
        engine.add_run(run_id)
        with caplog.at_level(logging.WARNING, logger="kaon.engine"):
            inline.turn_until(engine, run_id, "big", StepStatus.RETRYING)
        failed_at = time.time()
        row = inline.rows(run_id)["big"]
        assert row.platform_attempts == 1
        assert row.next_attempt_at is not None
        pause = row.next_attempt_at - failed_at
        assert 1.0 < pause <= 2.0, pause  # the first pause: 2 s
        assert "ArtifactUnavailableError" in str((row.error or {}).get("type")), row.error
        assert any(
            "the artifact store failed the attempt; platform retry 1 of 3 in 2s" in r.getMessage()
            for r in caplog.records
        ), [r.getMessage() for r in caplog.records]
        server.start()  # S3 is back before the pause ends
        started = True
        _create_bucket(endpoint, bucket)
        assert engine.run_until_done(run_id) is RunStatus.SUCCEEDED
    finally:
        timer.cancel()
        engine.close()
        if started:
            server.stop()
    row = inline.rows(run_id)["big"]
    assert (row.status, row.platform_attempts) == (StepStatus.SUCCEEDED, 1)
    assert len(inline.store.attempts(run_id, row.id)) == 2

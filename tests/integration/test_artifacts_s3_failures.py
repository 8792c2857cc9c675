"""How the artifact store reports S3 failing, against a real S3 API (a moto server on a
loopback port): a refusal that lasts until the configuration is fixed (no credentials, an
unknown key, no such bucket) is an ArtifactAccessError naming the store and what to fix;
an outage stays an ArtifactUnavailableError; a server that hangs (SIGSTOP) fails a call
within the time limit of ``KAON_S3_TIMEOUT_S``, saying the store is not answering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kaon.artifacts import FsspecArtifactStore, fsspec_options
from kaon.errors import ArtifactAccessError, ArtifactError, ArtifactUnavailableError
from kaon.model.values import ArtifactRef

pytestmark = pytest.mark.integration

import boto3  # noqa: E402  (the dev extra installs them: these tests never skip)
import requests  # noqa: E402
from moto_s3 import free_port, moto_endpoint  # noqa: E402

REGION = {"client_kwargs": {"region_name": "us-east-1"}}
CREDENTIALS = {"key": "testing", "secret": "testing", **REGION}
FAST_FAIL = {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1}}
ROWS = list(range(10_000))  # past the inline limit: written as a blob
SOME_BLOB = ArtifactRef("ab" * 32, "json", 10, "builtins.list")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1, stopped after the module."""
    with moto_endpoint() as url:
        yield url


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"kaon-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No AWS credentials from the environment, a profile or an instance's metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _store(url: str, endpoint: str, **options: Any) -> FsspecArtifactStore:
    # A new instance (not open_artifact_store's cache): s3fs caches its filesystems by
    # options, so a fresh ``skip_instance_cache`` keeps one test's client from another's.
    return FsspecArtifactStore(
        url, endpoint_url=endpoint, config_kwargs=FAST_FAIL, skip_instance_cache=True, **options
    )


def _each_call(store: FsspecArtifactStore) -> list[tuple[str, Any]]:
    return [
        ("put", lambda: store.put(ROWS, name="rows")),
        ("get", lambda: store.get(SOME_BLOB)),
        ("exists", lambda: store.exists(SOME_BLOB)),
        ("delete", lambda: store.delete_blob(SOME_BLOB.hash)),
        ("list", lambda: list(store.iter_blobs())),
    ]


@pytest.mark.usefixtures("no_ambient_credentials")
def test_no_credentials_is_a_refusal_naming_the_store_and_the_fix(
    endpoint: str, bucket: str
) -> None:
    store = _store(f"s3://{bucket}/prefix", endpoint, **REGION)
    for call, action in _each_call(store):
        with pytest.raises(ArtifactAccessError) as caught:
            action()
        message = str(caught.value)
        assert f"s3://{bucket}/prefix" in message, (call, message)
        assert "Unable to locate credentials" in message, (call, message)
        assert "AWS_ACCESS_KEY_ID" in message, (call, message)
        assert not isinstance(caught.value, ArtifactUnavailableError), call


def test_a_missing_bucket_is_a_refusal_naming_it(endpoint: str) -> None:
    store = _store("s3://kaon-no-such-bucket/prefix", endpoint, **CREDENTIALS)
    with pytest.raises(ArtifactAccessError, match="bucket does not exist") as caught:
        store.put(ROWS, name="rows")
    assert "s3://kaon-no-such-bucket/prefix" in str(caught.value)
    with pytest.raises(ArtifactAccessError, match="bucket does not exist"):
        store.get(SOME_BLOB)  # not "blob ... is missing": the bucket is


def test_an_unknown_access_key_is_a_refusal(endpoint: str, bucket: str) -> None:
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        store = _store(f"s3://{bucket}/prefix", endpoint, key="nobody", secret="x", **REGION)
        with pytest.raises(ArtifactAccessError, match="refuses the credentials") as caught:
            store.put(ROWS, name="rows")
        assert "AWS_ACCESS_KEY_ID" in str(caught.value)
    finally:  # moto's own API is not signed: it answers whatever the auth setting
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)


def test_an_unreachable_store_stays_an_outage() -> None:
    port = free_port()  # closed again: nothing listens there
    store = _store("s3://kaon-unreachable/prefix", f"http://127.0.0.1:{port}", **CREDENTIALS)
    with pytest.raises(ArtifactUnavailableError, match="cannot write blob"):
        store.put(ROWS, name="rows")


def test_a_missing_blob_in_an_existing_bucket_is_still_missing(endpoint: str, bucket: str) -> None:
    store = _store(f"s3://{bucket}/prefix", endpoint, **CREDENTIALS)
    with pytest.raises(ArtifactError, match="missing") as caught:
        store.get(SOME_BLOB)
    assert not isinstance(caught.value, ArtifactAccessError | ArtifactUnavailableError)


@pytest.fixture
def moto_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A moto S3 server in a process of its own (to stop it with SIGSTOP), killed after."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield server, endpoint
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.kill()
        server.wait(timeout=10)


def test_a_hung_store_fails_a_call_within_its_time_limit_as_not_answering(
    moto_process: tuple[subprocess.Popen[bytes], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, endpoint = moto_process
    name = f"kaon-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    monkeypatch.setenv("KAON_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("KAON_S3_TIMEOUT_S", "1")
    url = f"s3://{name}/prefix"
    store = FsspecArtifactStore(url, **fsspec_options(url), skip_instance_cache=True, **CREDENTIALS)
    store.put(ROWS, name="rows")  # the store answers: connections are open
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            store.put(list(range(20_000)), name="more")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    os.kill(server.pid, signal.SIGSTOP)  # the server hangs: it accepts, never answers
    started = time.monotonic()
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(timeout=20)
    took = time.monotonic() - started
    os.kill(server.pid, signal.SIGCONT)
    writer.join(timeout=60)
    assert took < 20, "the call waited on the hung store for 20 s and more"
    assert len(outcome) == 1 and isinstance(outcome[0], ArtifactUnavailableError), outcome
    message = str(outcome[0])
    assert "not answering" in message and url in message, message


def test_a_time_limit_that_is_not_seconds_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAON_S3_TIMEOUT_S", "fast")
    with pytest.raises(ArtifactError, match="KAON_S3_TIMEOUT_S must be a number of seconds"):
        fsspec_options("s3://bucket/prefix")

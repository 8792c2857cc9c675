"""The artifact store against a real S3 API: a moto server on a loopback port."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kaon.artifacts import FsspecArtifactStore, open_artifact_store
from kaon.errors import ArtifactError, CorruptArtifactError
from kaon.model.values import ArtifactRef, Literal, RefList

pytestmark = pytest.mark.integration

import boto3  # noqa: E402  (the dev extra installs them: these tests never skip)
import pandas as pd  # noqa: E402
from moto_s3 import free_port, moto_endpoint  # noqa: E402

CREDENTIALS = {"key": "testing", "secret": "testing", "client_kwargs": {"region_name": "us-east-1"}}
FAST_FAIL = {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1}}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1, stopped after the module."""
    with moto_endpoint() as url:
        yield url


@pytest.fixture
def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"kaon-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(endpoint: str, bucket: str) -> FsspecArtifactStore:
    opened = open_artifact_store(
        f"s3://{bucket}/prefix", endpoint_url=endpoint, config_kwargs=FAST_FAIL, **CREDENTIALS
    )
    assert isinstance(opened, FsspecArtifactStore)
    return opened


def _key(ref: ArtifactRef) -> str:
    return f"prefix/blobs/{ref.hash[:2]}/{ref.hash}"


def _blob(store: FsspecArtifactStore, value: Any) -> ArtifactRef:
    ref = store.put(value, name="out")
    assert isinstance(ref, ArtifactRef)
    return ref


def test_round_trips(store: FsspecArtifactStore, s3_client: Any, bucket: str) -> None:
    frame = pd.DataFrame({"a": range(1_000), "b": [i / 3 for i in range(1_000)]})
    big = {f"k{i}": i for i in range(3_000)}
    frame_ref, big_ref = _blob(store, frame), _blob(store, big)
    assert frame_ref.serializer == "parquet"
    assert big_ref.serializer == "json"
    assert store.put({"small": 1}) == Literal({"small": 1})
    pd.testing.assert_frame_equal(store.get(frame_ref), frame)
    assert store.get(RefList((big_ref, Literal(2)))) == [big, 2]
    head = s3_client.head_object(Bucket=bucket, Key=_key(frame_ref))
    assert head["ContentLength"] == frame_ref.size
    assert store.blob_path(frame_ref) == f"s3://{bucket}/{_key(frame_ref)}"


def test_dedupe_and_listing(store: FsspecArtifactStore) -> None:
    first = _blob(store, list(range(10_000)))
    assert _blob(store, list(range(10_000))) == first
    assert store.exists(first)
    assert list(store.iter_blobs()) == [(first.hash, first.size)]


def test_corruption_is_detected(store: FsspecArtifactStore, s3_client: Any, bucket: str) -> None:
    ref = _blob(store, list(range(10_000)))
    body = bytearray(s3_client.get_object(Bucket=bucket, Key=_key(ref))["Body"].read())
    body[0] ^= 0xFF
    s3_client.put_object(Bucket=bucket, Key=_key(ref), Body=bytes(body))
    with pytest.raises(CorruptArtifactError, match=ref.hash):
        store.get(ref)


def test_missing_blob(store: FsspecArtifactStore, s3_client: Any, bucket: str) -> None:
    ref = _blob(store, list(range(10_000)))
    s3_client.delete_object(Bucket=bucket, Key=_key(ref))
    assert not store.exists(ref)
    with pytest.raises(ArtifactError, match="missing"):
        store.get(ref)
    ref = _blob(store, list(range(10_000)))  # written again
    store.delete_blob(ref.hash)
    assert list(store.iter_blobs()) == []


def test_unreachable_store_fails_fast() -> None:
    port = free_port()  # closed again: nothing listens there
    store = open_artifact_store(
        "s3://kaon-unreachable/prefix",
        endpoint_url=f"http://127.0.0.1:{port}",
        config_kwargs=FAST_FAIL,
        **CREDENTIALS,
    )
    started = time.monotonic()
    with pytest.raises(ArtifactError, match="cannot write blob"):
        store.put(list(range(10_000)), name="rows")
    assert time.monotonic() - started < 10


def test_a_folder_round_trips_through_temporary_files_that_do_not_stay(
    store: FsspecArtifactStore,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 4096)
    ref = _blob(store, folder)
    assert ref.serializer == "files"
    loaded = store.get(ref)
    assert (loaded / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert store._parts_options(200 * 1024**3)["chunksize"] * 10_000 >= 200 * 1024**3
    assert list(temp.iterdir()) == []

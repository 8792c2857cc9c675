"""open_artifact_store: one cached instance per URL and options, safe across threads."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from kaon.artifacts import FsspecArtifactStore, open_artifact_store
from kaon.errors import ArtifactError


def test_same_url_gives_the_same_instance(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "a"))
    assert isinstance(store, FsspecArtifactStore)
    assert open_artifact_store(str(tmp_path / "a")) is store
    assert open_artifact_store(str(tmp_path / "b")) is not store


def test_relative_paths_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_artifact_store("rel")
    assert store.url == str(tmp_path / "rel")
    assert open_artifact_store(str(tmp_path / "rel")) is store


def test_storage_options_are_part_of_the_key() -> None:
    first = open_artifact_store("memory://kaon-open-test", skip_instance_cache=True)
    assert open_artifact_store("memory://kaon-open-test", skip_instance_cache=True) is first
    assert open_artifact_store("memory://kaon-open-test") is not first


def test_concurrent_opens_share_one_instance(tmp_path: Path) -> None:
    url = str(tmp_path / "shared")
    seen: list[object] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        seen.append(open_artifact_store(url))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8
    assert all(s is seen[0] for s in seen)


def test_s3_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAON_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    store = open_artifact_store("s3://kaon-env-test/prefix", key="k", secret="s")
    assert isinstance(store, FsspecArtifactStore)
    assert store._fs.endpoint_url == "http://127.0.0.1:1"
    assert store.blob_path("ab" + "0" * 62) == "s3://kaon-env-test/prefix/blobs/ab/ab" + "0" * 62


def test_unknown_protocol_raises() -> None:
    with pytest.raises(ArtifactError, match="cannot open artifact store"):
        open_artifact_store("nosuchproto://x")


def test_s3_without_s3fs_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec  # noqa: F401  (its registry module, below)

    monkeypatch.setitem(sys.modules, "s3fs", None)  # as in a core install
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(ArtifactError) as info:
        FsspecArtifactStore("s3://kaon-no-driver/prefix")
    expected = "artifacts on s3:// need s3fs, which is not installed: pip install 'kaon[s3]'"
    assert str(info.value) == expected

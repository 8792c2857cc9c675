"""A local store's blob files as a step could leave them: links out of the store, links to
folders, FIFOs. The server reads the store outside the sandbox, so none of them may make it
read (or serve) another file, block, or skip writing a blob."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.errors import ArtifactError
from kaon.model.values import ArtifactRef

SECRET = b"the server's run-token key, 32 b"


def _blob(store: FsspecArtifactStore) -> ArtifactRef:
    ref = store.put({"big": "Z" * 200_000})
    assert isinstance(ref, ArtifactRef)
    return ref


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "run-token.key"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def test_a_blob_replaced_by_a_link_is_neither_served_nor_read(
    local_store: FsspecArtifactStore, secret: Path
) -> None:
    ref = _blob(local_store)
    path = Path(local_store.blob_path(ref))
    path.unlink()
    path.symlink_to(secret)  # what a step may do in a read-write store
    with pytest.raises(ArtifactError, match="not a regular file"):
        local_store.open_blob(ref.hash)  # GET /artifacts/{hash}/blob streams this unverified
    with pytest.raises(ArtifactError, match="not a regular file"):
        local_store.get(ref)
    assert not local_store.exists(ref)
    assert ref.hash not in dict(local_store.iter_blobs())
    again = _blob(local_store)  # the next write of that value puts the blob back
    assert again == ref and not path.is_symlink()
    assert local_store.get(ref) == {"big": "Z" * 200_000}
    assert secret.read_bytes() == SECRET


def test_a_linked_folder_on_the_way_is_not_followed(
    local_store: FsspecArtifactStore, secret: Path
) -> None:
    ref = _blob(local_store)
    shard = Path(local_store.blob_path(ref)).parent
    for blob in shard.iterdir():
        blob.unlink()
    shard.rmdir()
    outside = secret.parent
    (outside / ref.hash).symlink_to(secret)
    shard.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArtifactError, match="not a regular file"):
        local_store.open_blob(ref.hash)
    local_store.delete_blob(ref.hash)  # gc through the link deletes nothing outside
    assert (outside / ref.hash).is_symlink() and secret.read_bytes() == SECRET
    _blob(local_store)  # a write replaces the link by a folder of the store
    assert not shard.is_symlink() and local_store.get(ref) == {"big": "Z" * 200_000}
    assert sorted(p.name for p in outside.iterdir()) == sorted(["run-token.key", ref.hash])


def test_a_fifo_in_place_of_a_blob_does_not_block_the_reader(
    local_store: FsspecArtifactStore,
) -> None:
    ref = _blob(local_store)
    path = Path(local_store.blob_path(ref))
    path.unlink()
    os.mkfifo(path)
    failures: list[BaseException] = []

    def read() -> None:
        try:
            local_store.open_blob(ref.hash)
        except BaseException as error:  # the test reads it
            failures.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "opening a FIFO blocked the reader"
    assert len(failures) == 1 and isinstance(failures[0], ArtifactError)

"""A preview reads at most what it may show, whatever a files blob's tar claims."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
from typing import Any

from kaon.model.values import ArtifactRef
from kaon.service.previews import MAX_BLOB_BYTES, preview


class _Blobs:
    """An artifact store holding one blob (what ``preview`` reads of a store)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        return self.data


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _compressed_tar(name: str, size: int) -> bytes:
    """A gzip'd tar of one file of ``size`` zero bytes: a small blob that expands a lot."""
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as packed,
        tarfile.open(fileobj=packed, mode="w|") as tar,
    ):
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, _Zeros(size))
    return out.getvalue()


def test_a_blob_that_expands_past_the_limit_is_not_read_whole() -> None:
    # A step writes its blobs itself (the artifact store is writable in the sandbox): a
    # small blob may be a compressed tar whose file is far larger than any preview shows.
    size = 3 * MAX_BLOB_BYTES
    blob = _compressed_tar("notes.txt", size)
    assert len(blob) < MAX_BLOB_BYTES // 10
    ref = ArtifactRef("0" * 64, "files", len(blob))
    tracemalloc.start()
    try:
        shown = preview(_Blobs(blob), ref)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_BLOB_BYTES, f"the preview held {peak:,} bytes"
    assert shown.kind == "none" and shown.message

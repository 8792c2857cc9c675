"""Reading blobs over HTTP: a broken transfer resumes with a Range read, bytes are verified;
the server's Range parsing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from kaon.api.routes_artifacts import byte_range
from kaon.artifacts.serializers import sha256
from kaon.errors import CorruptArtifactError
from kaon.model.values import ArtifactRef
from kaon.service.remote import RemoteService

BLOB = json.dumps(list(range(3000))).encode()
HASH = sha256(BLOB)


class _Broken(httpx.SyncByteStream):
    """Sends the first ``cut`` bytes, then the connection drops."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut = data, cut

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: self.cut]
        raise httpx.ReadError("connection reset")


def _server(seen: list[str | None], content: bytes = BLOB, breaks: int = 1) -> RemoteService:
    left = [breaks]

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/artifacts/{HASH}/blob"
        wanted = request.headers.get("Range")
        seen.append(wanted)
        first = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
        body = content[first:]
        status = 206 if wanted else 200
        if left[0] > 0:
            left[0] -= 1
            return httpx.Response(status, stream=_Broken(body, len(body) // 3))
        return httpx.Response(status, content=body)

    return RemoteService("http://kaon.test", token="t", transport=httpx.MockTransport(handle))


def test_a_broken_transfer_resumes_from_the_bytes_received() -> None:
    seen: list[str | None] = []
    with _server(seen, breaks=2) as remote:
        value = remote.artifacts.get(ArtifactRef(HASH, "json", len(BLOB), "list"))
    assert value == list(range(3000))
    assert seen[0] is None and seen[1] == f"bytes={len(BLOB) // 3}-" and len(seen) == 3


def test_bytes_that_do_not_match_the_hash_are_refused() -> None:
    with (
        _server([], content=BLOB.replace(b"7", b"8"), breaks=0) as remote,
        pytest.raises(CorruptArtifactError, match="corrupt"),
    ):
        remote.artifacts.read_bytes(HASH)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole blob
        ("items=0-1", None),
    ],
)
def test_range_headers(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=50-10", "bytes=-0"])
def test_ranges_outside_the_blob_are_refused(header: str) -> None:
    with pytest.raises(ValueError):
        byte_range(header, 100)

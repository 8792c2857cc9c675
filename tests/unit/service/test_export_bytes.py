"""``kaon get HASH -o FILE`` of a ``bytes`` value writes the bytes themselves (a model file, an
image a step returned), not a pickle of them that no other tool can open."""

from __future__ import annotations

from pathlib import Path

from kaon.service._export import write_value


def test_bytes_are_written_as_they_are(tmp_path: Path) -> None:
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    for kind in (bytes, bytearray):
        dest = tmp_path / f"{kind.__name__}.bin"
        assert write_value(kind(payload), dest) == "bytes"
        assert dest.read_bytes() == payload


def test_other_values_keep_their_formats(tmp_path: Path) -> None:
    assert write_value({"a": [1, 2]}, tmp_path / "v.json") == "json"
    assert write_value({1, 2}, tmp_path / "v.pkl") == "pickle"

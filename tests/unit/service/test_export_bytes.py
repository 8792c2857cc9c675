"""``kaon get HASH -o FILE`` of a ``bytes`` value writes the bytes themselves (a model file, an
image a step returned), not a pickle of them that no other tool can open."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaon.errors import InvalidActionError
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


def test_a_dataframe_parquet_cannot_hold_is_pickled_or_refused(tmp_path: Path) -> None:
    # Duplicate labels made `kaon get -o` crash with pyarrow's traceback; mixed labels were
    # written as strings (2 became "2"), boolean ones all as True.
    import pandas as pd

    for frame in (
        pd.DataFrame([[1, 2]], columns=["a", "a"]),
        pd.DataFrame({"a": [1], 2: [2]}),
        pd.DataFrame({True: [1], False: [2]}),
    ):
        assert write_value(frame, tmp_path / "f.pkl") == "pickle"
        pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / "f.pkl"), frame)
        with pytest.raises(InvalidActionError, match=r"f\.parquet: Parquet would not give"):
            write_value(frame, tmp_path / "f.parquet")
        assert write_value(frame, tmp_path / "f.csv") == "csv"
    plain = pd.DataFrame({"a": [1, 2]})
    assert write_value(plain, tmp_path / "p.parquet") == "parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), plain)


def test_an_array_npy_cannot_hold_is_pickled_or_refused(tmp_path: Path) -> None:
    # A masked array crashed `kaon get -o` (MaskedArray.tofile() not implemented).
    import numpy as np

    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    assert write_value(masked, tmp_path / "m.pkl") == "pickle"
    back = np.load(tmp_path / "m.pkl", allow_pickle=True)
    assert isinstance(back, np.ma.MaskedArray) and list(back.mask) == [False, True, False]
    with pytest.raises(InvalidActionError, match=r"m\.npy: a MaskedArray is not a plain"):
        write_value(masked, tmp_path / "m.npy")
    assert write_value(np.arange(3), tmp_path / "a.npy") == "npy"

"""Large artifacts go through the store in bounded memory: a blob is serialized into a
temporary file and hashed as it is read back, never held whole as bytes (a 5 GB model folder
must not need 10 GB of RAM to be stored, nor to be read by the next step)."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.model.values import ArtifactRef

MIB = 1024 * 1024
FILE_MIB = 48


@pytest.fixture
def peak() -> Iterator[Callable[[Callable[[], Any]], tuple[Any, int]]]:
    """Calls a function and returns its result with the peak of memory Python allocated
    meanwhile (bytes objects and numpy arrays are traced)."""

    def measure(call: Callable[[], Any]) -> tuple[Any, int]:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - base

    tracemalloc.start()
    try:
        yield measure
    finally:
        tracemalloc.stop()


def _big_file(folder: Path) -> tuple[Path, str]:
    folder.mkdir()
    digest = hashlib.sha256()
    block = bytes(range(256)) * (MIB // 256)
    with open(folder / "weights.bin", "wb") as file:
        for index in range(FILE_MIB):
            chunk = bytes([index]) + block[1:]
            file.write(chunk)
            digest.update(chunk)
    return folder, digest.hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_a_large_folder_is_stored_and_loaded_without_holding_it(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    peak: Callable[[Callable[[], Any]], tuple[Any, int]],
) -> None:
    store: FsspecArtifactStore = request.getfixturevalue(f"{kind}_store")
    folder, expected = _big_file(tmp_path / "model")
    ref, used = peak(lambda: store.put(folder, name="model"))
    assert isinstance(ref, ArtifactRef) and ref.serializer == "files"
    assert ref.size > FILE_MIB * MIB
    if kind == "local":  # the in-memory filesystem holds the blob itself
        assert used < 16 * MIB, f"storing a {FILE_MIB} MiB folder took {used / MIB:.0f} MiB"
    loaded, used = peak(lambda: store.get(ref))
    assert used < 16 * MIB, f"loading a {FILE_MIB} MiB folder took {used / MIB:.0f} MiB"
    assert _file_digest(loaded / "weights.bin") == expected


def test_a_large_array_is_not_copied_on_its_way_to_and_from_the_store(
    local_store: FsspecArtifactStore, peak: Callable[[Callable[[], Any]], tuple[Any, int]]
) -> None:
    array = np.arange(4 * MIB, dtype=np.float64)  # 32 MiB
    ref, used = peak(lambda: local_store.put(array, name="x"))
    assert isinstance(ref, ArtifactRef) and ref.serializer == "numpy"
    assert used < 8 * MIB, f"storing a 32 MiB array took {used / MIB:.0f} MiB more"
    loaded, used = peak(lambda: local_store.get(ref))
    assert used < array.nbytes + 8 * MIB, f"loading a 32 MiB array took {used / MIB:.0f} MiB"
    np.testing.assert_array_equal(loaded, array)

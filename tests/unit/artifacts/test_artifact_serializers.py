"""Serializers: the registry order, round trips of each kind, lazy imports."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.artifacts.serializers import (
    SERIALIZERS,
    FilesSerializer,
    NumpySerializer,
    ParquetSerializer,
    serializer_named,
    sha256,
)
from kaon.errors import SerializationError
from kaon.model.values import ArtifactRef


def _blob(store: FsspecArtifactStore, value: object) -> ArtifactRef:
    ref = store.put(value, name="out")
    assert isinstance(ref, ArtifactRef)
    return ref


def test_registry_order_and_names() -> None:
    assert [s.name for s in SERIALIZERS] == ["json", "parquet", "numpy", "files", "pickle"]
    assert serializer_named("numpy") is SERIALIZERS[2]
    with pytest.raises(SerializationError, match="unknown serializer 'nope'"):
        serializer_named("nope")


def test_sha256_is_hex_of_bytes() -> None:
    expected = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert sha256(b"hello") == expected


def test_dataframe_round_trips_as_parquet(local_store: FsspecArtifactStore) -> None:
    frame = pd.DataFrame(
        {"x": np.arange(5, dtype="int64"), "y": np.linspace(0, 1, 5), "s": list("abcde")},
        index=pd.Index([10, 11, 12, 13, 14], name="id"),
    )
    ref = _blob(local_store, frame)
    assert ref.serializer == "parquet"
    assert ref.type_name == "pandas.DataFrame"
    pd.testing.assert_frame_equal(local_store.get(ref), frame)


def test_arrow_table_round_trips_as_a_table(local_store: FsspecArtifactStore) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ref = _blob(local_store, table)
    assert ref.serializer == "parquet"
    loaded = local_store.get(ref)
    assert isinstance(loaded, pa.Table)
    assert loaded.equals(table)


def test_dataframe_parquet_cannot_hold_falls_back_to_pickle(
    local_store: FsspecArtifactStore,
) -> None:
    frame = pd.DataFrame({"mixed": [1, "a", 2.5]})
    ref = _blob(local_store, frame)
    assert ref.serializer == "pickle"
    pd.testing.assert_frame_equal(local_store.get(ref), frame)


CHANGED_BY_PARQUET = {
    "dicts": pd.DataFrame({"d": [{"a": 1}, {"b": 2}]}),  # came back with every key, as floats
    "lists": pd.DataFrame({"l": [[1, 2], [3]]}),  # came back as numpy arrays
    "tuples": pd.DataFrame({"t": [(1, 2), (3,)]}),
    "int-categories": pd.DataFrame({"c": pd.Categorical([3, 1, 3])}),  # came back int64
    "seconds": pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]).astype("datetime64[s]")}),
    "index-freq": pd.DataFrame({"x": [1, 2]}, index=pd.date_range("2024", periods=2, freq="D")),
    # Column labels: booleans came back all True, mixed kinds as strings (with a warning),
    # and dates, timedeltas, a categorical index or a boolean level could not be read back.
    "bool-labels": pd.DataFrame({True: [1], False: [2]}),
    "mixed-labels": pd.DataFrame({"a": [1], 2: [2]}),
    "tuple-and-str-labels": pd.DataFrame({("a", "b"): [1], "c": [2]}),
    "date-labels": pd.DataFrame({datetime.date(2024, 1, 1): [1]}),
    "timedelta-labels": pd.DataFrame({pd.Timedelta(1): [1]}),
    "categorical-labels": pd.DataFrame([[1]], columns=pd.CategoricalIndex(["a"])),
    "bool-level": pd.DataFrame(
        [[1, 2]], columns=pd.MultiIndex.from_tuples([("a", True), ("a", False)])
    ),
}


@pytest.mark.parametrize("name", sorted(CHANGED_BY_PARQUET))
def test_a_dataframe_parquet_would_change_comes_back_equal(
    local_store: FsspecArtifactStore, name: str
) -> None:
    frame = CHANGED_BY_PARQUET[name]
    ref = _blob(local_store, frame)
    assert ref.serializer == "pickle"
    back = local_store.get(ref)
    pd.testing.assert_frame_equal(back, frame)
    assert list(back.columns) == list(frame.columns)


@pytest.mark.parametrize(
    "columns",
    [
        pd.Index([3, 1]),
        pd.Index([0.5, 1.5]),
        pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"),
        pd.MultiIndex.from_tuples([("a", 1), ("a", 2)]),
    ],
    ids=["ints", "floats", "datetimes", "multi"],
)
def test_labels_parquet_keeps_stay_parquet(
    local_store: FsspecArtifactStore, columns: pd.Index
) -> None:
    frame = pd.DataFrame([[1, 2]], columns=columns)
    ref = _blob(local_store, frame)
    assert ref.serializer == "parquet"
    pd.testing.assert_frame_equal(local_store.get(ref), frame)


def test_a_plain_dataframe_stays_parquet(local_store: FsspecArtifactStore) -> None:
    frame = pd.DataFrame(
        {"x": range(3), "s": ["a", None, "c"], "c": pd.Categorical(["a", "b", "a"])},
        index=pd.DatetimeIndex(["2024-01-01", "2024-01-03", "2024-01-04"]),
    )
    ref = _blob(local_store, frame)
    assert ref.serializer == "parquet"
    pd.testing.assert_frame_equal(local_store.get(ref), frame)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "complex128", "<U3"])
def test_ndarray_round_trips_as_npy(local_store: FsspecArtifactStore, dtype: str) -> None:
    array = np.arange(24).reshape(2, 3, 4).astype(dtype)
    ref = _blob(local_store, array)
    assert ref.serializer == "numpy"
    loaded = local_store.get(ref)
    assert loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)


def test_object_arrays_are_not_npy() -> None:
    assert not NumpySerializer().accepts(np.array([{"a": 1}], dtype=object))
    assert not NumpySerializer().accepts(np.float64(1.0))


def test_large_dict_and_list_round_trip_as_json(local_store: FsspecArtifactStore) -> None:
    mapping = {f"key{i}": {"v": i, "tags": ["a", "b"]} for i in range(2_000)}
    as_list = [i * 0.5 for i in range(10_000)]
    for value in (mapping, as_list):
        ref = _blob(local_store, value)
        assert ref.serializer == "json"
        assert local_store.get(ref) == value


def test_a_large_value_holding_a_tuple_comes_back_with_it(
    local_store: FsspecArtifactStore,
) -> None:
    for value in (tuple(range(10_000)), [(i, "x") for i in range(2_000)]):
        ref = _blob(local_store, value)
        assert ref.serializer == "pickle"  # JSON would give a list back
        assert local_store.get(ref) == value


def test_file_path_round_trips(
    local_store: FsspecArtifactStore, tmp_path: Path, _cache_dir: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"\x00weights\xff")
    ref = _blob(local_store, source)
    assert ref.serializer == "files"
    loaded = local_store.get(ref)
    assert isinstance(loaded, Path)
    assert loaded.name == "model.bin"
    assert loaded.read_bytes() == b"\x00weights\xff"
    assert _cache_dir in loaded.parents
    assert local_store.get(ref) == loaded  # extracted once, reused


def test_folder_round_trips(local_store: FsspecArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "src" / "model"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "sub" / "b.txt").write_text("beta")
    (source / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(source / "run.sh", 0o755)
    loaded = local_store.get(_blob(local_store, source))
    assert loaded.is_dir()
    assert loaded.name == "model"
    assert (loaded / "a.txt").read_text() == "alpha"
    assert (loaded / "sub" / "b.txt").read_text() == "beta"
    assert os.access(loaded / "run.sh", os.X_OK)


def test_equal_folders_hash_equal(local_store: FsspecArtifactStore, tmp_path: Path) -> None:
    refs = []
    for place in ("one", "two"):
        folder = tmp_path / place / "data"
        folder.mkdir(parents=True)
        (folder / "f.txt").write_text("same")
        refs.append(_blob(local_store, folder))
    assert refs[0].hash == refs[1].hash
    (tmp_path / "two" / "data" / "f.txt").write_text("different")
    assert _blob(local_store, tmp_path / "two" / "data").hash != refs[0].hash


def test_missing_path_is_not_a_files_artifact(tmp_path: Path) -> None:
    assert not FilesSerializer().accepts(tmp_path / "nothing-here")
    assert not FilesSerializer().accepts(str(tmp_path))


def test_accepts_only_its_own_kinds() -> None:
    parquet = ParquetSerializer()
    assert not parquet.accepts(pd.Series([1, 2]))
    assert not parquet.accepts({"a": 1})
    assert parquet.accepts(pd.DataFrame({"a": [1]}))


def test_importing_kaon_artifacts_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, pathlib\n"
        "from kaon.artifacts import open_artifact_store\n"
        "from kaon.artifacts.serializers import SERIALIZERS\n"
        "for s in SERIALIZERS[:-1]:\n"
        "    s.accepts({'a': [1]}); s.accepts(pathlib.Path('/nonexistent'))\n"
        "heavy = {'pandas', 'numpy', 'pyarrow', 's3fs'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_USER_FILE = """
import dataclasses
import enum


class Mode(enum.Enum):
    TRAIN = 1
    EVAL = 2


@dataclasses.dataclass
class Config:
    lr: float
    mode: Mode
"""

_READER = """
import importlib.util, sys
from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.model.values import ArtifactRef

file, url, hash_, size, how = sys.argv[1:]
if how == "kaon":  # a worker: the workflow's file loaded by Kaon
    from kaon.steptypes.codeload import load_file_module
    module = load_file_module(file)
elif how == "import":  # a notebook that imported the workflow's module
    spec = importlib.util.spec_from_file_location("user_flow", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_flow"] = module
    spec.loader.exec_module(module)
value = FsspecArtifactStore(url).get(ArtifactRef(hash_, "pickle", int(size)))
if how == "none":  # a process without the file's module: a copy of the class, equal fields
    print(type(value).__name__, value.lr, value.mode.name)
else:
    print(isinstance(value, module.Config), value.mode is module.Mode.EVAL)
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [("kaon", "True True"), ("import", "True True"), ("none", "Config 0.5 EVAL")],
)
def test_a_workflow_files_classes_load_as_the_loaded_modules(
    local_store: FsspecArtifactStore, tmp_path: Path, how: str, expected: str
) -> None:
    # Pickled by value only, an object of a class of a workflow's file had a class of its
    # own in every other process: isinstance and `is` against the file's class were False.
    from kaon.steptypes.codeload import load_file_module

    file = tmp_path / "user_flow.py"
    file.write_text(_USER_FILE)
    module = load_file_module(str(file))
    ref = _blob(local_store, module.Config(0.5, module.Mode.EVAL))
    assert ref.serializer == "pickle"
    args = [str(file), local_store.url, ref.hash, str(ref.size), how]
    done = subprocess.run(
        [sys.executable, "-c", _READER, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected

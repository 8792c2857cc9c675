"""FsspecArtifactStore: inlining, blobs, dedupe, verification, atomic writes, references."""

from __future__ import annotations

import enum
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaon.artifacts.base import INLINE_LIMIT
from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.errors import ArtifactError, CorruptArtifactError, SerializationError
from kaon.model.values import ArtifactRef, Literal, RefDict, RefList, decode_ref, encode_ref


class Color(enum.IntEnum):
    RED = 1


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


def _flip_byte(store: FsspecArtifactStore, ref: ArtifactRef) -> None:
    path = store.blob_path(ref)
    if os.path.isabs(path):
        with open(path, "r+b") as file:
            first = file.read(1)
            file.seek(0)
            file.write(bytes([first[0] ^ 0xFF]))
    else:
        data = bytearray(store._fs.cat_file(path))
        data[0] ^= 0xFF
        store._fs.pipe_file(path, bytes(data))


def _blob_ref(store: FsspecArtifactStore, value: Any) -> ArtifactRef:
    ref = store.put(value, name="out")
    assert isinstance(ref, ArtifactRef)
    return ref


# -- inlining -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [None, True, 0, -(2**63), 2**64 - 1, 1.5, -0.0, "", "héllo", {"a": [1, {"b": None}]}]
)
def test_small_json_values_are_literals(local_store: FsspecArtifactStore, value: Any) -> None:
    assert local_store.put(value) == Literal(value)
    assert list(local_store.iter_blobs()) == []


def test_tuples_are_inlined_as_tuples(local_store: FsspecArtifactStore) -> None:
    value = (1, (2, 3), {"k": (4,)}, [5])
    assert local_store.put(value) == Literal(value)
    assert local_store.get(decode_ref(json.loads(json.dumps(encode_ref(Literal(value)))))) == value


def test_inline_limit_is_the_compact_json_size(local_store: FsspecArtifactStore) -> None:
    at_limit = "x" * (INLINE_LIMIT - 2)  # JSON adds two quotes
    assert local_store.put(at_limit) == Literal(at_limit)
    over = "x" * (INLINE_LIMIT - 1)
    ref = _blob_ref(local_store, over)
    assert ref.serializer == "json"
    assert ref.size == INLINE_LIMIT + 1
    assert ref.type_name == "builtins.str"
    assert local_store.get(ref) == over


def test_escaping_counts_towards_the_inline_limit(local_store: FsspecArtifactStore) -> None:
    value = "\U0001f600" * (INLINE_LIMIT // 12 + 1)  # 12 bytes of JSON per char
    assert isinstance(local_store.put(value), ArtifactRef)
    assert local_store.get(local_store.put(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        {1: "int key"},
        Color.RED,
        {"nested": {"set"}},
        10**5000,
    ],
    ids=["nan", "inf", "int-key", "int-enum", "set-inside", "huge-int"],
)
def test_values_that_do_not_survive_json_are_not_literals(
    local_store: FsspecArtifactStore, value: Any
) -> None:
    ref = _blob_ref(local_store, value)
    assert ref.serializer == "pickle"
    loaded = local_store.get(ref)
    assert type(loaded) is type(value)
    assert loaded == value or (loaded != loaded and value != value)  # nan is not nan


def test_deeply_nested_and_cyclic_values_go_to_pickle(local_store: FsspecArtifactStore) -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    loaded = local_store.get(_blob_ref(local_store, cyclic))
    assert loaded[1] is loaded


# -- blobs ----------------------------------------------------------------------------------


def test_blob_layout_is_content_addressed(store: FsspecArtifactStore) -> None:
    value = list(range(10_000))
    ref = _blob_ref(store, value)
    assert len(ref.hash) == 64
    assert store.blob_path(ref).endswith(f"/blobs/{ref.hash[:2]}/{ref.hash}")
    assert store.exists(ref)
    assert list(store.iter_blobs()) == [(ref.hash, ref.size)]
    assert store.get(ref) == value


def test_same_value_twice_is_stored_once(store: FsspecArtifactStore) -> None:
    first = _blob_ref(store, Point(1, 2))
    second = _blob_ref(store, Point(1, 2))
    assert first == second
    assert len(list(store.iter_blobs())) == 1
    _blob_ref(store, Point(3, 4))
    assert len(list(store.iter_blobs())) == 2


def test_existing_blob_is_not_rewritten(local_store: FsspecArtifactStore) -> None:
    ref = _blob_ref(local_store, list(range(10_000)))
    inode = os.stat(local_store.blob_path(ref)).st_ino
    assert _blob_ref(local_store, list(range(10_000))) == ref
    assert os.stat(local_store.blob_path(ref)).st_ino == inode  # a rewrite would replace it


def test_custom_class_round_trips_through_pickle(store: FsspecArtifactStore) -> None:
    ref = _blob_ref(store, Point(1, 2))
    assert ref.serializer == "pickle"
    assert ref.type_name.endswith(".Point")
    assert store.get(ref) == Point(1, 2)


def test_corrupt_blob_is_detected(store: FsspecArtifactStore) -> None:
    ref = _blob_ref(store, list(range(10_000)))
    _flip_byte(store, ref)
    with pytest.raises(CorruptArtifactError) as info:
        store.get(ref)
    assert ref.hash in str(info.value)
    assert store.blob_path(ref) in str(info.value)


def test_missing_blob_raises_artifact_error(store: FsspecArtifactStore) -> None:
    ref = _blob_ref(store, list(range(10_000)))
    store.delete_blob(ref.hash)
    assert not store.exists(ref)
    assert list(store.iter_blobs()) == []
    with pytest.raises(ArtifactError, match="missing") as info:
        store.get(ref)
    assert not isinstance(info.value, CorruptArtifactError)
    assert ref.hash in str(info.value)
    store.delete_blob(ref.hash)  # deleting again is a no-op


def test_delete_blob_rejects_a_malformed_hash(store: FsspecArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="sha256"):
        store.delete_blob("../../etc/passwd")


def test_unknown_serializer_raises(store: FsspecArtifactStore) -> None:
    ref = _blob_ref(store, list(range(10_000)))
    bogus = ArtifactRef(ref.hash, "no-such-format", ref.size)
    with pytest.raises(SerializationError, match="no-such-format"):
        store.get(bogus)


@pytest.mark.parametrize(
    ("make", "type_name"),
    [(threading.Lock, "_thread.lock"), (lambda: (i for i in range(3)), "builtins.generator")],
    ids=["lock", "generator"],
)
def test_unpicklable_value_names_output_and_type(
    store: FsspecArtifactStore, make: Any, type_name: str
) -> None:
    with pytest.raises(SerializationError) as info:
        store.put(make(), name="model")
    message = str(info.value)
    assert "'model'" in message
    assert type_name in message
    assert list(store.iter_blobs()) == []


# -- references -----------------------------------------------------------------------------


def test_ref_list_and_ref_dict_resolve_recursively(store: FsspecArtifactStore) -> None:
    big = _blob_ref(store, list(range(5_000)))
    point = _blob_ref(store, Point(0, 1))
    ref = RefDict(
        {
            "items": RefList((Literal(1), big, RefList((point, Literal("x"))))),
            "small": Literal({"a": 1}),
        }
    )
    assert store.get(ref) == {
        "items": [1, list(range(5_000)), [Point(0, 1), "x"]],
        "small": {"a": 1},
    }


def test_get_rejects_non_references(store: FsspecArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="not a value reference"):
        store.get("plain string")  # type: ignore[arg-type]


# -- atomicity and filesystem failures ------------------------------------------------------


def _all_files(root: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def test_failed_rename_leaves_no_blob_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FsspecArtifactStore(str(tmp_path / "store"))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    value = list(range(10_000))
    with pytest.raises(ArtifactError, match="No space left") as info:
        store.put(value, name="rows")
    assert not isinstance(info.value, SerializationError)
    assert list(store.iter_blobs()) == []
    assert _all_files(tmp_path / "store") == []
    monkeypatch.undo()
    ref = _blob_ref(store, value)  # the next attempt succeeds
    assert store.exists(ref)


def test_write_interrupted_mid_file_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FsspecArtifactStore(str(tmp_path / "store"))

    def interrupted_fsync(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        store.put(list(range(10_000)))
    monkeypatch.undo()
    assert list(store.iter_blobs()) == []
    assert _all_files(tmp_path / "store") == []


def test_leftover_temp_files_are_not_blobs(local_store: FsspecArtifactStore) -> None:
    ref = _blob_ref(local_store, list(range(10_000)))
    shard = Path(local_store.blob_path(ref)).parent
    (shard / ".tmp-deadbeef").write_bytes(b"half")
    assert list(local_store.iter_blobs()) == [(ref.hash, ref.size)]


def test_filesystem_errors_become_artifact_errors(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    store = FsspecArtifactStore(str(not_a_dir))
    with pytest.raises(ArtifactError, match="cannot write blob"):
        store.put(list(range(10_000)))


def test_unknown_protocol_raises_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="no-such-proto"):
        FsspecArtifactStore("no-such-proto://x")


def test_file_url_and_plain_path_are_the_same_store(tmp_path: Path) -> None:
    by_path = FsspecArtifactStore(str(tmp_path))
    by_url = FsspecArtifactStore(f"file://{tmp_path}")
    ref = _blob_ref(by_path, list(range(10_000)))
    assert by_url.exists(ref)
    assert by_url.blob_path(ref) == by_path.blob_path(ref)


# -- property -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, limit=st.sampled_from([0, 16, 256, INLINE_LIMIT]))
def test_json_values_round_trip_inline_or_as_blob(
    tmp_path_factory: pytest.TempPathFactory, value: Any, limit: int
) -> None:
    store = FsspecArtifactStore(str(tmp_path_factory.getbasetemp() / "prop"), inline_limit=limit)
    ref = store.put(value)
    if isinstance(ref, ArtifactRef):
        assert ref.serializer == "json"
        assert store.exists(ref)
    assert store.get(ref) == value


@pytest.mark.parametrize("kind", ["absolute link", "link out", "fifo"])
def test_a_folder_no_step_could_read_is_refused_when_stored(
    local_store: FsspecArtifactStore, tmp_path: Path, kind: str
) -> None:
    """It was stored (and cached); then every step that read it failed to extract it (its
    attempts spent as platform errors). And a Path the files serializer refused fell back
    to pickle: a blob naming a folder of the producing machine only."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "normal.txt").write_text("hi")
    (folder / "inside").symlink_to("normal.txt")  # a link within the folder: fine
    if kind == "absolute link":
        (folder / "bad").symlink_to("/etc/hostname")
    elif kind == "link out":
        (folder / "bad").symlink_to("../../elsewhere")
    else:
        os.mkfifo(folder / "bad")
    with pytest.raises(
        SerializationError, match=r"cannot be stored as files: 'out/bad' (is a|would)"
    ):
        local_store.put(folder, name="model_dir")
    (folder / "bad").unlink()
    stored = local_store.put(folder, name="model_dir")
    assert isinstance(stored, ArtifactRef) and stored.serializer == "files"
    back = local_store.get(stored)
    assert sorted(p.name for p in back.iterdir()) == ["inside", "normal.txt"]

"""Equal values pickle to equal bytes in every process: sets in a stable order, classes
written by value under an id derived from their content. Unequal values still differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kaon.artifacts.serializers import PickleSerializer, sha256

_VALUES = """
import dataclasses, enum

def make():
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        tags: frozenset

    class Mode(enum.Enum):
        TRAIN = "train"

    class Holder:
        KINDS = {"k1", "k2", "k3"}
        def __init__(self, items):
            self.items = items

    words = {f"w{i}" for i in range(40)}
    return {
        "set": words,
        "frozen": frozenset(words),
        "nested": {frozenset({"a", "b"}), frozenset({"c"}), ("d", 1)},
        "mixed": {1, "one", b"1", 2.5, None},
        "in_dict": {"k": words, "l": [words, words]},
        "point": Point(1, frozenset(words)),
        "holder": Holder({"x": words}),
        "mode": Mode.TRAIN,
    }
"""

_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from values import make
from kaon.artifacts.serializers import PickleSerializer, sha256
serializer = PickleSerializer()
out = {}
for name, value in make().items():
    data = serializer.dumps(value)
    back = serializer.loads(data)
    same = back == value
    if name == "holder":
        same = back.items == value.items and type(back).KINDS == type(value).KINDS
    out[name] = [sha256(data), same, type(back).__name__]
print(json.dumps(out))
"""


def _pickled_in_a_process(folder: Path, seed: str) -> dict[str, list[object]]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_equal_values_pickle_to_equal_bytes_in_every_process(tmp_path: Path) -> None:
    (tmp_path / "values.py").write_text(_VALUES)
    first = _pickled_in_a_process(tmp_path, "1")
    second = _pickled_in_a_process(tmp_path, "2")
    assert first == second
    assert all(same for _, same, _ in first.values()), first  # each loads back equal
    assert {name: kind for name, (_, _, kind) in first.items()} == {
        "set": "set",
        "frozen": "frozenset",
        "nested": "set",
        "mixed": "set",
        "in_dict": "dict",
        "point": "Point",
        "holder": "Holder",
        "mode": "Mode",
    }


def test_unequal_values_pickle_differently() -> None:
    serializer = PickleSerializer()
    values = [{"a"}, {"b"}, {"a", "b"}, frozenset({"a"}), ["a"], ("a",), {"a": None}]
    hashes = {sha256(serializer.dumps(v)) for v in values}
    assert len(hashes) == len(values)


def test_shared_and_cyclic_references_survive() -> None:
    serializer = PickleSerializer()
    shared = {"x", "y"}
    cyclic: list[object] = [shared]
    cyclic.append(cyclic)
    back = serializer.loads(serializer.dumps({"a": shared, "b": shared, "c": cyclic}))
    assert back["a"] is back["b"] and back["a"] == shared
    assert back["c"][1] is back["c"] and back["c"][0] is back["a"]
    inner: list[object] = []
    outer: list[object] = [inner, {"z"}]
    inner.append(outer)
    loaded = serializer.loads(serializer.dumps(outer))
    assert loaded[0][0] is loaded and loaded[1] == {"z"}


def test_a_class_pickled_by_value_loads_as_itself_in_its_process() -> None:
    class Local:
        def __init__(self, n: int) -> None:
            self.n = n

    serializer = PickleSerializer()
    back = serializer.loads(serializer.dumps(Local(3)))
    assert type(back) is Local and back.n == 3

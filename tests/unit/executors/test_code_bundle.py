"""Code bundles: a request's code by content, for workers that do not share the engine's disk."""

from __future__ import annotations

import os
from pathlib import Path

from kaon.executors.base import TaskRequest
from kaon.executors.code_bundle import (
    BundleCache,
    is_materialized,
    localize,
    materialize,
    read_bundle,
)


def _request(config: dict[str, object]) -> TaskRequest:
    return TaskRequest(("r", 1, 1), "s", "python", config, {}, {}, "/tmp/a")


def test_digest_follows_the_content_of_the_file_and_its_siblings(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text("import helper\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "data.bin").write_bytes(b"\0\1")  # not code: not in the bundle
    first = read_bundle(str(flow))
    assert sorted(first.files) == ["flow.py", "helper.py"]
    (tmp_path / "helper.py").write_text("X = 2\n")
    second = read_bundle(str(flow))
    assert second.digest != first.digest
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in second.files.items():
        (copy / name).write_bytes(data)
    assert read_bundle(str(copy / "flow.py")).digest == second.digest  # by content, not place


def test_cache_rereads_a_changed_folder_only(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text("A = 1\n")
    cache = BundleCache()
    request = _request({"file": str(flow), "function": "f"})
    first = cache.for_request(request)
    assert first is not None and cache.for_request(request) is first
    flow.write_text("A = 22\n")
    os.utime(flow, ns=(1, 1))
    second = cache.for_request(request)
    assert second is not None and second.digest != first.digest
    assert cache.for_request(_request({"function": "pkg.mod:f"})) is None


def test_materialize_once_and_localize_paths(tmp_path: Path) -> None:
    root = str(tmp_path / "cache")
    folder = materialize("abc", {"flow.py": b"A = 1\n"}, root)
    assert Path(folder, "flow.py").read_text() == "A = 1\n"
    assert is_materialized("abc", root)
    assert materialize("abc", {"flow.py": b"changed"}, root) == folder  # content-addressed
    request = _request({"file": "/src/wf/flow.py", "base_dir": "/src/wf", "function": "f"})
    moved = localize(request, "/src/wf", folder)
    assert moved.config == {
        "file": os.path.join(folder, "flow.py"),
        "base_dir": folder,
        "function": "f",
    }
    assert moved.key == request.key

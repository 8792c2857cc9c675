"""Previews of outputs: tables, arrays, images, notebook HTML, text; never an unpickle."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.model.values import ArtifactRef
from kaon.service.previews import MAX_ROWS, preview

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def store(tmp_path: Path) -> FsspecArtifactStore:
    return FsspecArtifactStore(str(tmp_path / "blobs"), inline_limit=0)


def _put(store: FsspecArtifactStore, value: Any) -> ArtifactRef:
    ref = store.put(value)
    assert isinstance(ref, ArtifactRef)
    return ref


def test_tables_show_their_first_rows(store: FsspecArtifactStore, tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"user": range(100), "score": [i / 2 for i in range(100)]})
    shown = preview(store, _put(store, frame))
    assert shown.kind == "table" and shown.total_rows == 100
    assert shown.columns[:2] == ["user", "score"] and len(shown.rows) == MAX_ROWS
    assert shown.rows[3][:2] == [3, 1.5]
    csv = tmp_path / "cohort.csv"
    csv.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(50)))
    table = preview(store, _put(store, csv))
    assert (table.kind, table.name, table.columns, table.total_rows) == (
        "table",
        "cohort.csv",
        ["a", "b"],
        50,
    )
    assert table.rows[0] == ["0", "x0"]
    numpy = pytest.importorskip("numpy")
    array = preview(store, _put(store, numpy.arange(60).reshape(30, 2)))
    assert array.kind == "table" and array.rows[1] == [2, 3] and array.total_rows == 30


def test_images_notebooks_and_text(store: FsspecArtifactStore, tmp_path: Path) -> None:
    image = tmp_path / "chart.png"
    image.write_bytes(PNG)
    shown = preview(store, _put(store, image))
    assert shown.kind == "image" and shown.media_type == "image/png"
    assert base64.b64decode(shown.data or "") == PNG
    html = tmp_path / "report.html"
    html.write_text("<html><body><h1>Validation</h1></body></html>")
    page = preview(store, _put(store, html))
    assert page.kind == "html" and "<h1>Validation</h1>" in (page.data or "")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert preview(store, _put(store, text)).data == "hello"


class Trap:
    """Unpickling this would run code."""

    def __reduce__(self) -> Any:
        return (Path("/nonexistent-preview-trap").touch, ())


def test_pickles_are_never_opened(store: FsspecArtifactStore) -> None:
    ref = _put(store, Trap())
    assert ref.serializer == "pickle"
    shown = preview(store, ref)
    assert shown.kind == "none" and "never unpickles" in shown.message
    assert not Path("/nonexistent-preview-trap").exists()


def test_a_long_string_or_document_previews_as_text_not_escaped_json(
    store: FsspecArtifactStore,
) -> None:
    """It was cut as its JSON text and sent as a string value, which the page encoded as
    JSON again: ``"\\"line\\\\nline\\\\n…``."""
    long_text = store.put("line\n" * 5000)
    shown = preview(store, long_text)
    assert shown.kind == "text" and shown.data is not None
    assert shown.data.startswith("line\nline\n") and "\\n" not in shown.data
    assert "of 25,000 characters" in shown.message
    document = store.put({f"k{i}": list(range(20)) for i in range(300)})
    shown = preview(store, document)
    assert shown.kind == "text" and shown.data is not None and shown.data.startswith('{\n "k0"')
    small = store.put({"a": 1, "b": "x" * 300})
    assert preview(store, small).kind in ("value", "none")


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_preview_never_raises() -> None:
    """`kaon get` of an int of 5,000 digits (or an object whose repr fails) printed a
    traceback: repr() raised."""
    from kaon.service._export import preview

    assert "int of 16,610 bits" in preview(10**5000)
    assert "_BrokenRepr object: repr() failed: RuntimeError: no repr" in preview(_BrokenRepr())

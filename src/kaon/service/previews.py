"""Previews of a step's outputs for the web UI, made without running anything the step wrote.

A preview reads a blob's bytes (checked against its hash) and shows: the first rows of a
table (a Parquet blob, a CSV or Parquet file), the first rows of an array, an image file
(PNG, JPEG, GIF, WebP), a rendered notebook's HTML, the head of a text file, or an inline JSON
value. Pickled values are never opened by the server (unpickling runs code of the step's
choosing); their preview says so. Sizes are bounded: a blob over :data:`MAX_BLOB_BYTES`, rows
past :data:`MAX_ROWS`, columns past :data:`MAX_COLUMNS` are not read or shown.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import tarfile
from typing import Any

from pydantic import BaseModel, Field

from kaon.artifacts.base import ArtifactStore
from kaon.errors import ArtifactError
from kaon.model.values import ArtifactRef, Literal, ValueRef

MAX_BLOB_BYTES = 20_000_000
MAX_ROWS = 20
MAX_COLUMNS = 40
MAX_TEXT_CHARS = 20_000
MAX_CELL_CHARS = 200
_IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
_IMAGES[".webp"] = "image/webp"
_TEXT = (".txt", ".log", ".md", ".json", ".yaml", ".yml", ".sql", ".py", ".r", ".tsv")


class PreviewView(BaseModel):
    """What the UI shows of one output."""

    kind: str = Field(description="table | image | html | text | value | none")
    name: str = Field(default="", description="the file name, for a files artifact")
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    total_rows: int | None = None
    media_type: str | None = None
    data: str | None = Field(default=None, description="base64 of an image; the text or HTML")
    value: Any = None
    message: str = Field(default="", description="why there is no preview, or what was cut")


def preview(artifacts: ArtifactStore, ref: ValueRef) -> PreviewView:
    """A bounded preview of the value behind ``ref`` (see the module docstring). Raises
    ArtifactError or CorruptArtifactError when the blob cannot be read."""
    if isinstance(ref, Literal):
        return PreviewView(kind="value", value=ref.value)
    if not isinstance(ref, ArtifactRef):
        return PreviewView(kind="none", message="a list or dict of artifacts: open each")
    if ref.serializer == "pickle":
        return PreviewView(kind="none", message="a pickled value: the server never unpickles")
    if ref.size > MAX_BLOB_BYTES:
        return _too_large(ref.size)
    read = getattr(artifacts, "read_bytes", None)
    if read is None:
        return PreviewView(kind="none", message="this artifact store cannot preview")
    data: bytes = read(ref)
    if ref.serializer == "parquet":
        return _parquet(data)
    if ref.serializer == "numpy":
        return _array(data)
    if ref.serializer == "json":
        return _json_preview(json.loads(data))
    if ref.serializer == "files":
        return _file(data)
    return PreviewView(kind="none", message=f"no preview for {ref.serializer!r} artifacts")


def _file(data: bytes) -> PreviewView:
    """A files artifact: one file of the tar (the first, for a folder).

    The file is read only up to :data:`MAX_BLOB_BYTES`, as a blob is: its size is what the
    tar says, and a blob is written by the step's own process, so a small one may be a
    compressed tar (or a sparse file) of gigabytes. Kaon writes plain tars: a compressed one
    is not opened (listing its files would expand all of it)."""
    try:
        return _first_file(data)
    except tarfile.TarError:
        return PreviewView(kind="none", message="not a folder Kaon stored: no preview")


def _first_file(data: bytes) -> PreviewView:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
        if not files:
            return PreviewView(kind="none", message="an empty folder")
        member = files[0]
        if member.size > MAX_BLOB_BYTES:
            return _too_large(member.size)
        extracted = tar.extractfile(member)
        if extracted is None:
            return PreviewView(kind="none", message="an unreadable file")
        body = extracted.read(MAX_BLOB_BYTES + 1)
        if len(body) > MAX_BLOB_BYTES:
            return _too_large(member.size)
    name = member.name
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    shown = _by_suffix(suffix, body)
    shown.name = name
    if len(files) > 1:
        shown.message = f"the first of {len(files)} files ({name})"
    return shown


def _too_large(size: int) -> PreviewView:
    return PreviewView(kind="none", message=f"{size:,} bytes: too large to preview")


def _by_suffix(suffix: str, body: bytes) -> PreviewView:
    if suffix in _IMAGES:
        encoded = base64.b64encode(body).decode("ascii")
        return PreviewView(kind="image", media_type=_IMAGES[suffix], data=encoded)
    if suffix in (".html", ".htm"):
        return PreviewView(
            kind="html", media_type="text/html", data=body.decode("utf-8", "replace")
        )
    if suffix == ".csv":
        return _csv(body.decode("utf-8", "replace"))
    if suffix == ".parquet":
        return _parquet(body)
    if suffix in _TEXT or not suffix:
        text = body.decode("utf-8", "replace")
        cut = len(text) > MAX_TEXT_CHARS
        return PreviewView(
            kind="text",
            data=text[:MAX_TEXT_CHARS],
            message=f"the first {MAX_TEXT_CHARS:,} characters" if cut else "",
        )
    return PreviewView(kind="none", message=f"no preview for {suffix} files")


def _csv(text: str) -> PreviewView:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    rows = []
    total = 0
    for total, row in enumerate(reader, start=1):
        if total <= MAX_ROWS:
            rows.append([_cell(c) for c in row[:MAX_COLUMNS]])
    return PreviewView(kind="table", columns=header[:MAX_COLUMNS], rows=rows, total_rows=total)


def _parquet(data: bytes) -> PreviewView:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return PreviewView(kind="none", message="pyarrow is not installed on the server")
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as error:
        raise ArtifactError(f"not a Parquet table: {error}") from error
    names = parquet.schema_arrow.names[:MAX_COLUMNS]
    rows: list[list[Any]] = []
    for batch in parquet.iter_batches(batch_size=MAX_ROWS, columns=names):
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        rows = [[_cell(col[r]) for col in columns] for r in range(batch.num_rows)]
        break
    return PreviewView(kind="table", columns=names, rows=rows, total_rows=parquet.metadata.num_rows)


def _array(data: bytes) -> PreviewView:
    import numpy as np

    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.ndim == 0:
        return PreviewView(kind="value", value=array.item())
    head = array[:MAX_ROWS]
    if array.ndim == 1:
        rows = [[_cell(v)] for v in head.tolist()]
        return PreviewView(kind="table", columns=["value"], rows=rows, total_rows=len(array))
    flat = head.reshape(len(head), -1)[:, :MAX_COLUMNS]
    columns = [str(i) for i in range(flat.shape[1])]
    rows = [[_cell(v) for v in row] for row in flat.tolist()]
    return PreviewView(
        kind="table",
        columns=columns,
        rows=rows,
        total_rows=len(array),
        message=f"shape {tuple(array.shape)}, dtype {array.dtype}",
    )


def _cell(value: Any) -> Any:
    """A JSON-safe, short table cell."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    text = str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def _json_preview(value: Any) -> PreviewView:
    """A JSON value whole (``value``), or, past :data:`MAX_TEXT_CHARS`, its start as text
    (a long string as itself, not as its JSON with every newline escaped twice)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, indent=1)
    if len(text) <= MAX_TEXT_CHARS:
        return PreviewView(kind="value", value=value)
    return PreviewView(
        kind="text",
        data=text[:MAX_TEXT_CHARS],
        message=f"the first {MAX_TEXT_CHARS:,} of {len(text):,} characters",
    )

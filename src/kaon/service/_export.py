"""Writing loaded artifact values to files, previewing them, and drawing metric plots.

Data libraries (pandas, pyarrow, numpy, matplotlib) are imported only when a value comes
from them or a plot is drawn, so that the CLI starts fast.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from kaon.errors import InvalidActionError
from kaon.model.text import readable_text
from kaon.service.experiment_views import PlotView

PREVIEW_ROWS = 10
PREVIEW_CHARS = 4000


def _instance_of(value: Any, module: str, name: str) -> bool:
    """isinstance against ``module.name`` without importing ``module``."""
    loaded = sys.modules.get(module)
    kind = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(kind, type) and isinstance(value, kind)


def _json_text(value: Any, ascii_only: bool = True) -> str | None:
    """``value``'s JSON, or None when it is not JSON. A preview (``ascii_only=False``) has
    its text as written ("Zürich", a lone surrogate as U+FFFD), a file written is ASCII."""
    try:
        text = json.dumps(value, indent=2, allow_nan=False, ensure_ascii=ascii_only)
    except (TypeError, ValueError):
        return None
    return text if ascii_only else readable_text(text)


def write_value(value: Any, dest: Path) -> str:
    """Write ``value`` at ``dest`` in the format its type calls for; returns the format name.

    ``files`` (a file or folder artifact: copied), ``parquet`` or ``csv`` (DataFrame, Arrow
    table; CSV when ``dest`` ends in ``.csv``), ``npy`` (NumPy array), ``bytes`` (bytes,
    written as they are), ``json`` (plain JSON values), else ``pickle`` (cloudpickle).
    Raises InvalidActionError when ``dest`` is an existing folder and ``value`` is not a
    folder, or cannot be written (naming the path and why: a file where a folder should be,
    no permission, a full disk).
    """
    try:
        return _write_value(value, dest)
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else dest
        if isinstance(exc, FileExistsError | NotADirectoryError) and where.is_file():
            why = f"{where} is a file, not a folder"
        else:
            why = f"{exc.strerror or exc}: {where}"
        raise InvalidActionError(f"cannot write {dest}: {why}") from None


def _write_value(value: Any, dest: Path) -> str:
    if isinstance(value, Path):
        return _copy_files(value, dest)
    if dest.is_dir():
        raise InvalidActionError(f"{dest} is a folder: give the name of a file to write")
    dest.parent.mkdir(parents=True, exist_ok=True)
    csv = dest.suffix.lower() == ".csv"
    if _instance_of(value, "pandas", "DataFrame"):
        if csv:
            value.to_csv(dest, index=False)
            return "csv"
        why = "Parquet would not give this DataFrame back"
        if _parquet_keeps(value):
            try:
                value.to_parquet(dest)
                return "parquet"
            except (ValueError, TypeError, NotImplementedError) as exc:  # Arrow's refusals
                dest.unlink(missing_ok=True)
                why = f"{why} ({exc})"
        _refuse_typed_suffix(dest, ".parquet", why)
    elif _instance_of(value, "pyarrow", "Table"):
        return _write_arrow(value, dest, csv)
    elif _instance_of(value, "numpy", "ndarray"):
        import numpy as np

        if type(value) is np.ndarray:
            with dest.open("wb") as file:
                np.save(file, value, allow_pickle=value.dtype.hasobject)
            return "npy"
        what = f"a {type(value).__name__} is not a plain array (.npy drops what it adds)"
        _refuse_typed_suffix(dest, ".npy", what)
    if isinstance(value, bytes | bytearray | memoryview):  # the bytes themselves, not a pickle
        dest.write_bytes(bytes(value))
        return "bytes"
    text = _json_text(value)
    if text is not None:
        dest.write_text(text + "\n")
        return "json"
    dest.write_bytes(cloudpickle.dumps(value))
    return "pickle"


def _parquet_keeps(frame: Any) -> bool:
    """Whether Parquet gives ``frame`` back as it is (the artifact store's own test; a
    frame it pickles has labels or columns Parquet changes, or refuses)."""
    from kaon.artifacts.serializers import ParquetSerializer

    return ParquetSerializer().accepts(frame)


def _refuse_typed_suffix(dest: Path, suffix: str, why: str) -> None:
    """A value its usual format cannot hold is pickled, unless ``dest`` asks for that format
    by its suffix: then InvalidActionError says why and what to write instead."""
    if dest.suffix.lower() == suffix:
        raise InvalidActionError(
            f"cannot write {dest}: {why}; name the file .pkl to write it as a pickle"
            + (" (or .csv for its values as text)" if suffix == ".parquet" else "")
        )


def _copy_files(source: Path, dest: Path) -> str:
    if source.is_dir():
        shutil.copytree(source, dest, dirs_exist_ok=True)
    else:
        target = dest / source.name if dest.is_dir() else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return "files"


def _write_arrow(table: Any, dest: Path, csv: bool) -> str:
    if csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, str(dest))
        return "csv"
    import pyarrow.parquet as pq

    pq.write_table(table, str(dest))
    return "parquet"


def preview(value: Any, rows: int = PREVIEW_ROWS) -> str:
    """A short human-readable description of ``value`` (a DataFrame's head, an array's repr,
    a folder's listing, JSON, or a truncated repr)."""
    if isinstance(value, Path):
        text = _preview_files(value)
    elif _instance_of(value, "pandas", "DataFrame"):
        shape = f"DataFrame: {value.shape[0]:,} rows x {value.shape[1]} columns"
        text = f"{shape}\n{value.head(rows).to_string()}"
    elif _instance_of(value, "pyarrow", "Table"):
        head = value.slice(0, rows).to_string(preview_cols=20)
        text = f"pyarrow.Table: {value.num_rows:,} rows\n{head}"
    elif _instance_of(value, "numpy", "ndarray"):
        text = f"ndarray shape={value.shape} dtype={value.dtype}\n{value!r}"
    else:
        text = _json_text(value, ascii_only=False) or _safe_repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "\n..."


def _safe_repr(value: Any) -> str:
    """``repr(value)``, or a description when repr raises (an int of more than 4,300
    digits, an object whose ``__repr__`` fails): a preview never fails the command."""
    try:
        return repr(value)
    except Exception as exc:
        kind = type(value)
        name = f"{kind.__module__}.{kind.__qualname__}"
        if kind is int:
            return f"<int of {value.bit_length():,} bits: too long to print>"
        return f"<{name} object: repr() failed: {type(exc).__name__}: {exc}>"


def _preview_files(path: Path) -> str:
    if path.is_file():
        return f"file {path.name} ({path.stat().st_size:,} bytes), extracted at {path}"
    entries = sorted(p for p in path.rglob("*") if p.is_file())
    listing = "\n".join(f"  {p.relative_to(path)}" for p in entries[:20])
    more = f"\n  ... and {len(entries) - 20} more" if len(entries) > 20 else ""
    return f"folder {path.name} ({len(entries)} files), extracted at {path}\n{listing}{more}"


# -- plots ---------------------------------------------------------------------------------------

_MAX_BARS = 60


def require_matplotlib() -> None:
    """Raise :class:`ConfigurationError` with the install hint when matplotlib is missing."""
    from kaon.errors import ConfigurationError
    from kaon.steptypes.requirements import Requirement, is_installed, missing_message

    needed = Requirement("matplotlib", "ml")
    if not is_installed(needed.module):
        raise ConfigurationError(missing_message("kaon plot", needed))


def render_plot(view: PlotView, dest: Path) -> None:
    """Draw ``view`` as a PNG at ``dest`` with matplotlib's Agg renderer (no display needed).

    Metrics over ``step`` are lines; across runs or items they are grouped bars, or lines
    with markers when there are too many bars to read.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5), dpi=110)
    ax = fig.add_subplot()
    if view.by == "step":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for series in view.series:
            ax.plot(series.x, series.y, marker="o", markersize=3, label=series.label)
    else:
        _categorical(ax, view)
    ax.set_title(view.title)
    ax.set_xlabel(view.x_label)
    ax.set_ylabel(view.metric)
    ax.grid(True, alpha=0.3)
    if len(view.series) > 1 or (view.series and view.series[0].label):
        ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, format="png")


def _categorical(ax: Any, view: PlotView) -> None:
    categories = list(dict.fromkeys(str(x) for s in view.series for x in s.x))
    position = {c: i for i, c in enumerate(categories)}
    count = max(len(view.series), 1)
    if count * len(categories) <= _MAX_BARS:
        width = 0.8 / count
        for n, series in enumerate(view.series):
            xs = [position[str(x)] - 0.4 + width * (n + 0.5) for x in series.x]
            ax.bar(xs, series.y, width=width, label=series.label)
    else:
        for series in view.series:
            xs = [position[str(x)] for x in series.x]
            ax.plot(xs, series.y, marker="o", markersize=3, label=series.label)
    long = any(len(c) > 8 for c in categories) or len(categories) > 12
    step = max(1, -(-len(categories) // 25))  # at most ~25 labels
    ticks = list(range(0, len(categories), step))
    ax.set_xticks(
        ticks,
        labels=[categories[i] for i in ticks],
        rotation=35 if long else 0,
        ha="right" if long else "center",
        fontsize="small",
    )

"""Serializers: how a value becomes the bytes of a blob, and back.

A serializer is a small object with four members:

``name``
    Stable identifier recorded in every :class:`~kaon.model.values.ArtifactRef`; never change
    it once blobs exist, it is how ``get`` finds the matching ``loads``.
``accepts(value) -> bool``
    Cheap check whether this serializer is meant for ``value``. Must not import heavy
    libraries unless the value's type already comes from them.
``dumps(value) -> bytes``
    Serialize. May raise on values it cannot handle after all; the store then tries the next
    accepting serializer.
``loads(data: bytes) -> Any``
    Deserialize what ``dumps`` produced.

A serializer may also stream (the built-in ones do), so that a large value is never held as
bytes next to itself: ``dump(value, file)`` writes the same bytes ``dumps`` returns into a
binary file, and ``load(file, hash_)`` reads a value from a seekable binary file (positioned
at its start) holding the blob named ``hash_``. :func:`dump_blob` and :func:`load_blob` use
them when present and fall back to ``dumps``/``loads``.

:data:`SERIALIZERS` is the explicit, ordered registry; the artifact store uses the first one
that accepts a value (and whose ``dumps`` succeeds):

1. ``json`` -- plain JSON values too large to inline (a value holding a tuple is not one: it
   is pickled, so that the tuple comes back a tuple).
2. ``parquet`` -- ``pandas.DataFrame`` (comes back as a DataFrame) and ``pyarrow.Table``
   (comes back as a Table), via pyarrow.
3. ``numpy`` -- ``numpy.ndarray`` without object dtype, via ``np.save(allow_pickle=False)``.
4. ``files`` -- a ``pathlib.Path`` to an existing file or folder: stored as a deterministic
   tar of its content; loading extracts it once under the cache directory
   (``$KAON_CACHE_DIR``, default ``$XDG_CACHE_HOME/kaon`` or ``~/.cache/kaon``) and returns
   the :class:`~pathlib.Path` of the extracted copy. Treat that copy as read-only.
5. ``pickle`` -- cloudpickle, the last resort; accepts anything, fails in ``dumps`` when the
   value cannot be pickled.

pandas, numpy and pyarrow are imported only when a value's type comes from them (or when a blob
of theirs is loaded), so that ``import kaon`` stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
import shutil
import sys
import tarfile
import tempfile
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO, Any, Protocol

import cloudpickle

from kaon.artifacts import _stable_pickle as _stable
from kaon.artifacts.jsonable import dumps_compact, is_plain_json
from kaon.errors import KaonError, SerializationError


class Serializer(Protocol):
    """What every serializer provides (see the module docstring)."""

    name: str

    def accepts(self, value: Any) -> bool:
        """True when this serializer is meant for ``value``."""
        ...

    def dumps(self, value: Any) -> bytes:
        """The bytes of ``value``; may raise when the value cannot be serialized after all."""
        ...

    def loads(self, data: bytes) -> Any:
        """The value whose bytes are ``data``."""
        ...


def sha256(data: bytes) -> str:
    """Hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _module_of(value: Any) -> str:
    return type(value).__module__.partition(".")[0]


class JsonSerializer:
    """Plain JSON values (exact dict/list/str/int/float/bool/None), as compact UTF-8."""

    name = "json"

    def accepts(self, value: Any) -> bool:
        """True when ``value`` is plain JSON (no tuples: JSON would give them back as lists)."""
        return is_plain_json(value)

    def dumps(self, value: Any) -> bytes:
        """Compact JSON."""
        return dumps_compact(value).encode("ascii")

    def loads(self, data: bytes) -> Any:
        """Parse JSON."""
        return json.loads(data)

    def dump(self, value: Any, file: IO[bytes]) -> None:
        """Write :meth:`dumps`' bytes to ``file``."""
        file.write(self.dumps(value))

    def load(self, file: IO[bytes], hash_: str) -> Any:
        """Parse the JSON in ``file``."""
        return json.load(file)


class ParquetSerializer:
    """``pandas.DataFrame`` and ``pyarrow.Table`` as Parquet; the original kind comes back."""

    name = "parquet"

    def accepts(self, value: Any) -> bool:
        """True for an Arrow table, and for a DataFrame that Parquet gives back as it was
        (checked without importing either eagerly; see :func:`_parquet_keeps`)."""
        module = _module_of(value)
        if module == "pandas":
            import pandas as pd

            return isinstance(value, pd.DataFrame) and _parquet_keeps(value)
        if module == "pyarrow":
            import pyarrow as pa

            return isinstance(value, pa.Table)
        return False

    def dumps(self, value: Any) -> bytes:
        """Parquet bytes; a DataFrame keeps pyarrow's pandas metadata (index, dtypes)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(_arrow_table(value), sink)
        return bytes(sink.getvalue().to_pybytes())

    def loads(self, data: bytes) -> Any:
        """A DataFrame when the blob was written from one, else a pyarrow Table."""
        import pyarrow as pa

        return self._from_file(pa.BufferReader(data))

    def dump(self, value: Any, file: IO[bytes]) -> None:
        """Write :meth:`dumps`' bytes to ``file``, as Parquet writes them."""
        import pyarrow.parquet as pq

        pq.write_table(_arrow_table(value), file)

    def load(self, file: IO[bytes], hash_: str) -> Any:
        """:meth:`loads` of the Parquet in ``file``."""
        return self._from_file(file)

    @staticmethod
    def _from_file(source: Any) -> Any:
        import pyarrow.parquet as pq

        table = pq.read_table(source)
        if table.schema.pandas_metadata is not None:
            return table.to_pandas()
        return table


def _arrow_table(value: Any) -> Any:
    import pyarrow as pa

    return value if isinstance(value, pa.Table) else pa.Table.from_pandas(value)


# What an object column may hold for Parquet to give it back as it was (pandas' inference).
_PARQUET_OBJECTS = frozenset({"empty", "string", "bytes", "decimal", "date"})


def _parquet_keeps(frame: Any) -> bool:
    """Whether a DataFrame survives Parquet unchanged. Not: column labels Parquet does not
    give back (:func:`_parquet_keeps_labels`), an object column of dicts, lists
    or tuples (Arrow makes structs of dicts, adding every key to each, and arrays of lists),
    a categorical of anything but strings (it comes back as its categories' plain dtype),
    times in seconds (they come back in milliseconds), an index with a frequency (lost).
    Such a frame is pickled instead (the next serializer), so it comes back equal."""
    import pandas as pd

    if getattr(frame.index, "freq", None) is not None:
        return False
    if not _parquet_keeps_labels(frame.columns):
        return False
    for dtype, column in zip(frame.dtypes, range(frame.shape[1]), strict=True):
        if isinstance(dtype, pd.CategoricalDtype):
            inferred = pd.api.types.infer_dtype(dtype.categories, skipna=True)
            if inferred not in ("string", "empty"):
                return False
        elif pd.api.types.is_object_dtype(dtype):
            values = frame.iloc[:, column]
            if pd.api.types.infer_dtype(values, skipna=True) not in _PARQUET_OBJECTS:
                return False
        elif getattr(dtype, "kind", "") in ("m", "M") and "[s" in str(dtype):
            return False
    return True


# Kinds of column labels Parquet gives back as they were (pandas' inference, per level).
_PARQUET_LABELS = frozenset(
    {"empty", "string", "bytes", "integer", "floating", "decimal", "datetime64", "datetime"}
)


def _parquet_keeps_labels(columns: Any) -> bool:
    """Whether Parquet gives a frame's column labels back as they were: Arrow names columns
    by strings and pandas' metadata restores each level from one dtype, so labels of mixed
    kinds (``"a"`` and ``2``, tuples next to strings) came back as strings, booleans as
    ``True`` for every label (``False`` became ``True``), and dates, timedeltas and a
    categorical index could not be read back at all."""
    import pandas as pd

    levels = columns.levels if isinstance(columns, pd.MultiIndex) else [columns]
    for level in levels:
        if isinstance(level.dtype, pd.CategoricalDtype):
            return False
        if pd.api.types.infer_dtype(level, skipna=False) not in _PARQUET_LABELS:
            return False
    return True


class NumpySerializer:
    """``numpy.ndarray`` (exact type, no object dtype) in ``.npy`` format, never pickled."""

    name = "numpy"

    def accepts(self, value: Any) -> bool:
        """True for a plain ndarray whose dtype holds no Python objects."""
        if _module_of(value) != "numpy":
            return False
        import numpy as np

        return type(value) is np.ndarray and not value.dtype.hasobject

    def dumps(self, value: Any) -> bytes:
        """``np.save`` bytes with ``allow_pickle=False``."""
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        """``np.load`` with ``allow_pickle=False``."""
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)

    def dump(self, value: Any, file: IO[bytes]) -> None:
        """``np.save`` into ``file`` (a real file takes the array's memory as it is)."""
        import numpy as np

        np.save(file, value, allow_pickle=False)

    def load(self, file: IO[bytes], hash_: str) -> Any:
        """``np.load`` of ``file`` with ``allow_pickle=False``."""
        import numpy as np

        return np.load(file, allow_pickle=False)


def cache_dir() -> pathlib.Path:
    """Kaon's local cache directory: ``$KAON_CACHE_DIR``, else ``$XDG_CACHE_HOME/kaon``."""
    explicit = os.environ.get("KAON_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "kaon"


def _normalize_tarinfo(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Drop what varies between copies of the same content, so equal content hashes equal."""
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


_CHECK_DEST = "/kaon-files-check"  # where data_filter pretends the tar is extracted


def _storable_tarinfo(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """``info`` normalized, after the check extraction makes (tarfile's ``data`` filter)."""
    tarfile.data_filter(info, _CHECK_DEST)
    return _normalize_tarinfo(info)


class FilesSerializer:
    """A ``pathlib.Path`` to an existing file or folder, stored as a tar of its content."""

    name = "files"

    def accepts(self, value: Any) -> bool:
        """True for a Path that points at an existing file or directory."""
        return isinstance(value, pathlib.Path) and (value.is_file() or value.is_dir())

    def dumps(self, value: Any) -> bytes:
        """A tar (sorted entries, zeroed times and owners) with one top-level member.

        Raises :class:`~kaon.errors.SerializationError` for what :meth:`loads` would refuse
        to extract (tarfile's ``data`` filter): a link to an absolute path or out of the
        folder, a device or a FIFO. A blob no step could read is refused when it is made,
        by the step that made it, not by every step that needs it, on every attempt."""
        buffer = io.BytesIO()
        self.dump(value, buffer)
        return buffer.getvalue()

    def dump(self, value: Any, file: IO[bytes]) -> None:
        """Write :meth:`dumps`' tar into ``file`` as it reads the files (raises as it does)."""
        path = pathlib.Path(value).resolve()
        with tarfile.open(fileobj=file, mode="w", format=tarfile.PAX_FORMAT) as tar:
            try:
                tar.add(path, arcname=path.name or "root", filter=_storable_tarinfo)
            except tarfile.FilterError as error:
                raise SerializationError(
                    f"{path} cannot be stored as files: {error}; a folder output may hold "
                    "files, folders and links within it (copy what a link outside points at, "
                    "leave out FIFOs and devices)"
                ) from None

    def loads(self, data: bytes) -> Any:
        """Extract once under the cache directory and return the Path of the top member.

        Raises :class:`~kaon.errors.SerializationError` when the tar is empty.
        """
        return self.load(io.BytesIO(data), sha256(data))

    def load(self, file: IO[bytes], hash_: str) -> Any:
        """:meth:`loads` of the tar in ``file``, the blob ``hash_``, read as it extracts."""
        target = cache_dir() / "artifact-files" / hash_
        if not target.is_dir():
            self._extract(file, target)
        members = sorted(target.iterdir())
        if not members:
            raise SerializationError(f"files artifact extracted to {target} is empty")
        return members[0]

    @staticmethod
    def _extract(file: IO[bytes], target: pathlib.Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
        try:
            with tarfile.open(fileobj=file, mode="r") as tar:
                tar.extractall(staging, filter="data")
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():  # not a concurrent extraction that won the race
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


# A workflow's own files are loaded under this prefix (kaon.steptypes.codeload), a name that
# exists only in the processes that loaded them, so cloudpickle pickles their classes by value.
_USER_MODULE_PREFIX = "kaon_user_"

# A class of a user file that was loaded by value (no module of its file was loaded here):
# where it came from, so that storing its objects again keeps naming the file's class.
_user_class_origins: weakref.WeakKeyDictionary[type, tuple[str, str, str]] = (
    weakref.WeakKeyDictionary()
)


def _attribute(module: Any, qualname: str) -> Any:
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def _user_class_origin(cls: type) -> tuple[str, str, str] | None:
    """``(module name, file, qualified name)`` of a class a workflow's file defines at a
    reachable name, else None."""
    origin = _user_class_origins.get(cls)
    if origin is not None:
        return origin
    name = getattr(cls, "__module__", None)
    if not isinstance(name, str) or not name.startswith(_USER_MODULE_PREFIX):
        return None
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    qualname = getattr(cls, "__qualname__", "")
    if not isinstance(file, str) or _attribute(module, qualname) is not cls:
        return None
    return name, file, qualname


def _module_of_file(name: str, file: str) -> Any:
    """The module of this process loaded from ``file`` (under ``name``, or imported the
    ordinary way: a notebook's ``import flow``), or None. Never loads anything."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == file:
        return module
    real, base = os.path.realpath(file), os.path.basename(file)
    for candidate in list(sys.modules.values()):
        path = getattr(candidate, "__file__", None)
        if not isinstance(path, str) or os.path.basename(path) != base:
            continue
        if os.path.realpath(path) == real:
            return candidate
    return None


# While a step's inputs load: the folder of the step's own code (its version's bundle). See
# :func:`classes_of_folder`.
_code_folder: ContextVar[str | None] = ContextVar("kaon_code_folder", default=None)
# (a file, the file of that name in another folder, a class's qualified name) -> whether the
# two files define that class the same way
_same_classes: dict[tuple[str, str, str], bool] = {}


@contextlib.contextmanager
def classes_of_folder(folder: str | None) -> Iterator[None]:
    """Within this block, a class of a user file of *another* folder that the same-named file
    of ``folder`` defines the same way (the same source, decorators and bases included:
    another version of the workflow whose ``Box`` did not change, a cached output of its run)
    loads as the class of ``folder``'s file, when this process has loaded it: a step's input
    is an instance of its own version's class, as a local run's is of its edited file's. A
    class defined otherwise (or only there: another team's file) is kept (from its module if
    loaded here, else by value)."""
    token = _code_folder.set(folder)
    try:
        yield
    finally:
        _code_folder.reset(token)


def _same_class_here(file: str, qualname: str) -> str | None:
    """The file of :data:`_code_folder`'s folder with the same name as ``file`` (another file)
    when it defines the class ``qualname`` as ``file`` does, else None."""
    folder = _code_folder.get()
    if folder is None or os.path.dirname(file) == folder:
        return None
    own = os.path.join(folder, os.path.basename(file))
    key = (file, own, qualname)
    same = _same_classes.get(key)
    if same is None:
        theirs, ours = _class_source(file, qualname), _class_source(own, qualname)
        same = _same_classes[key] = theirs is not None and theirs == ours
    return own if same else None


def _class_source(file: str, qualname: str) -> str | None:
    """The class ``qualname`` of the Python file ``file`` as its syntax tree's dump (comments
    and layout apart), or None when it has none or cannot be read."""
    import ast

    try:
        with open(file, encoding="utf-8") as handle:
            body: list[ast.stmt] = ast.parse(handle.read()).body
    except (OSError, SyntaxError, ValueError):
        return None
    found: ast.ClassDef | None = None
    for part in qualname.split("."):
        found = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if found is None:
            return None
        body = found.body
    return ast.dump(found) if found is not None else None


def _load_user_class(name: str, file: str, qualname: str, by_value: bytes) -> type:
    """The class ``qualname`` of the workflow file ``file``: the one its module defines when
    this process has loaded that module (so ``is``, ``==`` and ``isinstance`` hold for an
    enum member or a dataclass a step returned), else the copy pickled by value. Within
    :func:`classes_of_folder`, the same file of the step's own folder comes first."""
    own = _same_class_here(file, qualname)
    if own is not None:
        module = _module_of_file("", own)
        live = _attribute(module, qualname) if module is not None else None
        if isinstance(live, type):
            return live
    module = _module_of_file(name, file)
    if module is not None:
        live = _attribute(module, qualname)
        if isinstance(live, type):
            return live
    cls: type = cloudpickle.loads(by_value)
    _user_class_origins[cls] = (name, file, qualname)
    return cls


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, with a workflow file's classes pickled by value *and* by their file and
    name: loading takes the class of the file's module when the loading process has it.
    Pickled by value only, an object returned by a step and read in another process (the
    next step on another worker, a cached output in the next run, a client) had a class
    of its own there: ``mode is Mode.TRAIN`` and ``isinstance(cfg, Config)`` were False.

    Equal values pickle to equal bytes in every process (see :mod:`._stable_pickle`): sets
    in a stable order, classes written by value under an id derived from their content. A
    set's or such a class's pickle differed per process, so a cacheable step reading one
    missed the cache at every run."""

    def __init__(self, file: IO[bytes], protocol: int = cloudpickle.DEFAULT_PROTOCOL) -> None:
        super().__init__(file, protocol=protocol)
        self.canonical_memo = _stable.Memo()

    def canonical(self, value: Any) -> Any:
        """``value`` with its sets in a stable order (see :func:`_stable.canonical`)."""
        return _stable.canonical(value, self.canonical_memo, _stable_bytes)

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type):
            if not _stable.written_by_value(obj):
                origin = _user_class_origin(obj)
                if origin is not None:
                    return _load_user_class, (*origin, _class_by_value(obj))
            reduced = super().reducer_override(obj)
            return _stable.stable_class_reduce(obj, reduced, _stable_bytes, self.canonical)
        # A type with a reducer of its own (copyreg's, cloudpickle's) is left to it.
        plain = (
            None
            if type(obj) in self.dispatch_table
            else _stable.plain_object_reduce(obj, self.proto)
        )
        if plain is not None:
            if len(plain) > 2 and plain[2] is not None:
                state = self.canonical(plain[2])
                if state is not plain[2]:
                    return (*plain[:2], state, *plain[3:])
            return plain
        return super().reducer_override(obj)


def _stable_bytes(value: Any) -> bytes:
    """The blob bytes of ``value`` (sets in a stable order: how a set's elements are sorted)."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    pickler.dump(pickler.canonical(value))
    return buffer.getvalue()


def _class_by_value(cls: type) -> bytes:
    """The pickle of the workflow file's class ``cls`` by value (its copy for a process
    without the file's module)."""
    with _stable.writing_by_value(cls):
        return _stable_bytes(cls)


class PickleSerializer:
    """Anything cloudpickle can pickle (the last resort)."""

    name = "pickle"

    def accepts(self, value: Any) -> bool:
        """Always True; failures surface in :meth:`dumps`."""
        return True

    def dumps(self, value: Any) -> bytes:
        """cloudpickle bytes; raises whatever cloudpickle raises for unpicklable values."""
        buffer = io.BytesIO()
        self.dump(value, buffer)
        return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        """Unpickle (trusted data only: blobs are written by Kaon)."""
        return cloudpickle.loads(data)

    def dump(self, value: Any, file: IO[bytes]) -> None:
        """Pickle into ``file`` (the bytes :meth:`dumps` returns)."""
        pickler = _Pickler(file)
        pickler.dump(pickler.canonical(value))

    def load(self, file: IO[bytes], hash_: str) -> Any:
        """Unpickle ``file`` (trusted data only: blobs are written by Kaon)."""
        return cloudpickle.load(file)


SERIALIZERS: tuple[Serializer, ...] = (
    JsonSerializer(),
    ParquetSerializer(),
    NumpySerializer(),
    FilesSerializer(),
    PickleSerializer(),
)

_BY_NAME: dict[str, Serializer] = {s.name: s for s in SERIALIZERS}


def serializer_named(name: str) -> Serializer:
    """The registered serializer called ``name``.

    Raises :class:`~kaon.errors.SerializationError` for an unknown name.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise SerializationError(f"unknown serializer {name!r} (known: {known})") from None


def dump_blob(serializer: Serializer, value: Any, file: IO[bytes]) -> None:
    """Write the bytes of ``value`` by ``serializer`` into ``file``: streamed when the
    serializer can (``dump``), else its ``dumps``. Raises what the serializer raises."""
    dump = getattr(serializer, "dump", None)
    if callable(dump):
        dump(value, file)
    else:
        file.write(serializer.dumps(value))


def load_blob(hash_: str, serializer: str, file: IO[bytes]) -> Any:
    """The value of blob ``hash_`` written by ``serializer``, read from ``file`` (seekable, at
    its start, its content checked against the hash): streamed when the serializer can
    (``load``), else its ``loads`` of the whole content.

    Raises :class:`~kaon.errors.SerializationError` naming the blob when it cannot be decoded.
    """
    chosen = serializer_named(serializer)
    load = getattr(chosen, "load", None)
    if not callable(load):
        return decode_blob(hash_, serializer, file.read())
    with _decoding(hash_, serializer):
        return load(file, hash_)


def decode_blob(hash_: str, serializer: str, data: bytes) -> Any:
    """The value of blob ``hash_`` (its bytes ``data``) written by ``serializer``.

    Raises :class:`~kaon.errors.SerializationError` naming the blob when it cannot be decoded.
    """
    with _decoding(hash_, serializer):
        return serializer_named(serializer).loads(data)


@contextlib.contextmanager
def _decoding(hash_: str, serializer: str) -> Iterator[None]:
    """A failure to decode blob ``hash_`` as a SerializationError naming it (Kaon's own
    errors pass as they are)."""
    try:
        yield
    except KaonError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"cannot decode blob {hash_} with serializer {serializer!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc

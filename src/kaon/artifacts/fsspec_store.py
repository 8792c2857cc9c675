"""The artifact store on fsspec: a local directory by default, any fsspec URL otherwise.

Layout under the store's root::

    <root>/blobs/<sha256[:2]>/<sha256>

Blobs are content-addressed and written once. A write never leaves a half blob visible under
its final name: locally the bytes go to a hidden temp file in the same directory, are fsynced,
then renamed with ``os.replace``; on object stores (S3, GCS, Azure, memory) a single put is
already atomic; other filesystems write a temp name then move it.

A value goes through a file, never through bytes in memory: the serializer writes it into a
temporary file (the store's own folder locally, ``$TMPDIR`` otherwise), which is hashed as it
is read back and then renamed or uploaded (fsspec's ``put_file``, in parts); a blob is read
the same way (hashed from its file, or downloaded to a temporary file with ``get_file``), and
decoded from the file. A value of hundreds of MB (an array, a model, a folder) costs no more
than itself in memory, and a folder nothing.

A failure of the underlying filesystem (``OSError``, botocore and connection errors, ...)
is raised as :class:`~kaon.errors.ArtifactUnavailableError` (an :class:`~kaon.errors.ArtifactError`,
which callers treat as a platform failure; the engine retries its own reads and writes of a
run after such a failure instead of failing the run), except a refusal that lasts until the
store's configuration is fixed (no credentials, an unknown key, access denied, no such
bucket): that is an :class:`~kaon.errors.ArtifactAccessError` naming the store and what to
fix, never retried (see :mod:`kaon.artifacts._failures`); a missing or corrupt blob, or a
value no serializer takes, is another :class:`~kaon.errors.ArtifactError`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from kaon.artifacts import _local
from kaon.artifacts._failures import store_failure
from kaon.artifacts.base import INLINE_LIMIT, ArtifactStore
from kaon.artifacts.jsonable import inline_json
from kaon.artifacts.serializers import (
    SERIALIZERS,
    Serializer,
    dump_blob,
    load_blob,
    sha256,
)
from kaon.errors import (
    ArtifactAccessError,
    ArtifactConfigurationError,
    ArtifactError,
    CorruptArtifactError,
    KaonError,
    SerializationError,
)
from kaon.model.text import holds_nul
from kaon.model.values import ArtifactRef, Literal, RefDict, RefList, ValueRef

_HASH = re.compile(r"[0-9a-f]{64}")
_ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
_S3_PROTOCOLS = frozenset({"s3", "s3a"})
# s3fs moves a large object in parts, each held in memory, by default 10 parts of 50 MiB at
# once (500 MiB of RAM for a 500 MB model, each way): Kaon moves 4 parts of 16 MiB at once
# (bigger parts when an object would need more than S3's 10,000).
_PART_BYTES = 16 * 1024 * 1024
_PARTS_AT_ONCE = 4
_MAX_PARTS = 10_000


# The extra of Kaon that installs a protocol's fsspec driver.
_DRIVER_EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}


def _missing_driver(url: str, error: ImportError) -> str:
    """The message for an artifact URL whose driver is not installed, with its extra."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol in _DRIVER_EXTRAS:
        module, extra = _DRIVER_EXTRAS[protocol]
        return (
            f"artifacts on {protocol}:// need {module}, which is not installed: "
            f"pip install 'kaon[{extra}]'"
        )
    return f"cannot open artifact store {url!r}: {error}"


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


class FsspecArtifactStore(ArtifactStore):
    """Content-addressed artifact store on any fsspec filesystem.

    ``url`` is a local path (``/path`` or ``file:///path``) or any fsspec URL
    (``s3://bucket/prefix``, ``memory://name``); ``storage_options`` go to fsspec.
    ``serializers`` is the ordered registry to use and ``inline_limit`` the largest compact
    JSON (in bytes) kept inline as a Literal. Raises ArtifactError when the URL cannot be opened.
    """

    def __init__(
        self,
        url: str,
        *,
        serializers: Sequence[Serializer] = SERIALIZERS,
        inline_limit: int = INLINE_LIMIT,
        **storage_options: Any,
    ) -> None:
        self.url = url
        self.inline_limit = inline_limit
        self._serializers = tuple(serializers)
        self._storage_options = storage_options
        self._filesystem: Any = None
        self._local = True
        self._atomic_put = False
        self._s3 = False
        if "://" in url or not os.path.isabs(url) or storage_options:
            root = self._open()
        else:
            # A local folder: fsspec (a noticeable import) is loaded when a blob is first
            # touched; a run whose values are all inline never needs it.
            root = os.path.normpath(url)
        self._root: str = root.rstrip("/")
        self._blobs = f"{self._root}/blobs"

    def _open(self) -> str:
        """Open the filesystem (once); returns the store's root path on it."""
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        try:
            fs, root = fsspec.core.url_to_fs(self.url, **self._storage_options)
        except ImportError as exc:  # the protocol's driver is not installed
            raise ArtifactConfigurationError(_missing_driver(self.url, exc)) from exc
        except Exception as exc:  # a bad URL, an unknown protocol
            raise ArtifactConfigurationError(
                f"cannot open artifact store {self.url!r}: {exc}"
            ) from exc
        self._filesystem = fs
        self._local = isinstance(fs, LocalFileSystem)
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self._atomic_put = bool(protocols & _ATOMIC_PUT_PROTOCOLS)
        self._s3 = bool(protocols & _S3_PROTOCOLS)
        if self._s3:
            # botocore retries each request (its config_kwargs, see s3_time_limits): s3fs's
            # own retries on top (5 of each of them, a timeout included) would hold a call
            # to a hung store for many times its time limit.
            fs.retries = 1
        return str(root)

    @property
    def _fs(self) -> Any:
        """The fsspec filesystem (opened on first use for a local folder)."""
        if self._filesystem is None:
            self._open()
        return self._filesystem

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.url!r})"

    # -- paths -------------------------------------------------------------------------------

    def _path(self, hash_: str) -> str:
        return f"{self._blobs}/{hash_[:2]}/{hash_}"

    def _parts(self, hash_: str) -> tuple[str, str, str]:
        """A local blob's path below the root, part by part (see :mod:`kaon.artifacts._local`)."""
        return ("blobs", hash_[:2], hash_)

    def blob_path(self, ref: ArtifactRef | str) -> str:
        """Where the blob of ``ref`` (or of a hex sha256) lives: a local path or a full URL."""
        hash_ = ref if isinstance(ref, str) else ref.hash
        path = self._path(hash_)
        return path if self._local else str(self._fs.unstrip_protocol(path))

    # -- put ---------------------------------------------------------------------------------

    def put(self, value: Any, *, name: str = "") -> ValueRef:
        """Store ``value``: inline when it is plain JSON of at most ``inline_limit`` bytes.

        Otherwise the first accepting serializer whose ``dumps`` succeeds writes a blob named
        by the sha256 of its bytes (skipped when that blob already exists). Raises
        :class:`~kaon.errors.SerializationError` naming ``name`` and the value's type when no
        serializer can serialize it, :class:`~kaon.errors.ArtifactError` when writing fails.
        """
        if inline_json(value, self.inline_limit) and not holds_nul(value):
            return Literal(value)  # (PostgreSQL's jsonb cannot hold U+0000)
        with self._temp_file(name) as (temp, file):
            serializer = self._serialize(value, name, file)
            try:
                file.flush()
                with open(temp, "rb") as written:
                    hash_, size = _hash_file(written)
            except OSError as exc:
                raise self._write_error(name, exc) from exc
            self._store_file(hash_, temp, file)
        return ArtifactRef(hash_, serializer.name, size, _type_name(value))

    @contextlib.contextmanager
    def _temp_file(self, name: str) -> Iterator[tuple[str, IO[bytes]]]:
        """A new temporary file to serialize a value into (its path and the file open for
        writing: a plain ``BufferedWriter``, which NumPy writes an array to without copying
        it): in the store's folder locally, so that it is renamed into place, else in
        ``$TMPDIR``. Removed afterwards, whatever happens."""
        try:
            if self._local:
                folder = _local.own_folder(self._root, ("blobs", "tmp"))
                temp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
                file: IO[bytes] = open(temp, "xb")  # noqa: SIM115 (closed below)
            else:
                fd, temp = tempfile.mkstemp(prefix="kaon-blob-")
                file = os.fdopen(fd, "wb")
        except OSError as exc:
            raise self._write_error(name, exc) from exc
        try:
            yield temp, file
        finally:
            file.close()
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def put_json_items(self, texts: Iterable[bytes], *, name: str = "") -> ValueRef:
        """Store a list from its items' compact JSON texts; on a local store the blob is
        written as it streams in (hashed on the way), never held whole."""
        if not self._local:
            return super().put_json_items(texts, name=name)
        digest = hashlib.sha256()
        directory = os.path.join(self._blobs, "tmp")
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
        size = 0
        try:
            with open(temp, "xb") as file:
                separator = b"["
                for text in texts:
                    for part in (separator, text):
                        file.write(part)
                        digest.update(part)
                        size += len(part)
                    separator = b","
                tail = b"]" if separator == b"," else b"[]"
                file.write(tail)
                digest.update(tail)
                size += len(tail)
                file.flush()
                os.fsync(file.fileno())
            if size <= self.inline_limit:
                with open(temp, "rb") as file:
                    return Literal(json.loads(file.read()))
            hash_ = digest.hexdigest()
            parts = self._parts(hash_)
            if not _local.refresh_blob(self._root, parts):
                folder = _local.own_folder(self._root, parts[:-1])
                os.replace(temp, os.path.join(folder, hash_))
                _fsync_dir(folder)
        except OSError as exc:
            raise ArtifactError(f"cannot write the list {name or ''} as a blob: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        return ArtifactRef(hash_, "json", size, "builtins.list")

    def list_items(self, ref: ValueRef) -> Iterator[Any] | None:
        """The items of a list one by one; a JSON blob is decoded item by item as they are
        taken (its text is held, never the decoded list)."""
        if not (isinstance(ref, ArtifactRef) and ref.serializer == "json"):
            return super().list_items(ref)
        data = self._read(ref.hash)
        if sha256(data) != ref.hash:
            self._load(ref)  # raises CorruptArtifactError with the details
        text = data.decode("utf-8")
        del data
        start = _SPACE.match(text).end()  # type: ignore[union-attr]
        if text[start : start + 1] != "[":
            value = json.loads(text)
            return iter(value) if isinstance(value, list) else None
        return _array_items(text, start + 1)

    def _failure(self, doing: str, exc: BaseException) -> ArtifactError:
        """The store's error for ``exc`` of its filesystem, met while ``doing``: a refusal
        (credentials, bucket) an ArtifactAccessError, anything else an
        ArtifactUnavailableError (see :mod:`kaon.artifacts._failures`)."""
        return store_failure(self.url, doing, exc)

    def _write_error(self, name: str, exc: OSError) -> ArtifactError:
        return ArtifactError(f"cannot write blob of {_label(name)} to {self.url}: {exc}")

    def _serialize(self, value: Any, name: str, file: IO[bytes]) -> Serializer:
        """Write ``value`` into ``file`` (empty) by the first accepting serializer that
        succeeds (``file`` is emptied again after one that fails); returns it."""
        errors: list[str] = []
        for serializer in self._serializers:
            if not serializer.accepts(value):
                continue
            try:
                dump_blob(serializer, value, file)
                return serializer
            except SerializationError:  # its kind of value, which it cannot store: no
                raise  # fallback (a pickled Path names a folder of the step's machine only)
            except OSError as exc:
                if exc.errno in _STORAGE_ERRNOS:  # the disk, not the value
                    raise self._write_error(name, exc) from exc
                errors.append(f"{serializer.name}: {type(exc).__name__}: {exc}")
            except Exception as exc:
                errors.append(f"{serializer.name}: {type(exc).__name__}: {exc}")
            try:
                file.seek(0)
                file.truncate()
            except OSError as exc:
                raise self._write_error(name, exc) from exc
        reasons = "; ".join(errors) if errors else "no serializer accepts it"
        raise SerializationError(
            f"cannot serialize {_label(name)} of type {_type_name(value)}: {reasons}"
        )

    def _store_file(self, hash_: str, temp: str, file: IO[bytes]) -> None:
        """Make the file at ``temp`` (``file``, written and flushed) the blob ``hash_``,
        unless that blob exists: renamed into place durably, or uploaded."""
        path = self._path(hash_)
        try:
            if self._local:
                parts = self._parts(hash_)
                if not _local.refresh_blob(self._root, parts):
                    os.fsync(file.fileno())
                    folder = _local.own_folder(self._root, parts[:-1])
                    os.replace(temp, os.path.join(folder, hash_))
                    _fsync_dir(folder)
            elif not self._fs.exists(path):
                file.close()
                self._upload(temp, path)
        except KaonError:
            raise
        except Exception as exc:
            doing = f"cannot write blob {hash_} to {self.blob_path(hash_)}"
            raise self._failure(doing, exc) from exc

    def _parts_options(self, size: int) -> dict[str, int]:
        """The options bounding the memory of moving an object of ``size`` bytes in parts."""
        if not self._s3:
            return {}
        part = max(_PART_BYTES, -(-size // _MAX_PARTS))
        return {"chunksize": part, "max_concurrency": _PARTS_AT_ONCE}

    def _upload(self, temp: str, path: str) -> None:
        options = self._parts_options(os.path.getsize(temp))
        if self._atomic_put:
            self._fs.put_file(temp, path, **options)
            return
        remote_temp = f"{path.rsplit('/', 1)[0]}/.tmp-{uuid.uuid4().hex}"
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        try:
            self._fs.put_file(temp, remote_temp, **options)
            self._fs.mv(remote_temp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self._fs.rm_file(remote_temp)
            raise

    # -- get ---------------------------------------------------------------------------------

    def get(self, ref: ValueRef) -> Any:
        """Load the value behind ``ref``; lists and dicts of references resolve recursively.

        Raises :class:`~kaon.errors.CorruptArtifactError` naming hash and path when the bytes
        do not match the hash, :class:`~kaon.errors.SerializationError` when they cannot be
        decoded, and :class:`~kaon.errors.ArtifactError` when the blob is missing or the
        store fails.
        """
        if isinstance(ref, Literal):
            return ref.value
        if isinstance(ref, ArtifactRef):
            return self._load(ref)
        if isinstance(ref, RefList):
            return [self.get(item) for item in ref.items]
        if isinstance(ref, RefDict):
            return {key: self.get(item) for key, item in ref.items.items()}
        raise ArtifactError(f"not a value reference: {type(ref).__name__}")

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        """The stored bytes of a blob, checked against its hash, not decoded (for previews
        that must not unpickle). Raises CorruptArtifactError, ArtifactError."""
        data = self._read(ref.hash)
        actual = sha256(data)
        if actual != ref.hash:
            raise CorruptArtifactError(
                f"blob {ref.hash} at {self.blob_path(ref)} is corrupt: its content hashes to "
                f"{actual}"
            )
        return data

    def _load(self, ref: ArtifactRef) -> Any:
        with self._verified_file(ref.hash) as file:
            return load_blob(ref.hash, ref.serializer, file)

    @contextlib.contextmanager
    def _verified_file(self, hash_: str) -> Iterator[IO[bytes]]:
        """The blob ``hash_`` as a seekable file at its start, its content checked against
        the hash (read in chunks): the local file itself, or a temporary download of it.
        Raises CorruptArtifactError, ArtifactError (missing, store failure)."""
        path = self._path(hash_)
        temp = ""
        try:
            with self._reading(hash_, "read"):
                if self._local:
                    fd = _local.open_blob_file(self._root, self._parts(hash_))
                    file: IO[bytes] = os.fdopen(fd, "rb")
                else:
                    fd, temp = tempfile.mkstemp(prefix="kaon-blob-")
                    os.close(fd)
                    self._fs.get_file(path, temp, **self._parts_options(0))
                    file = open(temp, "rb")  # noqa: SIM115 (closed below)
            with file:
                try:
                    actual, _ = _hash_file(file)
                except OSError as exc:
                    raise ArtifactError(
                        f"cannot read blob {hash_} at {self.blob_path(hash_)}: {exc}"
                    ) from exc
                if actual != hash_:
                    raise CorruptArtifactError(
                        f"blob {hash_} at {self.blob_path(hash_)} is corrupt: its content "
                        f"hashes to {actual}"
                    )
                yield file
        finally:
            if temp:
                with contextlib.suppress(OSError):
                    os.unlink(temp)

    def _read(self, hash_: str) -> bytes:
        path = self._path(hash_)
        with self._reading(hash_, "read"):
            if self._local:
                with os.fdopen(_local.open_blob_file(self._root, self._parts(hash_)), "rb") as file:
                    return file.read()
            data: bytes = self._fs.cat_file(path)
            return data

    @contextlib.contextmanager
    def _reading(self, hash_: str, doing: str) -> Iterator[None]:
        """What reading blob ``hash_`` meets, as the store's errors: a missing blob an
        :class:`ArtifactError`, a refusal (credentials, no such bucket) an
        :class:`ArtifactAccessError`, any other failure of the filesystem (a connection, an
        outage) an :class:`ArtifactUnavailableError` (``cannot <doing> blob ...``)."""
        try:
            yield
        except ArtifactError:
            raise
        except Exception as exc:
            failure = self._failure(f"cannot {doing} blob {hash_} at {self.blob_path(hash_)}", exc)
            if isinstance(exc, FileNotFoundError) and not isinstance(failure, ArtifactAccessError):
                raise ArtifactError(
                    f"blob {hash_} is missing from the artifact store at {self.blob_path(hash_)}"
                ) from None
            raise failure from exc

    # -- inspection and garbage collection --------------------------------------------------

    def exists(self, ref: ArtifactRef) -> bool:
        """True when the blob behind ``ref`` is present. Raises ArtifactError on store failure."""
        path = self._path(ref.hash)
        try:
            if self._local:
                return _local.holds_blob(self._root, self._parts(ref.hash))
            return bool(self._fs.exists(path))
        except Exception as exc:
            doing = f"cannot check blob {ref.hash} at {self.blob_path(ref)}"
            raise self._failure(doing, exc) from exc

    def open_blob(self, hash_: str) -> tuple[IO[bytes], int]:
        """An open binary file of the blob named ``hash_`` (seekable) and its size in bytes,
        for streaming it without loading it; the caller closes the file. The bytes are not
        verified here: a reader checks them against the hash.

        Raises :class:`~kaon.errors.ArtifactError` when the blob is missing or the store fails.
        """
        if not _HASH.fullmatch(hash_):
            raise ArtifactError(f"not a sha256 hex digest: {hash_!r}")
        path = self._path(hash_)
        with self._reading(hash_, "open"):
            if self._local:
                fd = _local.open_blob_file(self._root, self._parts(hash_))
                file: IO[bytes] = os.fdopen(fd, "rb")  # the caller closes it
                return file, os.fstat(fd).st_size
            size = int(self._fs.size(path))
            opened: IO[bytes] = self._fs.open(path, "rb")
            return opened, size

    def iter_blobs(self) -> Iterator[tuple[str, int]]:
        """Yield ``(sha256, size in bytes)`` of every complete blob (temp files are skipped).

        Raises :class:`~kaon.errors.ArtifactError` when listing fails.
        """
        try:
            scan = _scan_local(self._blobs) if self._local else self._scan_remote()
            found = list(scan)
        except Exception as exc:
            raise self._failure(f"cannot list blobs under {self.url}", exc) from exc
        yield from found

    def iter_temp_files(self) -> Iterator[tuple[str, int, float]]:
        """Yield ``(path, size in bytes, modification time)`` of every temporary file a
        write left under the blobs folder: the partial output of a writer killed mid-way
        (locally under ``blobs/tmp``, remotely a ``.tmp-`` object beside its blob). A write
        going on has one too: the caller keeps the young ones.

        Raises :class:`~kaon.errors.ArtifactError` when listing fails.
        """
        try:
            found = list(_temps_local(self._blobs) if self._local else self._temps_remote())
        except Exception as exc:
            raise self._failure(f"cannot list temporary files under {self.url}", exc) from exc
        yield from found

    def _temps_remote(self) -> Iterator[tuple[str, int, float]]:
        if not self._fs.exists(self._blobs):
            return
        for path, info in self._fs.find(self._blobs, detail=True).items():
            if path.rstrip("/").rpartition("/")[2].startswith(".tmp-"):
                yield path, int(info.get("size") or 0), _modified(info)

    def delete_temp_file(self, path: str) -> None:
        """Delete a temporary file :meth:`iter_temp_files` listed (gone already: nothing).

        Raises :class:`~kaon.errors.ArtifactError` when the store fails.
        """
        try:
            if self._local:
                with contextlib.suppress(FileNotFoundError):
                    _local.remove_blob_file(self._root, ("blobs", "tmp", os.path.basename(path)))
            elif self._fs.exists(path):
                self._fs.rm_file(path)
        except Exception as exc:
            raise self._failure(f"cannot delete {path}", exc) from exc

    def _scan_remote(self) -> Iterator[tuple[str, int]]:
        if not self._fs.exists(self._blobs):
            return
        for path, info in self._fs.find(self._blobs, detail=True).items():
            parent, _, hash_ = path.rstrip("/").rpartition("/")
            if _HASH.fullmatch(hash_) and parent.endswith("/" + hash_[:2]):
                yield hash_, int(info.get("size") or 0)

    def delete_blob(self, hash_: str) -> None:
        """Delete the blob named ``hash_``; deleting a missing blob does nothing.

        Raises :class:`~kaon.errors.ArtifactError` on a malformed hash or a store failure.
        """
        if not _HASH.fullmatch(hash_):
            raise ArtifactError(f"not a sha256 hex digest: {hash_!r}")
        path = self._path(hash_)
        try:
            if self._local:
                with contextlib.suppress(FileNotFoundError):
                    _local.remove_blob_file(self._root, self._parts(hash_))
            elif self._fs.exists(path):
                self._fs.rm_file(path)
        except Exception as exc:
            doing = f"cannot delete blob {hash_} at {self.blob_path(hash_)}"
            raise self._failure(doing, exc) from exc


_SPACE = re.compile(r"[ \t\n\r]*")
_CHUNK = 1024 * 1024
# Errors of the disk a blob is written to, not of the value written (no other serializer
# would do better): the store fails, as a platform failure.
_STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG, errno.EMFILE}
)


def _label(name: str) -> str:
    return f"output {name!r}" if name else "value"


def _hash_file(file: IO[bytes]) -> tuple[str, int]:
    """The sha256 and size of ``file``'s whole content, read in chunks from its start; leaves
    it at its start again."""
    digest = hashlib.sha256()
    size = 0
    file.seek(0)
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    file.seek(0)
    return digest.hexdigest(), size


def _array_items(text: str, position: int) -> Iterator[Any]:
    """The values of the JSON array whose ``[`` ends at ``position`` in ``text``, decoded one
    at a time. Raises SerializationError on malformed JSON."""
    decoder = json.JSONDecoder()
    space = _SPACE.match
    try:
        position = space(text, position).end()  # type: ignore[union-attr]
        if text[position] == "]":
            return
        while True:
            value, position = decoder.raw_decode(text, position)
            yield value
            position = space(text, position).end()  # type: ignore[union-attr]
            if text[position] == "]":
                return
            if text[position] != ",":
                raise ValueError(f"expected ',' or ']' at {position}")
            position = space(text, position + 1).end()  # type: ignore[union-attr]
    except (ValueError, IndexError) as exc:
        raise SerializationError(f"cannot decode a JSON list: {exc}") from exc


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temps_local(blobs: str) -> Iterator[tuple[str, int, float]]:
    folder = os.path.join(blobs, "tmp")
    if os.path.islink(blobs) or os.path.islink(folder) or not os.path.isdir(folder):
        return
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".tmp-") and entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                yield entry.path, info.st_size, info.st_mtime


def _modified(info: Mapping[str, Any]) -> float:
    """A remote file's modification time from its listing; now when it has none (then it is
    never old enough to delete: it may be an upload going on)."""
    for name in ("mtime", "LastModified", "last_modified", "created", "modified"):
        stamp = info.get(name)
        if isinstance(stamp, int | float):
            return float(stamp)
        if stamp is not None and hasattr(stamp, "timestamp"):
            return float(stamp.timestamp())
    return time.time()


def _scan_local(blobs: str) -> Iterator[tuple[str, int]]:
    if os.path.islink(blobs) or not os.path.isdir(blobs):  # a link a step put there: not ours
        return
    with os.scandir(blobs) as shards:
        for shard in shards:
            if not shard.is_dir(follow_symlinks=False) or len(shard.name) != 2:
                continue
            with os.scandir(shard.path) as entries:
                for entry in entries:
                    if (
                        _HASH.fullmatch(entry.name)
                        and entry.name[:2] == shard.name
                        and entry.is_file(follow_symlinks=False)
                    ):
                        yield entry.name, entry.stat(follow_symlinks=False).st_size

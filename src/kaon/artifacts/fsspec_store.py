"""The artifact store on fsspec: a local directory by default, any fsspec URL otherwise.

Layout under the store's root::

    <root>/blobs/<sha256[:2]>/<sha256>

Blobs are content-addressed and written once. A write never leaves a half blob visible under
its final name: locally the bytes go to a hidden temp file in the same directory, are fsynced,
then renamed with ``os.replace``; on object stores (S3, GCS, Azure, memory) a single put is
already atomic; other filesystems write a temp name then move it.

Every failure of the underlying filesystem (``OSError``, botocore and connection errors, ...)
is raised as :class:`~kaon.errors.ArtifactError`, which callers treat as a platform failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from kaon.artifacts import _local
from kaon.artifacts.base import INLINE_LIMIT, ArtifactStore
from kaon.artifacts.jsonable import inline_json
from kaon.artifacts.serializers import SERIALIZERS, Serializer, decode_blob, sha256
from kaon.errors import (
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
        inline, normal = inline_json(value, self.inline_limit)
        if inline and not holds_nul(normal):  # PostgreSQL's jsonb cannot hold U+0000
            return Literal(normal)
        serializer, data = self._serialize(value, name)
        hash_ = sha256(data)
        self._write_once(hash_, data)
        return ArtifactRef(hash_, serializer.name, len(data), _type_name(value))

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
            if not _local.holds_blob(self._root, parts):
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

    def _serialize(self, value: Any, name: str) -> tuple[Serializer, bytes]:
        errors: list[str] = []
        for serializer in self._serializers:
            if not serializer.accepts(value):
                continue
            try:
                return serializer, serializer.dumps(value)
            except SerializationError:  # its kind of value, which it cannot store: no
                raise  # fallback (a pickled Path names a folder of the step's machine only)
            except Exception as exc:
                errors.append(f"{serializer.name}: {type(exc).__name__}: {exc}")
        label = f"output {name!r}" if name else "value"
        reasons = "; ".join(errors) if errors else "no serializer accepts it"
        raise SerializationError(f"cannot serialize {label} of type {_type_name(value)}: {reasons}")

    def _write_once(self, hash_: str, data: bytes) -> None:
        path = self._path(hash_)
        try:
            if self._local:
                _write_local(self._root, self._parts(hash_), data)
            elif not self._fs.exists(path):
                self._write_remote(path, data)
        except KaonError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"cannot write blob {hash_} to {self.blob_path(hash_)}: {exc}"
            ) from exc

    def _write_remote(self, path: str, data: bytes) -> None:
        if self._atomic_put:
            self._fs.pipe_file(path, data)
            return
        temp = f"{path.rsplit('/', 1)[0]}/.tmp-{uuid.uuid4().hex}"
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        try:
            self._fs.pipe_file(temp, data)
            self._fs.mv(temp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self._fs.rm_file(temp)
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
        return decode_blob(ref.hash, ref.serializer, self.read_bytes(ref))

    def _read(self, hash_: str) -> bytes:
        path = self._path(hash_)
        try:
            if self._local:
                with os.fdopen(_local.open_blob_file(self._root, self._parts(hash_)), "rb") as file:
                    return file.read()
            data: bytes = self._fs.cat_file(path)
            return data
        except FileNotFoundError:
            raise ArtifactError(
                f"blob {hash_} is missing from the artifact store at {self.blob_path(hash_)}"
            ) from None
        except ArtifactError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"cannot read blob {hash_} at {self.blob_path(hash_)}: {exc}"
            ) from exc

    # -- inspection and garbage collection --------------------------------------------------

    def exists(self, ref: ArtifactRef) -> bool:
        """True when the blob behind ``ref`` is present. Raises ArtifactError on store failure."""
        path = self._path(ref.hash)
        try:
            if self._local:
                return _local.holds_blob(self._root, self._parts(ref.hash))
            return bool(self._fs.exists(path))
        except Exception as exc:
            raise ArtifactError(
                f"cannot check blob {ref.hash} at {self.blob_path(ref)}: {exc}"
            ) from exc

    def open_blob(self, hash_: str) -> tuple[IO[bytes], int]:
        """An open binary file of the blob named ``hash_`` (seekable) and its size in bytes,
        for streaming it without loading it; the caller closes the file. The bytes are not
        verified here: a reader checks them against the hash.

        Raises :class:`~kaon.errors.ArtifactError` when the blob is missing or the store fails.
        """
        if not _HASH.fullmatch(hash_):
            raise ArtifactError(f"not a sha256 hex digest: {hash_!r}")
        path = self._path(hash_)
        try:
            if self._local:
                fd = _local.open_blob_file(self._root, self._parts(hash_))
                file: IO[bytes] = os.fdopen(fd, "rb")  # the caller closes it
                return file, os.fstat(fd).st_size
            size = int(self._fs.size(path))
            opened: IO[bytes] = self._fs.open(path, "rb")
            return opened, size
        except FileNotFoundError:
            raise ArtifactError(
                f"blob {hash_} is missing from the artifact store at {self.blob_path(hash_)}"
            ) from None
        except ArtifactError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"cannot open blob {hash_} at {self.blob_path(hash_)}: {exc}"
            ) from exc

    def iter_blobs(self) -> Iterator[tuple[str, int]]:
        """Yield ``(sha256, size in bytes)`` of every complete blob (temp files are skipped).

        Raises :class:`~kaon.errors.ArtifactError` when listing fails.
        """
        try:
            scan = _scan_local(self._blobs) if self._local else self._scan_remote()
            found = list(scan)
        except Exception as exc:
            raise ArtifactError(f"cannot list blobs under {self.url}: {exc}") from exc
        yield from found

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
            raise ArtifactError(
                f"cannot delete blob {hash_} at {self.blob_path(hash_)}: {exc}"
            ) from exc


_SPACE = re.compile(r"[ \t\n\r]*")


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


def _write_local(root: str, parts: tuple[str, ...], data: bytes) -> None:
    """Write ``data`` at ``root/parts...`` atomically and durably, unless the blob is already
    there (a regular file; anything else there is replaced)."""
    if _local.holds_blob(root, parts):
        return
    directory = _local.own_folder(root, parts[:-1])
    path = os.path.join(directory, parts[-1])
    temp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
    try:
        with open(temp, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

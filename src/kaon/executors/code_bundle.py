"""A step's code as a content-addressed bundle, for executors whose workers do not share the
engine's disk (Ray).

A task request names its code by an absolute path (``config["file"]``, and ``base_dir`` for the
step types that read files beside it). On a cluster that path means nothing: the worker gets
the *bundle* instead, the file and the text files beside it (exactly what ``kaon push`` sends,
see :mod:`kaon.service.bundle`), named by the hash of their content. The worker writes the
bundle once into ``<cache>/<digest>/`` and runs the request with its paths pointing there, so
the module is loaded under a name derived from a content-addressed path
(:mod:`kaon.steptypes.codeload`): two versions of a workflow never share a module on a worker,
and an unchanged version is fetched once per node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from kaon.errors import DefinitionError
from kaon.executors.base import TaskRequest
from kaon.service.bundle import bundle_digest, collect_bundle

DIGEST_CHARS = 24
_PATH_KEYS = ("file", "base_dir")


@dataclass(frozen=True, slots=True)
class CodeBundle:
    """The files of one workflow version's folder; ``digest`` names them by content."""

    digest: str
    folder: str  # where the engine read them (kept to rewrite paths, never read by workers)
    files: Mapping[str, bytes]


class BundleCache:
    """The engine side: the bundle of a request's code, re-read only when a file changed.

    Thread-safe (but see :meth:`turn`). :meth:`for_request` returns None for a request that
    names no file.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_folder: dict[str, tuple[tuple[tuple[str, int, int], ...], CodeBundle]] = {}
        self._turn: dict[str, CodeBundle] | None = None

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Within this block, a folder is looked at once (the requests of one engine turn
        share it: a fan-out does not list the folder once per item). Nests; for one thread at
        a time (the caller serialises its turns)."""
        if self._turn is not None:
            yield
            return
        self._turn = {}
        try:
            yield
        finally:
            self._turn = None

    def for_request(self, request: TaskRequest) -> CodeBundle | None:
        """The bundle holding ``request``'s ``file`` (else the folder its ``base_dir`` names:
        a shell step's), or None when it names neither.

        Raises :class:`~kaon.errors.DefinitionError` when the folder cannot be bundled
        (unreadable file, too large).
        """
        file = request.config.get("file")
        base = request.config.get("base_dir")
        if isinstance(file, str) and os.path.isabs(file):
            folder = os.path.dirname(file)
        elif isinstance(base, str) and os.path.isabs(base):
            folder, file = base, None
        else:
            return None
        turn = self._turn
        if turn is not None and folder in turn:
            return turn[folder]
        bundle = self._read(file, folder)
        if turn is not None:
            turn[folder] = bundle
        return bundle

    def _read(self, file: str | None, folder: str) -> CodeBundle:
        stamp = _folder_stamp(folder)
        with self._lock:
            cached = self._by_folder.get(folder)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        bundle = read_bundle(file) if file is not None else read_folder_bundle(folder)
        with self._lock:
            self._by_folder[folder] = (stamp, bundle)
        return bundle


def _folder_stamp(folder: str) -> tuple[tuple[str, int, int], ...]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return ()
    stamp = []
    for entry in entries:
        try:
            info = entry.stat()
        except OSError:
            continue
        stamp.append((entry.name, info.st_mtime_ns, info.st_size))
    return tuple(stamp)


def read_bundle(file: str) -> CodeBundle:
    """The bundle of the folder holding ``file``: it and the text files beside it."""
    path = Path(file)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        from kaon.errors import Location, Problem

        raise DefinitionError(Problem(f"cannot read it: {exc}", Location(file))) from None
    siblings = collect_bundle(path)
    digest = bundle_digest(path.name, source, siblings)[:DIGEST_CHARS]
    files = {name: text.encode("utf-8", "surrogatepass") for name, text in siblings.items()}
    files[path.name] = source.encode("utf-8", "surrogatepass")
    return CodeBundle(digest, str(path.parent), files)


def read_folder_bundle(folder: str) -> CodeBundle:
    """The bundle of ``folder`` named by no file of it (a shell step's ``base_dir``): the
    text files a push would carry from it."""
    files = collect_bundle(Path(folder) / ".kaon-folder")  # a hidden name: no file's
    digest = bundle_digest("", "", files)[:DIGEST_CHARS]
    encoded = {name: text.encode("utf-8", "surrogatepass") for name, text in files.items()}
    return CodeBundle(digest, folder, encoded)


def bundle_root() -> str:
    """Where a worker keeps bundles (``KAON_BUNDLE_CACHE``, else a folder in the temp dir)."""
    return os.environ.get("KAON_BUNDLE_CACHE") or os.path.join(
        tempfile.gettempdir(), "kaon-bundles"
    )


def materialize(digest: str, files: Mapping[str, bytes], root: str | None = None) -> str:
    """Write ``files`` into ``<root>/<digest>/`` unless already there; the folder.

    Atomic: the files go to a private folder first, which is renamed into place, so a
    concurrent worker on the same node sees all of the bundle or none of it.
    """
    root = root or bundle_root()
    folder = os.path.join(root, digest)
    if os.path.isdir(folder):
        return folder
    os.makedirs(root, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=f".partial-{digest}-", dir=root)
    for name, data in files.items():
        with open(os.path.join(partial, name), "wb") as handle:
            handle.write(data)
    try:
        os.rename(partial, folder)
    except OSError:  # another worker won the race: its copy is the same content
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
    return folder


def is_materialized(digest: str, root: str | None = None) -> bool:
    """Whether ``<root>/<digest>/`` already holds the bundle on this node."""
    return os.path.isdir(os.path.join(root or bundle_root(), digest))


def localize(request: TaskRequest, original_folder: str, folder: str) -> TaskRequest:
    """``request`` with its paths under ``original_folder`` pointing into ``folder``."""
    config = dict(request.config)
    for key in _PATH_KEYS:
        value = config.get(key)
        if not isinstance(value, str) or not os.path.isabs(value):
            continue
        if value == original_folder:
            config[key] = folder
        elif os.path.dirname(value) == original_folder:
            config[key] = os.path.join(folder, os.path.basename(value))
    return dataclasses.replace(request, config=config)

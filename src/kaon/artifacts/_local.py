"""A local artifact store's blob files, opened as regular files inside the store only.

Every step of a sandboxed server may write to a local artifact store (it is mounted
read-write so that workers can store outputs), so a step can put anything at a blob's path: a
symbolic link to the server's run-token key or state database, a link to a folder, a FIFO.
The server, outside the sandbox, reads those paths (to serve ``GET /artifacts/{hash}/blob``,
to decide a ``when``, to compare runs). So a read never follows a symbolic link below the
store's root, at any depth, and takes only a regular file (a FIFO or a device would block
it or never end); a write replaces whatever is at the path unless it is a regular file.
Content is not trusted either: readers check it against its hash (see
:meth:`~kaon.artifacts.fsspec_store.FsspecArtifactStore.read_bytes`).

Where the platform cannot open a path relative to a folder without following links (no
``dir_fd`` or ``O_NOFOLLOW``: Windows), the path is opened plainly.
"""

from __future__ import annotations

import errno
import os
import stat

from kaon.errors import ArtifactError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
SAFE = bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd
_REFUSED = (errno.ELOOP, errno.ENOTDIR, errno.ENXIO)  # a link, a link to a folder, a socket


def open_blob_file(root: str, parts: tuple[str, ...]) -> int:
    """A read-only descriptor of the regular file ``root/parts...``, no symbolic link below
    ``root`` followed. Raises FileNotFoundError when nothing is there, ArtifactError when
    something other than a regular file is (naming the path), OSError otherwise."""
    path = os.path.join(root, *parts)
    if not SAFE:
        return os.open(path, os.O_RDONLY | _CLOEXEC)
    folder = _folder(root, parts[:-1], path)
    try:
        # Non-blocking: opening a FIFO for reading would wait for a writer.
        flags = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC
        fd = os.open(parts[-1], flags, dir_fd=folder)
    except OSError as error:
        if error.errno in _REFUSED:
            raise _refused(path) from None
        raise
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _refused(path)
    os.set_blocking(fd, True)
    return fd


def holds_blob(root: str, parts: tuple[str, ...]) -> bool:
    """True when the regular file ``root/parts...`` is there, reached without a link: a blob
    to keep (anything else at its path is replaced by a write)."""
    try:
        os.close(open_blob_file(root, parts))
    except (OSError, ArtifactError):
        return False
    return True


def refresh_blob(root: str, parts: tuple[str, ...]) -> bool:
    """True when the blob ``root/parts...`` is there (see :func:`holds_blob`), its
    modification time then set to now: a write of content the store holds already is
    skipped, and the blob is as young as if it had been written. Garbage collection keeps
    blobs younger than ``--min-age`` because a step's output is written before its record
    is committed; an old blob no record references any more (its runs deleted) that a
    running step writes again must not look old then, or gc deletes it under the step."""
    if not SAFE:
        path = os.path.join(root, *parts)
        try:
            os.utime(path)
        except OSError:
            return False
        return holds_blob(root, parts)
    try:
        fd = open_blob_file(root, parts)
    except (OSError, ArtifactError):
        return False
    try:
        os.utime(fd)  # the file opened, no link followed: never another file's time
    except OSError:
        return holds_blob(root, parts)  # a filesystem without times: keep what is there
    finally:
        os.close(fd)
    return True


def own_folder(root: str, parts: tuple[str, ...]) -> str:
    """Make the folder ``root/parts...`` to write a blob into, replacing a symbolic link on
    the way by a real folder (a write must not land outside the store); returns its path."""
    path = root
    for part in parts:
        path = os.path.join(path, part)
        if os.path.islink(path):
            os.unlink(path)
        os.makedirs(path, exist_ok=True)
    return path


def remove_blob_file(root: str, parts: tuple[str, ...]) -> None:
    """Delete ``root/parts...`` (a file or a link) without following a link on the way;
    nothing there, or a link on the way: nothing is deleted."""
    if not SAFE:
        os.unlink(os.path.join(root, *parts))
        return
    try:
        folder = _folder(root, parts[:-1], os.path.join(root, *parts))
    except ArtifactError:
        raise FileNotFoundError(os.path.join(root, *parts)) from None
    try:
        os.unlink(parts[-1], dir_fd=folder)
    finally:
        os.close(folder)


def _folder(root: str, parts: tuple[str, ...], path: str) -> int:
    """A descriptor of the folder ``root/parts...``, no link below ``root`` followed."""
    folder = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)  # the operator's: trusted
    try:
        for part in parts:
            inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=folder)
            os.close(folder)
            folder = inner
    except OSError as error:
        os.close(folder)
        if error.errno in _REFUSED:
            raise _refused(path) from None
        raise
    return folder


def _refused(path: str) -> ArtifactError:
    return ArtifactError(
        f"{path} is not a regular file of the artifact store (a symbolic link, or a link to a "
        "folder, FIFO or device, on the way): refused, as a step may have put it there"
    )

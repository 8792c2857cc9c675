"""Scratch folders that step types keep for the life of a process, removed when it ends.

A step type that needs a folder beyond one attempt (the notebook steps' work folders, whose
files the runtime stores after the step returns; the Spark session's warehouse, logs and
local directory) takes it from :func:`scratch_folder`, under the temporary folder
(``TMPDIR``). Such a folder is removed at interpreter exit, and by
:func:`remove_scratch_folders`, which the process executor's worker calls before it leaves
with ``os._exit`` (which skips ``atexit`` handlers): a run leaves no ``kaon-*`` folder behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading

_lock = threading.Lock()
_folders: list[str] = []


def scratch_folder(prefix: str) -> str:
    """A new folder ``<TMPDIR>/<prefix><pid>-<random>``, removed when this process ends."""
    folder = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
    with _lock:
        _folders.append(folder)
    return folder


def remove_scratch_folders() -> None:
    """Remove every folder :func:`scratch_folder` made in this process (what is already gone
    is skipped). Call it after the processes that write there (kernels, a JVM) are stopped."""
    with _lock:
        folders = list(_folders)
        _folders.clear()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(remove_scratch_folders)

"""Artifact stores: where step outputs live, named by the sha256 of their content.

Use :func:`open_artifact_store` to get a store for a URL; it caches one instance per URL (and
storage options) per process, so calling it on every step is cheap.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from kaon.artifacts.base import INLINE_LIMIT, ArtifactStore
from kaon.artifacts.fsspec_store import FsspecArtifactStore

__all__ = ["INLINE_LIMIT", "ArtifactStore", "FsspecArtifactStore", "open_artifact_store"]

S3_ENDPOINT_ENV = "KAON_S3_ENDPOINT_URL"

_cache: dict[tuple[str, str], ArtifactStore] = {}
_cache_lock = threading.Lock()


def _clear_cache_after_fork() -> None:
    # A child process must not share clients (sockets, event loops) with its parent.
    global _cache_lock
    _cache.clear()
    _cache_lock = threading.Lock()


os.register_at_fork(after_in_child=_clear_cache_after_fork)


def _normalize_url(url: str) -> str:
    if "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


def fsspec_options(url: str) -> dict[str, Any]:
    """The fsspec storage options Kaon gives every ``url`` it opens (artifact stores, data
    triggers' paths): for ``s3://`` the endpoint ``$KAON_S3_ENDPOINT_URL`` (MinIO, a local
    S3) when set, and no listings cache (a new object must be seen at once)."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    options: dict[str, Any] = {"use_listings_cache": False}
    endpoint = os.environ.get(S3_ENDPOINT_ENV)
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def open_artifact_store(url: str, **storage_options: Any) -> ArtifactStore:
    """The artifact store at ``url``, one cached instance per URL and options per process.

    ``url`` is a local directory (``/path``, ``file:///path``, or a relative path) or any
    fsspec URL (``s3://bucket/prefix``, ``memory://name``). ``storage_options`` go to fsspec
    (for S3: ``key``, ``secret``, ``endpoint_url``, ``config_kwargs``, ...). For ``s3://``
    URLs the endpoint defaults to ``$KAON_S3_ENDPOINT_URL`` when set. Thread-safe.

    Raises :class:`~kaon.errors.ArtifactError` when the URL cannot be opened (unknown
    protocol, missing fsspec backend such as s3fs).
    """
    url = _normalize_url(url)
    storage_options = {**fsspec_options(url), **storage_options}
    key = (url, repr(sorted(storage_options.items())))
    with _cache_lock:
        store = _cache.get(key)
        if store is None:
            store = FsspecArtifactStore(url, **storage_options)
            _cache[key] = store
        return store

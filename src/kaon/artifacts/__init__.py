"""Artifact stores: where step outputs live, named by the sha256 of their content.

Use :func:`open_artifact_store` to get a store for a URL; it caches one instance per URL (and
storage options) per process, so calling it on every step is cheap.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

from kaon.artifacts.base import INLINE_LIMIT, ArtifactStore
from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.errors import ArtifactConfigurationError

__all__ = ["INLINE_LIMIT", "ArtifactStore", "FsspecArtifactStore", "open_artifact_store"]

S3_ENDPOINT_ENV = "KAON_S3_ENDPOINT_URL"
S3_TIMEOUT_ENV = "KAON_S3_TIMEOUT_S"
S3_TIMEOUT_S = 15.0  # the default of $KAON_S3_TIMEOUT_S
S3_REQUEST_TRIES = 2  # each S3 request, by botocore (s3fs's own retries are turned off)

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
    S3) when set, no listings cache (a new object must be seen at once), and explicit time
    limits (:func:`s3_time_limits`).

    Raises :class:`~kaon.errors.ArtifactConfigurationError` when ``$KAON_S3_TIMEOUT_S`` is
    not a number of seconds."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    options: dict[str, Any] = {"use_listings_cache": False, "config_kwargs": s3_time_limits()}
    endpoint = os.environ.get(S3_ENDPOINT_ENV)
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def s3_time_limits() -> dict[str, Any]:
    """botocore's settings bounding how long an S3 request may hang: ``$KAON_S3_TIMEOUT_S``
    (default 15 s) to connect and to wait for each answer, each request tried
    :data:`S3_REQUEST_TRIES` times (botocore's standard retries, throttling included). A
    store that stops answering (a hung server, a dropped network) fails a call as an
    :class:`~kaon.errors.ArtifactUnavailableError` saying it is not answering within about
    twice the limit, instead of botocore's and s3fs's retries stalling it for minutes.

    Raises :class:`~kaon.errors.ArtifactConfigurationError` for a value that is not a
    number of seconds above 0."""
    text = os.environ.get(S3_TIMEOUT_ENV, "").strip()
    seconds = S3_TIMEOUT_S
    if text:
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if not (0 < seconds < math.inf):
            raise ArtifactConfigurationError(
                f"environment variable {S3_TIMEOUT_ENV} must be a number of seconds above 0, "
                f"not {text!r}"
            )
    return {
        "connect_timeout": seconds,
        "read_timeout": seconds,
        "retries": {"max_attempts": S3_REQUEST_TRIES, "mode": "standard"},
    }


def open_artifact_store(url: str, **storage_options: Any) -> ArtifactStore:
    """The artifact store at ``url``, one cached instance per URL and options per process.

    ``url`` is a local directory (``/path``, ``file:///path``, or a relative path) or any
    fsspec URL (``s3://bucket/prefix``, ``memory://name``). ``storage_options`` go to fsspec
    (for S3: ``key``, ``secret``, ``endpoint_url``, ``config_kwargs``, ...). For ``s3://``
    URLs the endpoint defaults to ``$KAON_S3_ENDPOINT_URL`` when set, and ``config_kwargs``
    to the time limits of :func:`s3_time_limits` (``$KAON_S3_TIMEOUT_S``). Thread-safe.

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

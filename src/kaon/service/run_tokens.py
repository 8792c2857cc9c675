"""Run tokens: short-lived API tokens a step gets, good for its own run and nothing more.

A server gives every step attempt ``KAON_RUN_TOKEN`` (and ``KAON_URL``) in its environment.
The token is ``kaonrun_<run id>.<expiry>.<signature>``: an HMAC-SHA256, under a key only the
server holds (``<home>/run-token.key``, hidden from sandboxed steps), of the run id and the
expiry time. It needs no row in the token table: the server checks the signature and the
expiry, and the principal it stands for is scoped to that run
(:attr:`~kaon.service.auth.Principal.run_scope`): at most ``operator`` on that run, nothing
anywhere else (see :meth:`~kaon.service.auth.Principal.can`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

RUN_TOKEN_PREFIX = "kaonrun_"
DEFAULT_TTL_S = 24 * 3600.0
KEY_FILE = "run-token.key"


class RunTokenError(ValueError):
    """A run token that is malformed, forged or expired."""


class RunTokens:
    """Mints and verifies run tokens under one secret key."""

    def __init__(
        self,
        key: bytes | None = None,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        key_file: Path | None = None,
    ) -> None:
        if key is not None and len(key) < 16:
            raise ValueError("a run token key needs at least 16 bytes")
        if key is None and key_file is None:
            raise ValueError("a run token signer needs a key or a key file")
        self._loaded = key
        self._key_file = key_file
        self._key_lock = threading.Lock()
        self.ttl_s = ttl_s

    @classmethod
    def for_home(cls, home: Path, *, ttl_s: float = DEFAULT_TTL_S) -> RunTokens:
        """The signer whose key is kept in ``home``: read, or created (mode 0600), the first
        time a token is minted or checked, so opening services that never do writes nothing."""
        return cls(ttl_s=ttl_s, key_file=Path(home) / KEY_FILE)

    @property
    def _key(self) -> bytes:
        if self._loaded is None:
            with self._key_lock:  # the engine mints from several threads at once
                if self._loaded is None:
                    assert self._key_file is not None
                    self._loaded = _read_or_create(self._key_file)
        return self._loaded

    def mint(self, run_id: str, *, now: float | None = None) -> str:
        """A token for ``run_id`` valid for :attr:`ttl_s` seconds."""
        expires = int((time.time() if now is None else now) + self.ttl_s)
        body = f"{run_id}.{expires}"
        return f"{RUN_TOKEN_PREFIX}{body}.{self._sign(body)}"

    def verify(self, token: str, *, now: float | None = None) -> str:
        """The run id ``token`` is good for. Raises RunTokenError."""
        if not token.startswith(RUN_TOKEN_PREFIX):
            raise RunTokenError("not a run token")
        body, _, signature = token[len(RUN_TOKEN_PREFIX) :].rpartition(".")
        run_id, _, expires = body.rpartition(".")
        if not run_id or not expires.isdigit():
            raise RunTokenError("malformed run token")
        if not hmac.compare_digest(signature, self._sign(body)):
            raise RunTokenError("run token signature does not match")
        if int(expires) < (time.time() if now is None else now):
            raise RunTokenError("run token expired")
        return run_id

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()


def _read_or_create(path: Path) -> bytes:
    """The key in ``path``, made first if there is none. Never replaces a key: processes
    (the API's, the engine's) that create it at once all end up with the one that was linked
    in place first, so none signs with a key the others do not hold."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        with contextlib.suppress(FileExistsError):  # another signer made it first
            os.link(partial, path)  # the key is complete when it appears
    finally:
        os.unlink(partial)
    return path.read_bytes()

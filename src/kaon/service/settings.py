"""Where Kaon keeps things and which backends it uses, from arguments and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kaon.store import default_store_url

EXECUTORS = ("process", "inline")


@dataclass(frozen=True)
class Settings:
    """Backends and folders. Every field has an environment variable and a CLI option.

    ``home`` (``KAON_HOME``, default ``./.kaon``) holds the embedded SQLite store and the
    local artifact store unless ``db_url`` (``KAON_DB``) or ``artifact_url``
    (``KAON_ARTIFACTS``) say otherwise. ``executor`` (``KAON_EXECUTOR``) is ``process``
    (default: warm worker processes) or ``inline`` (threads in the engine's process).
    ``max_body_bytes`` (``KAON_MAX_BODY_BYTES``) bounds an API request's body (a push may
    send a little over twice as much: its file and its bundle).
    """

    home: Path = field(default_factory=lambda: Path(os.environ.get("KAON_HOME", ".kaon")))
    db_url: str | None = None
    artifact_url: str | None = None
    executor: str = ""
    workers: int | None = None
    max_body_bytes: int = 5_000_000

    @classmethod
    def from_env(
        cls,
        *,
        home: str | None = None,
        db_url: str | None = None,
        artifact_url: str | None = None,
        executor: str | None = None,
        workers: int | None = None,
    ) -> Settings:
        """Settings from explicit values, falling back to the environment, then defaults."""
        env = os.environ
        workers_env = env.get("KAON_WORKERS")
        max_body = env.get("KAON_MAX_BODY_BYTES")
        return cls(
            home=Path(home or env.get("KAON_HOME", ".kaon")),
            db_url=db_url or env.get("KAON_DB") or None,
            artifact_url=artifact_url or env.get("KAON_ARTIFACTS") or None,
            executor=executor or env.get("KAON_EXECUTOR", "process"),
            workers=workers or (int(workers_env) if workers_env else None),
            max_body_bytes=int(max_body) if max_body else 5_000_000,
        )

    @property
    def store_url(self) -> str:
        """The state store URL in force."""
        return self.db_url or default_store_url(self.home)

    @property
    def artifacts_url(self) -> str:
        """The artifact store URL in force."""
        return self.artifact_url or str((self.home / "artifacts").absolute())

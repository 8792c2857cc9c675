"""Where Kaon keeps things and which backends it uses, from arguments and the environment."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kaon.errors import ConfigurationError
from kaon.model.expression_cost import ExpressionBudget
from kaon.store import default_store_url

EXECUTORS = ("process", "inline")


@dataclass(frozen=True)
class Settings:
    """Backends and folders. Every field has an environment variable and a CLI option.

    ``home`` (``KAON_HOME``, default ``./.kaon``) holds the embedded SQLite store and the
    local artifact store unless ``db_url`` (``KAON_DB``) or ``artifact_url``
    (``KAON_ARTIFACTS``) say otherwise. ``executor`` (``KAON_EXECUTOR``) is ``process``
    (default: warm worker processes) or ``inline`` (threads in the engine's process).
    ``sandbox`` (``KAON_SANDBOX``) is ``on``, ``off`` or ``auto`` (on when bubblewrap is
    installed); empty means the command's default: ``auto`` for ``kaon server``, ``off`` for
    ``kaon run`` (see :mod:`kaon.service.sandboxing`).
    ``max_body_bytes`` (``KAON_MAX_BODY_BYTES``) bounds an API request's body (a push may
    send a little over twice as much: its file and its bundle).
    """

    home: Path = field(default_factory=lambda: Path(os.environ.get("KAON_HOME", ".kaon")))
    db_url: str | None = None
    artifact_url: str | None = None
    executor: str = ""
    workers: int | None = None
    sandbox: str = ""
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
        sandbox: str | None = None,
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
            sandbox=(sandbox or env.get("KAON_SANDBOX", "")).lower(),
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


def expression_budget(env: Mapping[str, str] | None = None) -> ExpressionBudget:
    """The cost budget of every expression, from ``KAON_EXPRESSION_TIME_MS`` (estimated
    milliseconds, default 100) and ``KAON_EXPRESSION_MAX_BYTES`` (largest value an expression
    may build, default 16 MiB).

    Raises :class:`ConfigurationError` naming the variable when a value is not a positive
    number.
    """
    env = os.environ if env is None else env
    default = ExpressionBudget()
    time_ms = _positive(env, "KAON_EXPRESSION_TIME_MS", default.time_ms)
    max_bytes = _positive(env, "KAON_EXPRESSION_MAX_BYTES", default.max_bytes)
    return ExpressionBudget(time_ms=time_ms, max_bytes=int(max_bytes))


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > 1e15:
        raise ConfigurationError(f"{name}={text!r:.40}: expected a positive number")
    return value

"""Code fingerprints for a server's engine, made in a sandboxed child, never in its process.

A cacheable step's cache key holds its code's fingerprint (:mod:`kaon.steptypes.fingerprint`),
and fingerprinting a Python (or Spark) step imports its module: the module's top-level code
runs. A server's engine holds what steps must never reach (the state database, the run-token
key, the server's environment), so it does not fingerprint pushed code itself: each step
configuration is fingerprinted once, by ``python -m kaon.service._evaluate`` run as a pushed
file's evaluation is (:func:`kaon.service.push_sandbox.run_child`: an empty environment,
resource limits, a wall-clock timeout, and under the server's step sandbox the folders its
steps see, the engine's working folder as theirs).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from kaon.errors import KaonError
from kaon.service.push_sandbox import SandboxLimits, run_child
from kaon.steptypes.base import CodeFingerprint

REMEMBERED = 10_000  # configurations whose fingerprint failed, remembered per process


class FingerprintError(KaonError):
    """A step's code could not be fingerprinted (its module failed to import, say)."""


class IsolatedFingerprints:
    """A :data:`kaon.engine.memo.Fingerprint` that fingerprints in a sandboxed child.

    The engine's memoizer keeps each configuration's fingerprint; a configuration that could
    not be fingerprinted is remembered here, so a foreach of many items whose step's module
    does not import costs one child, not one per item."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, step_type: str, config: Mapping[str, Any]) -> str | CodeFingerprint:
        """The fingerprint of a step of ``step_type`` with ``config``. Raises
        FingerprintError with what went wrong in the child."""
        key = step_type + "\0" + json.dumps(config, sort_keys=True, default=str)
        with self._lock:
            failed = self._failed.get(key)
        if failed is not None:
            raise FingerprintError(failed)
        try:
            return self._fingerprint(step_type, config)
        except KaonError as exc:
            with self._lock:
                if len(self._failed) >= REMEMBERED:
                    self._failed.clear()
                self._failed[key] = str(exc)
            raise FingerprintError(str(exc)) from None

    def _fingerprint(self, step_type: str, config: Mapping[str, Any]) -> str | CodeFingerprint:
        visible = self.limits.isolation.read_only if self.limits.isolation is not None else ()
        work = {"fingerprint": {"step_type": step_type, "config": dict(config)}}
        answer = run_child(
            work, self.limits, f"step type {step_type}", visible=visible, cwd=os.getcwd()
        )
        found = answer.get("fingerprint")
        if not isinstance(found, dict):
            raise FingerprintError(str(answer.get("error") or "the fingerprint failed"))
        return fingerprint_from_dict(found)


def fingerprint_from_dict(data: Mapping[str, Any]) -> str | CodeFingerprint:
    """What :func:`kaon.service._evaluate.fingerprint_to_dict` made."""
    if "text" in data:
        return str(data["text"])
    return CodeFingerprint(
        digest=str(data["digest"]),
        parts={str(k): str(v) for k, v in dict(data.get("parts") or {}).items()},
        not_covered=tuple(str(p) for p in data.get("not_covered") or ()),
        config=None if data.get("config") is None else str(data["config"]),
        context_reads=tuple(str(f) for f in data.get("context_reads") or ()),
    )

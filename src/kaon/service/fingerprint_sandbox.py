"""Code fingerprints for a server's engine, made in a sandboxed child, never in its process.

A cacheable step's cache key holds its code's fingerprint (:mod:`kaon.steptypes.fingerprint`),
and fingerprinting a Python (or Spark) step imports its module: the module's top-level code
runs. A server's engine holds what steps must never reach (the state database, the run-token
key, the server's environment), so it does not fingerprint pushed code itself: such
configurations are fingerprinted by ``python -m kaon.service._evaluate`` run as a pushed
file's evaluation is (:func:`kaon.service.push_sandbox.run_child`: an empty environment,
resource limits, a wall-clock timeout, and under the server's step sandbox the folders its
steps see, the engine's working folder as theirs).

The child costs the engine's thread a process start (about 0.3 s) and the imports of the
steps' modules, so it is asked once for many: :meth:`IsolatedFingerprints.prepare` takes
every cacheable configuration a run holds when the engine loads it (and the queued tasks of
a turn), and one child fingerprints them all, importing a module shared by several steps
once. Step types whose fingerprint reads files without running them (shell, SQL, notebooks,
R: :attr:`~kaon.steptypes.base.StepType.fingerprint_runs_code` false) are fingerprinted in
the engine's process, as before.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kaon.errors import KaonError
from kaon.service.push_sandbox import SandboxLimits, run_child
from kaon.steptypes.base import CodeFingerprint

REMEMBERED = 10_000  # configurations whose fingerprint is kept per process (then cleared)
RETRY_FAILED_S = 600.0  # a failure (a module that did not import, a timeout) is tried again


class FingerprintError(KaonError):
    """A step's code could not be fingerprinted (its module failed to import, say)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.at = time.monotonic()


class IsolatedFingerprints:
    """A :data:`kaon.engine.memo.Fingerprint` that fingerprints code-running step types in a
    sandboxed child, many configurations per child.

    A configuration that could not be fingerprinted is remembered, so a foreach of many
    items whose step's module does not import costs one child, not one per item."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._known: dict[str, str | CodeFingerprint | FingerprintError] = {}
        self._lock = threading.Lock()

    def __call__(self, step_type: str, config: Mapping[str, Any]) -> str | CodeFingerprint:
        """The fingerprint of a step of ``step_type`` with ``config``. Raises
        FingerprintError with what went wrong in the child."""
        from kaon.steptypes.registry import get_step_type

        kind = get_step_type(step_type)
        if not kind.fingerprint_runs_code:
            return kind.fingerprint(config)  # reads files: nothing of the user's runs here
        key = _key(step_type, config)
        found = self._get(key)
        if found is None:
            self._fingerprint_all({key: (step_type, config)})
            with self._lock:
                found = self._known.get(key)
        if found is None:  # forgotten at once (more than REMEMBERED at a time)
            raise FingerprintError("the fingerprint was not kept")
        if isinstance(found, FingerprintError):
            raise FingerprintError(str(found))  # a new one: a kept one would grow its traceback
        return found

    def prepare(self, configs: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Fingerprint every configuration of ``configs`` not fingerprinted yet whose step type
        runs code, all in one child. Never raises: a failure is remembered and raised by
        :meth:`__call__` for its configuration."""
        from kaon.steptypes.registry import get_step_type

        wanted: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for step_type, config in configs:
            try:
                if not get_step_type(step_type).fingerprint_runs_code:
                    continue
            except KaonError:
                continue  # an unknown step type: its attempt says so
            key = _key(step_type, config)
            if key not in wanted and self._get(key) is None:
                wanted[key] = (step_type, config)
        if wanted:
            self._fingerprint_all(wanted)

    def _get(self, key: str) -> str | CodeFingerprint | FingerprintError | None:
        """What is known of ``key``; a failure only for :data:`RETRY_FAILED_S` (a timeout on
        a busy machine must not leave the step uncached for the life of the server)."""
        with self._lock:
            found = self._known.get(key)
            if isinstance(found, FingerprintError) and (
                time.monotonic() - found.at > RETRY_FAILED_S
            ):
                del self._known[key]
                return None
        return found

    def _fingerprint_all(self, wanted: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
        visible = self.limits.isolation.read_only if self.limits.isolation is not None else ()
        work = {
            "fingerprints": [
                {"step_type": step_type, "config": dict(config)}
                for step_type, config in wanted.values()
            ]
        }
        kinds = sorted({step_type for step_type, _config in wanted.values()})
        found: dict[str, str | CodeFingerprint | FingerprintError] = {}
        try:
            answer = run_child(
                work, self.limits, f"step type {', '.join(kinds)}", visible=visible, cwd=os.getcwd()
            )
            answers = answer.get("fingerprints")
            if not isinstance(answers, list) or len(answers) != len(wanted):
                raise FingerprintError(str(answer.get("error") or "the fingerprint failed"))
        except KaonError as exc:  # the child failed as a whole (a timeout, a crash)
            failure = FingerprintError(str(exc))
            found = dict.fromkeys(wanted, failure)
        else:
            for key, one in zip(wanted, answers, strict=True):
                data = one.get("fingerprint") if isinstance(one, dict) else None
                if isinstance(data, dict):
                    found[key] = fingerprint_from_dict(data)
                else:
                    error = one.get("error") if isinstance(one, dict) else None
                    found[key] = FingerprintError(str(error or "the fingerprint failed"))
        with self._lock:
            if len(self._known) + len(found) > REMEMBERED:
                self._known.clear()
            self._known.update(found)


def _key(step_type: str, config: Mapping[str, Any]) -> str:
    return step_type + "\0" + json.dumps(config, sort_keys=True, default=str)


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

"""The step type interface: how a task's code runs.

A step type validates its configuration before anything runs (so errors carry file and line)
and runs one attempt inside a worker, given the resolved input values and a
:class:`~kaon.steptypes.context.StepContext` for logs, progress and metrics. It returns the
step's value: a mapping becomes named outputs, anything else the single ``return`` output.
Failures are raised: :class:`~kaon.errors.StepError` (or any exception) for the user's code,
:class:`~kaon.errors.SystemFailure` for the platform.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kaon.errors import Location, Problem
from kaon.steptypes.context import StepContext
from kaon.steptypes.requirements import Requirement


@dataclass(frozen=True, slots=True)
class CodeFingerprint:
    """A step's code fingerprint with what it is made of, for ``kaon explain``.

    ``parts`` maps each covered piece of project code or data (``constant pipeline.py:FACTOR``,
    ``function pipeline.py:train``) to a short digest; ``not_covered`` lists what the step
    reads but could not be fingerprinted (``pipeline.py:LOG (Logger)``); ``config`` is the
    digest of the configuration as the cache sees it (None: the whole configuration).
    """

    digest: str
    parts: dict[str, str] = field(default_factory=dict)
    not_covered: tuple[str, ...] = ()
    config: str | None = None
    # The run facts the code reads from its context rather than from its inputs
    # (``kaon.context().params``, ``.item``, ``.index``, ``.iteration``: see
    # :data:`CONTEXT_FACTS`): their values join the cache key, as inputs do.
    context_reads: tuple[str, ...] = ()


CONTEXT_FACTS = ("params", "item", "index", "iteration")

# The environment variables that carry those facts to a command (shell, container, R).
_FACT_VARIABLES = {f"KAON_{fact.upper()}".encode(): fact for fact in CONTEXT_FACTS}


def facts_named(*texts: str | bytes) -> tuple[str, ...]:
    """The run facts whose environment variable (``KAON_PARAMS``, ``KAON_ITEM``,
    ``KAON_INDEX``, ``KAON_ITERATION``) one of ``texts`` (a command, a script) names."""
    found = {
        fact
        for text in texts
        for name, fact in _FACT_VARIABLES.items()
        if name in (text.encode() if isinstance(text, str) else text)
    }
    return tuple(fact for fact in CONTEXT_FACTS if fact in found)


def _canonical(config: Mapping[str, Any]) -> bytes:
    return json.dumps(config, sort_keys=True, default=str, separators=(",", ":")).encode()


def config_digest(config: Mapping[str, Any]) -> str:
    """The sha256 of a step's configuration as canonical JSON: the default fingerprint of a
    step whose code is its configuration, and the part of a richer fingerprint that stands
    for the configuration (a shell step's, beside the scripts it runs)."""
    return hashlib.sha256(_canonical(config)).hexdigest()


class StepType(ABC):
    """A way of running a task step (``python``, ``shell``, or a plugin's)."""

    name: ClassVar[str]
    # Whether :meth:`fingerprint` runs the step's own code (imports its module): a server
    # then fingerprints in a sandboxed child (kaon.service.fingerprint_sandbox), never in the
    # engine's process. Reading files (a script, a query, a notebook) does not run them.
    fingerprint_runs_code: ClassVar[bool] = False

    @abstractmethod
    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Every problem with ``config``, each located at ``location`` plus the field."""

    def requirements(self, config: Mapping[str, Any]) -> tuple[Requirement, ...]:
        """The packages a step with ``config`` imports that may not be installed (they come
        with one of Kaon's extras). Checked when a definition is validated. Default: none."""
        return ()

    def resources(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """What one attempt of a step with ``config`` needs of a host when the step itself
        asks for nothing (no ``resources`` on the step), as normalized step resources
        (``cpus``, ``memory`` in bytes; see :mod:`kaon.model.resources`). Executors that place
        attempts by what they need (``ray``) use it. Default: nothing said (one CPU)."""
        return {}

    def load_code(self, config: Mapping[str, Any]) -> None:
        """Load the code a step with ``config`` runs into this process, before its inputs
        are read: an input of a class the step's own files define then loads as that class,
        not as a copy of it. Raises what loading the code raises. Default: nothing to load."""
        return None

    @abstractmethod
    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Run one attempt and return the step's value."""

    def fingerprint(self, config: Mapping[str, Any]) -> str | CodeFingerprint:
        """A hash of the code this step runs, for memoization (called in the engine's process).

        The default covers the configuration, which is right for step types whose code *is*
        their configuration (a shell command, a SQL query), and the *content* of the file a
        ``file`` key names (a SQL file, a notebook, an R script), not where it lives, with
        the project files it reads as code (a notebook's or script's imports of modules
        beside it, an R script's ``source()``: :mod:`kaon.steptypes._deps`): editing any of
        them is a miss, a copy of the folder (a pushed bundle) is a hit. Raises any error
        when the code cannot be read; the engine then executes the step without caching it.
        """
        file = config.get("file")
        if not isinstance(file, str) or not file:
            digest = config_digest(config)
            reads = self.context_reads(_canonical(config))  # inline code (an R step's)
            return CodeFingerprint(digest=digest, context_reads=reads) if reads else digest
        from kaon.steptypes._deps import code_dependencies
        from kaon.steptypes._protocol import resolve_file

        path = resolve_file(config, "file")
        with open(path, "rb") as handle:
            text = handle.read()
        content = hashlib.sha256(text).hexdigest()
        texts = [text]
        name = file if not os.path.isabs(file) else os.path.basename(file)
        portable = {k: v for k, v in config.items() if k not in ("file", "base_dir")}
        portable["file"] = {"name": name, "sha256": content}
        parts = {f"file {name}": content[:16]}
        # What the file reads as code (a notebook's `import helper`, an R `source()`), by
        # its path from the file's folder: a copy of the folder is still a hit.
        folder = os.path.dirname(os.path.realpath(path))
        for dependency in code_dependencies(path):
            with open(dependency, "rb") as handle:
                texts.append(handle.read())
            read = hashlib.sha256(texts[-1]).hexdigest()
            relative = os.path.relpath(dependency, folder)
            portable[f"reads {relative}"] = read
            parts[f"file {relative}"] = read[:16]
        canonical = json.dumps(portable, sort_keys=True, default=str, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        reads = self.context_reads(*texts)
        return CodeFingerprint(
            digest=digest, parts=parts, config=f"sha256:{digest}", context_reads=reads
        )

    # What this step type's code calls to read a run fact besides its environment variable
    # (an R script's ``kaon_params()``), each with the fact it reads.
    fact_readers: ClassVar[Mapping[bytes, str]] = {}

    def context_reads(self, *texts: bytes) -> tuple[str, ...]:
        """The run facts (:data:`CONTEXT_FACTS`) the step's code ``texts`` (its file and the
        files it reads as code, or its inline code) read: by environment variable
        (``KAON_PARAMS``, ``KAON_ITEM``...: a notebook's ``os.environ``, an R script's
        ``Sys.getenv``) or by a :attr:`fact_readers` call. Their values join the step's cache
        key, as a Python step's ``kaon.context().params`` does. A text that merely names one
        (a comment) costs a miss when that fact changes, never a stale hit."""
        found = set(facts_named(*texts))
        found.update(
            fact for reader, fact in self.fact_readers.items() if any(reader in t for t in texts)
        )
        return tuple(fact for fact in CONTEXT_FACTS if fact in found)

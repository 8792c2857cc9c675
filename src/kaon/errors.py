"""Kaon's one error tree.

Every error Kaon raises on purpose is a :class:`KaonError`. Three families matter to callers:

* :class:`DefinitionError` -- the user's workflow, parameter, expression or argument is wrong.
  It carries every :class:`Problem` found, each with a :class:`Location` (file, line, field).
* :class:`StepError` -- the user's step code failed. The original type, message and
  traceback are kept as text so they survive crossing a process boundary.
* :class:`SystemFailure` -- Kaon's own machinery failed (a worker died, the store is
  unreachable). Retried by the platform budget, never counted as a user error.

The API maps these to HTTP codes in one place; the CLI maps them to exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a definition something is: file, 1-based line, and a dotted field path."""

    file: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(self.field)
        return ": ".join(parts) if parts else "<unknown location>"

    def with_field(self, field: str) -> Location:
        """Return a copy that points at ``field`` (appended to the current field path)."""
        joined = f"{self.field}.{field}" if self.field else field
        return Location(self.file, self.line, joined)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition, and where it is."""

    message: str
    location: Location = Location()

    def __str__(self) -> str:
        if self.location == Location():  # a command-line argument, an API field: no file
            return self.message
        return f"{self.location}: {self.message}"


class KaonError(Exception):
    """Base of every error Kaon raises on purpose."""


class DefinitionError(KaonError):
    """A workflow definition, parameter, expression or argument is invalid.

    ``problems`` lists every problem found, not just the first.
    """

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        if len(self.problems) == 1:
            # One problem is the message itself: its first line carries the cause.
            super().__init__(str(self.problems[0]))
            return
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problems found:\n{lines}")


class ExpressionError(DefinitionError):
    """An expression is malformed, too large, or failed to evaluate."""


class ParameterError(DefinitionError):
    """A run parameter is missing, unknown, or of the wrong type."""


class NotFoundError(KaonError):
    """A run, step, workflow or artifact does not exist."""


class InvalidActionError(KaonError):
    """An action is not allowed in the current state (restarting a running run, say)."""


class IllegalTransitionError(InvalidActionError):
    """A status transition that the state machine does not allow."""


class ConfigurationError(KaonError):
    """Kaon itself is misconfigured (bad store URL, unknown executor)."""


class StoreNotFoundError(ConfigurationError):
    """A command that only reads was pointed at a place that holds no Kaon store."""


class ForeignDatabaseError(ConfigurationError):
    """The database named as Kaon's store is someone else's: Kaon refuses to touch it."""


class StoreError(KaonError):
    """The state store failed or holds something Kaon cannot read."""


class SchemaVersionError(StoreError):
    """The state database has a schema this version of Kaon does not know."""


class LeaseError(StoreError):
    """Another engine holds the lease on a run."""


class FencingError(LeaseError):
    """An engine wrote to runs whose lease it no longer holds: another engine took them over
    (a newer lease epoch). Nothing of the refused write was committed. ``run_ids`` names the
    runs lost; the engine must stop driving them."""

    def __init__(self, message: str, run_ids: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.run_ids = run_ids


class StoreUnavailableError(StoreError):
    """The store could not be reached or was busy (a dropped connection, a locked database,
    a server restart): a transient failure, worth retrying. Nothing was committed, except
    for :class:`WriteOutcomeUnknownError`."""


class WriteOutcomeUnknownError(StoreUnavailableError):
    """A write's connection was lost after its commit was sent (a database restarted or a
    network cut while it committed): the write may have been committed or not. Sending it
    again could record its rows twice; read the store to learn what it holds instead."""


class SystemFailure(KaonError):
    """Kaon's own machinery failed while running a step (not the user's code)."""


class ArtifactError(KaonError):
    """An artifact could not be stored, found or verified."""


class ArtifactUnavailableError(ArtifactError):
    """The artifact store failed to answer (a dropped connection, an outage, a refused or
    throttled request): a transient failure, worth retrying (a missing or corrupt blob is
    another ArtifactError)."""


class ArtifactAccessError(ArtifactError):
    """The artifact store refuses Kaon until its configuration is fixed (no credentials,
    credentials it does not know or that may not do this, a bucket that does not exist):
    a permanent failure, never retried. The message names the store and what to fix."""


class ArtifactConfigurationError(ArtifactError, ConfigurationError):
    """The artifact store's URL cannot be opened (unknown protocol, missing driver)."""


class SerializationError(ArtifactError):
    """No serializer accepts a value, or a blob cannot be decoded."""


class CorruptArtifactError(ArtifactError):
    """A blob's content does not match its recorded hash."""


class StepError(KaonError):
    """User step code failed. The original error survives as text.

    ``error_type`` is the qualified name of the original exception class (``ValueError``,
    ``mypkg.errors.DataError``), ``traceback`` the formatted traceback of the original.
    ``outputs`` are values worth keeping from the failed attempt (a partially executed
    notebook, say): they are stored and recorded with the failed step, never passed on.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        traceback: str = "",
        *,
        outputs: dict[str, object] | None = None,
    ) -> None:
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        self.outputs = dict(outputs or {})
        super().__init__(f"{error_type}: {message}")


class StepTimeout(KaonError):
    """A step attempt ran longer than its timeout."""


class AuthenticationError(KaonError):
    """No token, or a token that is unknown, expired or revoked (HTTP 401)."""


class PermissionDeniedError(KaonError):
    """The principal's role or groups do not allow the action (HTTP 403)."""

"""Typed views and requests of the workflow registry, tokens, signals, events and actions.

Like :mod:`kaon.service.views`, these pydantic models are the HTTP API's request and response
bodies and the CLI's ``--json`` output. Requests forbid unknown fields (a typo is a 422, not
a silently ignored field). Times are Unix seconds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from kaon.model.owner_groups import GROUP_PATTERN, MAX_GROUP_LENGTH, group_problem
from kaon.model.properties import audited_changes
from kaon.model.specs import SIGNAL_NAME_PATTERN
from kaon.service.auth import ROLES
from kaon.service.limits import MAX_VERSION
from kaon.service.safety import readable, readable_text
from kaon.service.views import RunView
from kaon.store.base import EventRecord, SignalRecord
from kaon.store.registry import (
    AUDIT_TOKEN_ID,
    AuditRecord,
    TokenRecord,
    VersionRecord,
    WorkflowRecord,
)

"""The largest version number (and any count the API takes): PostgreSQL's INTEGER."""


def _group(group: str) -> str:
    # checked by the one rule the service applies (said in its words, not a regex's)
    if (why := group_problem(group)) is not None:
        raise ValueError(why)
    return group


Group = Annotated[
    str,
    AfterValidator(_group),
    Field(
        json_schema_extra={"minLength": 1, "maxLength": MAX_GROUP_LENGTH, "pattern": GROUP_PATTERN}
    ),
]
"""A workflow's owner group or a token's group (:mod:`kaon.model.owner_groups`)."""


class Request(BaseModel):
    """Base of request bodies: unknown fields and loosely typed values (``true`` for a
    number, ``"3"`` for an integer) are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PushRequest(Request):
    """A workflow file to validate and register (``kaon push FILE``)."""

    source: str = Field(max_length=5_000_000, description="The file's text.")
    file_name: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(py|ya?ml)$",
        description="The file's name (no folders): its suffix says the format (.py, .yaml, .yml).",
    )
    workflow: str | None = Field(
        default=None, max_length=200, description="Which workflow of the file (when several)."
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "The files beside it that its steps use (sibling Python modules, SQL files, "
            "notebooks), by bare file name; stored with it."
        ),
    )
    activate: bool = Field(default=True, description="Make a new version the active one.")
    owner_group: Group | None = Field(
        default=None, description="Owner group of a workflow pushed first time."
    )


class MatchRequest(Request):
    """A workflow file to look up among the registered versions (``kaon run FILE --url``)."""

    source: str = Field(max_length=5_000_000, description="The file's text.")
    file_name: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(py|ya?ml)$",
        description="The file's name (no folders).",
    )
    workflow: str | None = Field(
        default=None, max_length=200, description="Which workflow of the file (when several)."
    )
    files: dict[str, str] = Field(
        default_factory=dict, description="The files beside it, as a push sends them."
    )


class VersionMatch(BaseModel):
    """Which registered version holds exactly the content of a file (and its bundle)."""

    workflow: str
    version: int | None = Field(
        default=None, description="The version with this content; null: none (a push adds one)."
    )
    active_version: int | None = None


class PushResult(BaseModel):
    """What a push did: the version holding this content, and whether it is new."""

    workflow: str
    version: int
    definition_hash: str
    created: bool = Field(description="False when identical content was already a version.")
    active_version: int | None = None


class WorkflowView(BaseModel):
    """A registered workflow."""

    name: str
    active_version: int | None = None
    latest_version: int | None = None
    owner_group: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    updated_at: float


class VersionView(BaseModel):
    """One immutable version of a workflow (``source`` only when asked for one version)."""

    workflow: str
    version: int
    definition_hash: str
    source_name: str
    created_at: float
    created_by: str
    active: bool = False
    source: str | None = None


class ActivateRequest(Request):
    """Which version to make active."""

    version: int = Field(ge=1, le=MAX_VERSION)


class WorkflowPatch(Request):
    """Changes to a workflow that are not its graph (no new version).

    ``properties`` are merged into the current ones; a key set to ``null`` is removed.
    """

    properties: dict[str, Any] = Field(default_factory=dict)
    owner_group: Group | None = None


class StartRunRequest(Request):
    """Start a run of a registered workflow."""

    workflow: str = Field(min_length=1, max_length=200)
    version: int | None = Field(
        default=None, ge=1, le=MAX_VERSION, description="Default: the active version."
    )
    params: dict[str, Any] = Field(default_factory=dict)
    from_strings: bool = Field(
        default=False, description="Parameters are strings to parse by their declared types."
    )
    labels: dict[str, str] = Field(default_factory=dict)
    no_cache: bool = Field(default=False, description="No cache lookups (entries are recorded).")
    force: list[str] = Field(
        default_factory=list, max_length=1000, description="Steps that execute unlooked."
    )
    breakpoints: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Steps the run pauses at: STEP (before it) or STEP:after.",
    )
    priority: int | None = Field(
        default=None,
        ge=-1000,
        le=1000,
        description="Order among runs competing for slots (default: the workflow's).",
    )


class ContinueRequest(Request):
    """Release a paused run's steps held at breakpoints (one, or all), with changed params."""

    path: str | None = Field(default=None, min_length=1, max_length=1000)
    params: dict[str, Any] = Field(default_factory=dict)
    from_strings: bool = Field(
        default=False, description="Parameters are strings to parse by their declared types."
    )


class KillRequest(Request):
    """Kill a run, or only one running step of it."""

    step: str | None = Field(default=None, min_length=1, max_length=1000)


class RestartRequest(Request):
    """Restart a finished run from its failed steps, or from a step."""

    from_step: str | None = Field(default=None, min_length=1, max_length=1000)
    force: bool = Field(default=False, description="The reset steps execute unlooked.")
    only: bool = Field(
        default=False,
        description="Only from_step and what depends on it run again, not other failed steps.",
    )


class SkipRequest(Request):
    """Skip a step (optionally giving the output downstream steps receive)."""

    path: str = Field(min_length=1, max_length=1000)
    output: Any = None
    has_output: bool = False


class SkipResult(BaseModel):
    """How a skip was applied: ``command`` (sent to the engine holding the run), ``queued``
    (the run is active but no engine drives it: the next one applies it) or ``recorded`` (the
    run was finished: restart it to go on)."""

    how: str
    run: RunView


class SignalRequest(Request):
    """An external event with parameters."""

    name: str = Field(min_length=1, max_length=200, pattern=SIGNAL_NAME_PATTERN)
    params: dict[str, Any] = Field(default_factory=dict)
    dedupe_key: str | None = Field(default=None, max_length=500)


class SignalView(BaseModel):
    """A stored signal."""

    id: int
    name: str
    params: dict[str, Any]
    at: float
    by: str
    source_run_id: str | None = None
    dedupe_key: str | None = None


class TokenRequest(Request):
    """Create an API token."""

    name: str = Field(min_length=1, max_length=200)
    role: str = Field(json_schema_extra={"enum": list(ROLES)})
    groups: list[Group] = Field(default_factory=list, max_length=100)
    expires_in: float | None = Field(
        default=None, gt=0, le=10 * 365 * 86400, description="Seconds until it stops working."
    )

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        # said as the local store says it (not as the regular expression it was checked by)
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r:.40}; choose one of {', '.join(ROLES)}")
        return role


class RotateRequest(Request):
    """Rotate a token: a new secret, optionally a new lifetime."""

    expires_in: float | None = Field(
        default=None, gt=0, le=10 * 365 * 86400, description="Seconds until it stops working."
    )


class TokenView(BaseModel):
    """A token's public description; ``token`` (the secret) only in a creation's response."""

    id: str
    name: str
    role: str
    groups: list[str]
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None
    expires_at: float | None = None
    token: str | None = None


class AuditView(BaseModel):
    """One entry of the audit trail."""

    id: int
    at: float
    actor: str
    token_id: str | None = Field(
        default=None,
        description=(
            "The id of the token that acted (token names are not unique); null for the "
            "server, the local CLI, a run token or an anonymous caller."
        ),
    )
    action: str
    target: str
    data: dict[str, Any] = Field(default_factory=dict)


class EventView(BaseModel):
    """An engine event (the ``data:`` of each Server-Sent Event of ``GET /events``)."""

    id: int
    run_id: str
    step_run_id: int | None = None
    kind: str
    at: float
    data: dict[str, Any] = Field(default_factory=dict)


class ProblemView(BaseModel):
    """One problem of a definition or request, and where it is."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: str = Field(description="The error's type, e.g. NotFoundError.")
    message: str
    problems: list[ProblemView] = Field(default_factory=list)


def workflow_view(record: WorkflowRecord, latest: int | None = None) -> WorkflowView:
    """The view of a workflow record."""
    return WorkflowView(
        name=readable_text(record.name),
        active_version=record.active_version,
        latest_version=latest,
        owner_group=None if record.owner_group is None else readable_text(record.owner_group),
        properties=readable(record.properties),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def version_view(
    record: VersionRecord, active: int | None, *, with_source: bool = False
) -> VersionView:
    """The view of a version record."""
    return VersionView(
        workflow=record.workflow,
        version=record.version,
        definition_hash=record.definition_hash,
        source_name=record.source_name,
        created_at=record.created_at,
        created_by=record.created_by,
        active=record.version == active,
        source=record.source if with_source else None,
    )


def token_view(record: TokenRecord, secret: str | None = None) -> TokenView:
    """The view of a token record (with the secret right after creation)."""
    return TokenView(
        id=record.id,
        name=readable_text(record.name),
        role=record.role,
        groups=[readable_text(g) for g in record.groups],
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
        expires_at=record.expires_at,
        token=secret,
    )


def audit_view(record: AuditRecord) -> AuditView:
    """The view of an audit record. A ``workflow.update`` written before property values
    were left out of the trail is shown as one written now (:func:`audited_changes`)."""
    data = dict(record.data)
    token_id = data.pop(AUDIT_TOKEN_ID, None)
    changed = data.get("properties")
    if record.action == "workflow.update" and isinstance(changed, dict):
        data = {**data, "properties": audited_changes(changed)}
    return AuditView(
        id=record.id or 0,
        at=record.at,
        actor=readable_text(record.actor),
        token_id=readable_text(token_id) if isinstance(token_id, str) else None,
        action=readable_text(record.action),
        target=readable_text(record.target),
        data=readable(data),
    )


def signal_view(record: SignalRecord) -> SignalView:
    """The view of a signal record."""
    return SignalView(
        id=record.id or 0,
        name=readable_text(record.name),
        params=readable(record.params),
        at=record.at,
        by=readable_text(record.by),
        source_run_id=record.source_run_id,
        dedupe_key=None if record.dedupe_key is None else readable_text(record.dedupe_key),
    )


def event_view(record: EventRecord) -> EventView:
    """The view of an event record."""
    return EventView(
        id=record.id or 0,
        run_id=record.run_id,
        step_run_id=record.step_run_id,
        kind=record.kind,
        at=record.at,
        data=readable(record.data),
    )

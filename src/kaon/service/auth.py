"""Access control: API tokens, roles per workflow owner group, and the audit trail.

A token is a long random string shown once at creation; only its SHA-256 is stored. A token
carries one role and a set of groups:

* ``viewer`` reads workflows, runs, logs, events and metrics: every workflow's with a token
  without groups, else those of its groups and of no group (lists show every name);
* ``operator`` also triggers, kills, restarts, skips and resumes runs, and sends signals;
* ``owner`` also pushes workflows, activates versions and changes workflow properties;
* ``admin`` does anything anywhere, including creating tokens.

Acting on a workflow (anything above ``viewer``) needs the role *and* membership of the
workflow's owner group, unless the principal is an admin, holds the group ``*``, or the
workflow has no owner group.

A *run token* (:mod:`kaon.service.run_tokens`), the one a server gives each step, stands for
a principal scoped to one run: it may act as an ``operator`` on that run only, and nothing
else (no other run, no workflow, no token, no admin route).

A token may expire (``expires_at``) and be rotated (a new secret for the same token; the old
one stops working at once). Refused attempts (401 and 403) are written to the audit trail as
``auth.refused``, at most :data:`REFUSALS_PER_WINDOW` per :data:`REFUSAL_WINDOW_S` and actor
(the actor's entry after a quiet spell says how many were left out), so the audit cannot be
flooded, and a flood of anonymous attempts does not hide a token's.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kaon.errors import (
    AuthenticationError,
    InvalidActionError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
)
from kaon.model.owner_groups import check_groups
from kaon.service.run_tokens import RUN_TOKEN_PREFIX, RunTokenError, RunTokens
from kaon.service.safety import check_value
from kaon.store.registry import AUDIT_TOKEN_ID, AuditRecord, RegistryStore, TokenRecord

ROLES: tuple[str, ...] = ("viewer", "operator", "owner", "admin")
"""Roles, weakest first: each role may do what the ones before it may."""

ANY_GROUP = "*"
TOKEN_PREFIX = "kaon_"
TOUCH_EVERY_S = 60.0  # how stale a token's last_used_at may get
STORE_DOWN_TRUST_S = 300.0
"""While the store cannot be read, a token this process verified (read from the store,
valid) this long ago at most is still taken for what it was, by the callers that ask for it
(``/metrics``: :meth:`AuthService.authenticate`'s ``store_down``). The bound on how long a
token revoked elsewhere (another replica) keeps working during an outage: its last
verification came before the revocation. Once a check finds a token revoked, expired or
unknown, it is not trusted again."""
REFUSAL_WINDOW_S = 60.0
REFUSALS_PER_WINDOW = 20


def role_rank(role: str) -> int:
    """The strength of ``role`` (0 for viewer). Raises ValueError for an unknown role."""
    try:
        return ROLES.index(role)
    except ValueError:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name, role and groups."""

    name: str
    role: str
    groups: tuple[str, ...] = ()
    token_id: str | None = None
    run_scope: str | None = None  # a run token: good for this run only

    @property
    def is_admin(self) -> bool:
        """True for the admin role."""
        return self.role == "admin"

    def has_role(self, role: str) -> bool:
        """True when this principal's role is at least ``role``."""
        return role_rank(self.role) >= role_rank(role)

    def can(self, role: str, owner_group: str | None = None, *, run_id: str | None = None) -> bool:
        """True when this principal may act with ``role`` on something owned by
        ``owner_group`` (``None``: owned by no group), that is ``run_id`` when one is given.

        Reading (``viewer``) a group's runs, logs, artifacts, events and sources needs
        membership too, except for a token without groups: an organisation-wide reader.

        A run-scoped principal may act only on its run (``run_id`` must name it), with a role
        up to ``operator``."""
        if self.run_scope is not None:
            return run_id == self.run_scope and role_rank(role) <= role_rank("operator")
        if self.is_admin:
            return True
        if not self.has_role(role):
            return False
        if owner_group is None or owner_group in self.groups or ANY_GROUP in self.groups:
            return True
        return role == "viewer" and not self.groups

    @property
    def reads_everything(self) -> bool:
        """True when no owner group limits what this principal reads. Never for a run token:
        it has no groups, yet reads its own run only."""
        if self.run_scope is not None:
            return False
        return self.is_admin or ANY_GROUP in self.groups or not self.groups


LOCAL_PRINCIPAL = Principal(name="local", role="admin", groups=(ANY_GROUP,))
"""Who acts when the CLI works on a local store (no server, no token)."""

Actor = Principal | str
"""Who an audit entry is by: a principal, or a name that is no token (``server``, ``local``,
``anonymous``)."""

TOKEN_ID = AUDIT_TOKEN_ID
"""The key of an audit entry's data holding the id of the token that acted."""


def actor_of(actor: Actor) -> tuple[str, str | None]:
    """The name an audit entry shows for ``actor``, and its token's id (None: no token)."""
    if isinstance(actor, Principal):
        return actor.name, actor.token_id
    return actor, None


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 (tokens are 256-bit random strings)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(at: float) -> str:
    """``at`` (Unix seconds) as a UTC time a person reads: ``2026-12-05 14:03:07Z``."""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def _expiry(now: float, expires_in: float | None) -> float | None:
    if expires_in is None:
        return None
    if not expires_in > 0:
        raise ValueError("expires_in must be a positive number of seconds")
    return now + expires_in


class AuthService:
    """Creates and checks tokens, enforces roles, and writes the audit trail."""

    def __init__(
        self,
        registry: RegistryStore,
        *,
        cache_s: float = 2.0,
        run_tokens: RunTokens | None = None,
    ) -> None:
        self.registry = registry
        self.cache_s = cache_s
        self.run_tokens = run_tokens
        # hash -> (principal, valid until): a hot API does not read the token on every call.
        self._cache: dict[str, tuple[Principal, float]] = {}
        # hash -> (principal, when read from the store, expires at): the last verification of
        # each token, for the routes that serve a known caller with the store down.
        self._verified: dict[str, tuple[Principal, float, float | None]] = {}
        self._lock = threading.Lock()
        # actor -> its refusal window: when it began, attempts in it, attempts left out
        self._refusals: dict[str, list[float]] = {}

    def create_token(
        self,
        name: str,
        role: str,
        groups: Iterable[str] = (),
        *,
        by: Actor = "local",
        expires_in: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """Create a token; returns its record and the secret (shown once, never stored).
        ``expires_in`` (seconds) makes it stop working after that long.

        Raises ValueError (an unknown role, an empty name, a non-positive ``expires_in``),
        DefinitionError (a group that breaks the owner group rule, naming ``groups[i]``)."""
        record, secret = _new_token(name, role, groups, expires_in)
        self.registry.add_token(record)
        self.audit(by, "token.create", f"token:{record.id}", _granted(record))
        return record, secret

    def create_first_admin(self, name: str) -> str | None:
        """An admin token of every group called ``name`` when no token exists yet (a new
        server's bootstrap; one, whatever the replicas starting at once): its secret, or
        None when a token exists."""
        record, secret = _new_token(name, "admin", ["*"], None)
        if not self.registry.add_first_token(record):
            return None
        self.audit("server", "token.create", f"token:{record.id}", _granted(record))
        return secret

    def rotate(
        self, token_id: str, *, by: Actor, expires_in: float | None = None, extend: bool = True
    ) -> tuple[TokenRecord, str]:
        """A new secret for a live token (same name, role and groups); the old secret stops
        working at once. The token keeps its expiry unless ``expires_in`` gives a new one;
        without ``extend`` (a token rotating itself, not an admin) the new one may not be
        later than the old. An expired token keeps no expiry worth keeping: it needs
        ``expires_in`` (which only an admin may give it, as it makes the token live longer).
        Returns the record and the new secret. Raises NotFoundError, PermissionDeniedError,
        InvalidActionError (an expired token rotated without ``expires_in``)."""
        current = self.registry.token(token_id)
        if current is None or current.revoked_at is not None:
            raise NotFoundError(f"no live token {token_id!r}")
        now = time.time()
        expires_at = current.expires_at
        if expires_in is None and expires_at is not None and now >= expires_at:
            raise InvalidActionError(
                f"token {token_id!r} expired at {_utc(expires_at)}: a rotation keeping its "
                "expiry would give a dead secret; an admin rotates it with a new expires_in "
                f"(kaon token rotate {token_id} --expires-in 30d)"
            )
        if expires_in is not None:
            expires_at = _expiry(now, expires_in)
            assert expires_at is not None
            if not extend and current.expires_at is not None and expires_at > current.expires_at:
                raise PermissionDeniedError(
                    f"only an admin may extend the lifetime of token {token_id!r} (it expires "
                    f"at {current.expires_at:.0f}); rotate it without expires_in to keep it"
                )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        if not self.registry.rotate_token(token_id, hash_token(secret), expires_at):
            raise NotFoundError(f"no live token {token_id!r}")
        with self._lock:
            self._cache.clear()
            self._verified.clear()  # the old secret: not trusted through an outage either
        self.audit(by, "token.rotate", f"token:{token_id}", {"expires_at": expires_at})
        found = self.registry.token_by_hash(hash_token(secret))
        assert found is not None
        return found, secret

    def refused(self, actor: Actor, status: int, request: str, reason: str) -> None:
        """Audit a refused attempt (``auth.refused``), rate-limited per actor: beyond
        :data:`REFUSALS_PER_WINDOW` of one actor in a window, its attempts are only counted
        (its next entry says how many). Each actor (each token, by its id) has its own
        window, so a flood of anonymous attempts never keeps a token's refusals out of the
        audit trail, nor one token's those of another of the same name."""
        name, token_id = actor_of(actor)
        if token_id is None:
            actor = key = name[:200]
        else:
            key = f"token:{token_id}"
        now = time.time()
        with self._lock:
            window = self._refusals.get(key)
            if window is None or now - window[0] >= REFUSAL_WINDOW_S:
                suppressed = int(window[2]) if window is not None else 0
                if len(self._refusals) >= 10_000:
                    self._forget_ended_windows(now)
                window = self._refusals[key] = [now, 0, suppressed]
            window[1] += 1
            if window[1] > REFUSALS_PER_WINDOW:
                window[2] += 1
                return
            suppressed, window[2] = int(window[2]), 0
        data: dict[str, Any] = {"status": status, "reason": reason[:300]}
        if suppressed:
            data["not_recorded_before"] = suppressed
        self.audit(actor, "auth.refused", request[:300], data)

    def _forget_ended_windows(self, now: float) -> None:
        """Drop the refusal windows that ended (the lock held): memory stays bounded by the
        actors refused within a window, at the cost of the counts left out of those."""
        for actor, window in list(self._refusals.items()):
            if now - window[0] >= REFUSAL_WINDOW_S:
                del self._refusals[actor]

    def authenticate(self, secret: str | None, *, store_down: bool = False) -> Principal:
        """The principal a presented token stands for. Raises AuthenticationError, and
        StoreUnavailableError when the store cannot be read; with ``store_down``, a token
        this process verified at most :data:`STORE_DOWN_TRUST_S` ago (and not expired
        since) is its principal then (what ``/metrics`` asks, to be scraped through an
        outage)."""
        if not secret:
            raise AuthenticationError("missing API token: send 'Authorization: Bearer <token>'")
        if secret.startswith(RUN_TOKEN_PREFIX):
            return self._run_principal(secret)
        hashed = hash_token(secret)
        now = time.time()
        cached = self._cache.get(hashed)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            record = self.registry.token_by_hash(hashed)
        except StoreUnavailableError:
            trusted = self._verified.get(hashed) if store_down else None
            if trusted is None or now - trusted[1] >= STORE_DOWN_TRUST_S:
                raise
            if trusted[2] is not None and now >= trusted[2]:
                raise
            return trusted[0]
        try:
            principal = self._check_record(record, now)
        except AuthenticationError:
            with self._lock:
                self._verified.pop(hashed, None)
            raise
        until = now + self.cache_s
        if record is not None and record.expires_at is not None:
            until = min(until, record.expires_at)
        with self._lock:
            self._cache[hashed] = (principal, until)
            self._verified[hashed] = (principal, now, record.expires_at if record else None)
        return principal

    def _check_record(self, record: TokenRecord | None, now: float) -> Principal:
        """The principal of a token read from the store; AuthenticationError when it is
        unknown (None), revoked or expired. Records its use (at most every minute)."""
        if record is None:
            raise AuthenticationError("unknown API token")
        if record.revoked_at is not None:
            raise AuthenticationError(f"API token {record.name!r} was revoked")
        if record.expires_at is not None and now >= record.expires_at:
            raise AuthenticationError(f"API token {record.name!r} expired")
        if record.last_used_at is None or now - record.last_used_at > TOUCH_EVERY_S:
            self.registry.touch_token(record.id, now)
        return Principal(record.name, record.role, tuple(record.groups), record.id)

    def _run_principal(self, secret: str) -> Principal:
        if self.run_tokens is None:
            raise AuthenticationError("run tokens are not accepted here")
        try:
            run_id = self.run_tokens.verify(secret)
        except RunTokenError as exc:
            raise AuthenticationError(f"invalid run token: {exc}") from None
        return Principal(f"run:{run_id}", "operator", (), None, run_scope=run_id)

    def revoke(self, token_id: str, *, by: Actor) -> None:
        """Revoke a token. A revoked token stays as it was (when it was revoked, and by whom
        in the audit trail). Raises NotFoundError."""
        now = time.time()
        revoked_at = self.registry.revoke_token(token_id, now)
        if revoked_at is None:
            raise NotFoundError(f"no token {token_id!r}")
        with self._lock:
            self._cache.clear()
            self._verified.clear()
        if revoked_at == now:
            self.audit(by, "token.revoke", f"token:{token_id}")

    def check(
        self,
        principal: Principal,
        role: str,
        *,
        owner_group: str | None = None,
        run_id: str | None = None,
        giving: bool = False,
    ) -> None:
        """Raise PermissionDeniedError unless ``principal`` may act with ``role`` on
        something owned by ``owner_group`` (the run ``run_id``, when the action is on one).
        ``giving``: ``owner_group`` is the group a workflow would be given to (a push of a
        new workflow, a change of owner), not the one that owns it, and the refusal says so."""
        if principal.can(role, owner_group, run_id=run_id):
            return
        if principal.run_scope is not None:
            raise PermissionDeniedError(
                f"{principal.name} is a run token: it may act on run {principal.run_scope} "
                "only, as an operator at most"
            )
        if not principal.has_role(role):
            raise PermissionDeniedError(
                f"{principal.name} has role {principal.role}; this needs {role}"
            )
        whose = "to which the workflow would be given" if giving else "which owns this workflow"
        raise PermissionDeniedError(f"{principal.name} is not in group {owner_group!r}, {whose}")

    def audit(
        self, actor: Actor, action: str, target: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record that ``actor`` did ``action`` to ``target``. An entry made by a token
        records its id under ``data["token_id"]`` (:data:`TOKEN_ID`) beside its name: token
        names are not unique, two live tokens called ``ci`` are two actors."""
        name, token_id = actor_of(actor)
        entry = dict(data or {})
        entry.pop(TOKEN_ID, None)  # only the acting token's own id is ever recorded here
        if token_id is not None:
            entry[TOKEN_ID] = token_id
        self.registry.add_audit(
            AuditRecord(at=time.time(), actor=name, action=action, target=target, data=entry)
        )

    def has_tokens(self) -> bool:
        """True when at least one token was ever created."""
        return self.registry.count_tokens() > 0


def _granted(record: TokenRecord) -> dict[str, Any]:
    """What a new token may do, for its ``token.create`` audit entry: its name, role, the
    groups it acts in and its expiry."""
    return {
        "name": record.name,
        "role": record.role,
        "groups": list(record.groups),
        "expires_at": record.expires_at,
    }


def _new_token(
    name: str, role: str, groups: Iterable[str], expires_in: float | None
) -> tuple[TokenRecord, str]:
    """A new token's record and its secret. Raises ValueError (an unknown role, an empty
    name, a non-positive ``expires_in``), DefinitionError (a group that breaks the owner
    group rule, :mod:`kaon.model.owner_groups`)."""
    role_rank(role)
    if not name.strip():
        raise ValueError("a token needs a non-empty name")
    groups = list(groups)
    check_value({"name": name, "groups": groups})
    check_groups(groups)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    record = TokenRecord(
        id=uuid.uuid4().hex[:12],
        name=name,
        hashed=hash_token(secret),
        role=role,
        groups=sorted(set(groups)),
        created_at=now,
        expires_at=_expiry(now, expires_in),
    )
    return record, secret

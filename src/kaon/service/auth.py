"""Access control: API tokens, roles per workflow owner group, and the audit trail.

A token is a long random string shown once at creation; only its SHA-256 is stored. A token
carries one role and a set of groups:

* ``viewer`` reads everything (workflows, runs, logs, events, metrics);
* ``operator`` also triggers, kills, restarts, skips and resumes runs, and sends signals;
* ``owner`` also pushes workflows, activates versions and changes workflow properties;
* ``admin`` does anything anywhere, including creating tokens.

Acting on a workflow (anything above ``viewer``) needs the role *and* membership of the
workflow's owner group, unless the principal is an admin, holds the group ``*``, or the
workflow has no owner group.
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

from kaon.errors import KaonError, NotFoundError
from kaon.service.safety import check_value
from kaon.store.registry import AuditRecord, RegistryStore, TokenRecord

ROLES: tuple[str, ...] = ("viewer", "operator", "owner", "admin")
"""Roles, weakest first: each role may do what the ones before it may."""

ANY_GROUP = "*"
TOKEN_PREFIX = "kaon_"
TOUCH_EVERY_S = 60.0  # how stale a token's last_used_at may get


class AuthenticationError(KaonError):
    """No token, or a token that is unknown or revoked (HTTP 401)."""


class PermissionDeniedError(KaonError):
    """The principal's role or groups do not allow the action (HTTP 403)."""


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

    @property
    def is_admin(self) -> bool:
        """True for the admin role."""
        return self.role == "admin"

    def has_role(self, role: str) -> bool:
        """True when this principal's role is at least ``role``."""
        return role_rank(self.role) >= role_rank(role)

    def can(self, role: str, owner_group: str | None = None) -> bool:
        """True when this principal may act with ``role`` on something owned by
        ``owner_group`` (``None``: owned by no group)."""
        if self.is_admin:
            return True
        if not self.has_role(role):
            return False
        if role == "viewer" or owner_group is None:
            return True
        return owner_group in self.groups or ANY_GROUP in self.groups


LOCAL_PRINCIPAL = Principal(name="local", role="admin", groups=(ANY_GROUP,))
"""Who acts when the CLI works on a local store (no server, no token)."""


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 (tokens are 256-bit random strings)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AuthService:
    """Creates and checks tokens, enforces roles, and writes the audit trail."""

    def __init__(self, registry: RegistryStore, *, cache_s: float = 2.0) -> None:
        self.registry = registry
        self.cache_s = cache_s
        # hash -> (principal, valid until): a hot API does not read the token on every call.
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def create_token(
        self, name: str, role: str, groups: Iterable[str] = (), *, by: str = "local"
    ) -> tuple[TokenRecord, str]:
        """Create a token; returns its record and the secret (shown once, never stored).

        Raises ValueError (an unknown role or an empty name)."""
        role_rank(role)
        if not name.strip():
            raise ValueError("a token needs a non-empty name")
        groups = list(groups)
        check_value({"name": name, "groups": groups})
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            id=uuid.uuid4().hex[:12],
            name=name,
            hashed=hash_token(secret),
            role=role,
            groups=sorted(set(groups)),
            created_at=time.time(),
        )
        self.registry.add_token(record)
        self.audit(by, "token.create", f"token:{record.id}", {"name": name, "role": role})
        return record, secret

    def authenticate(self, secret: str | None) -> Principal:
        """The principal a presented token stands for. Raises AuthenticationError."""
        if not secret:
            raise AuthenticationError("missing API token: send 'Authorization: Bearer <token>'")
        hashed = hash_token(secret)
        now = time.time()
        cached = self._cache.get(hashed)
        if cached is not None and cached[1] > now:
            return cached[0]
        record = self.registry.token_by_hash(hashed)
        if record is None:
            raise AuthenticationError("unknown API token")
        if record.revoked_at is not None:
            raise AuthenticationError(f"API token {record.name!r} was revoked")
        if record.last_used_at is None or now - record.last_used_at > TOUCH_EVERY_S:
            self.registry.touch_token(record.id, now)
        principal = Principal(record.name, record.role, tuple(record.groups), record.id)
        with self._lock:
            self._cache[hashed] = (principal, now + self.cache_s)
        return principal

    def revoke(self, token_id: str, *, by: str) -> None:
        """Revoke a token. Raises NotFoundError."""
        if not self.registry.revoke_token(token_id, time.time()):
            raise NotFoundError(f"no token {token_id!r}")
        with self._lock:
            self._cache.clear()
        self.audit(by, "token.revoke", f"token:{token_id}")

    def check(self, principal: Principal, role: str, *, owner_group: str | None = None) -> None:
        """Raise PermissionDeniedError unless ``principal`` may act with ``role`` on
        something owned by ``owner_group``."""
        if principal.can(role, owner_group):
            return
        if not principal.has_role(role):
            raise PermissionDeniedError(
                f"{principal.name} has role {principal.role}; this needs {role}"
            )
        raise PermissionDeniedError(
            f"{principal.name} is not in group {owner_group!r}, which owns this workflow"
        )

    def audit(
        self, actor: str, action: str, target: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record that ``actor`` did ``action`` to ``target``."""
        self.registry.add_audit(
            AuditRecord(at=time.time(), actor=actor, action=action, target=target, data=data or {})
        )

    def has_tokens(self) -> bool:
        """True when at least one token was ever created."""
        return self.registry.count_tokens() > 0

"""Pools and tag permits, as an administrator manages them (``kaon pool``, ``kaon permit``,
``/pools``, ``/permits``) and as everyone sees them (with what is used now).

See :mod:`kaon.model.tenancy` for what steps ask and :mod:`kaon.engine.tenancy` for how the
engine admits attempts by them. Changes need the ``admin`` role and are audited.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from kaon.errors import DefinitionError, Location, Problem
from kaon.model.tenancy import valid_name
from kaon.service.auth import AuthService, Principal
from kaon.store.base import LimitUsage, PermitRecord, PoolRecord, StateStore

MAX_SLOTS = 1_000_000


class PoolRequest(BaseModel):
    """A pool's limits: slots, and optional resource quotas (None: no quota)."""

    model_config = {"extra": "forbid"}

    slots: int = Field(ge=0, le=MAX_SLOTS, description="Attempts running at once.")
    cpus: float | None = Field(default=None, ge=0, le=1e9, description="CPUs asked, together.")
    memory: int | None = Field(default=None, ge=0, le=2**62, description="Bytes, together.")
    gpus: float | None = Field(default=None, ge=0, le=1e9, description="GPUs asked, together.")


class PermitRequest(BaseModel):
    """A tag permit's limit."""

    model_config = {"extra": "forbid"}

    max: int = Field(ge=0, le=MAX_SLOTS, description="Attempts carrying the tag at once.")


class PoolView(PoolRequest):
    """A pool, its limits and what running attempts use of it now (every engine's)."""

    name: str
    used: int = 0
    used_cpus: float = 0.0
    used_memory: int = 0
    used_gpus: float = 0.0
    by_group: dict[str, int] = Field(default_factory=dict)  # slots used per owner group


class PermitView(PermitRequest):
    """A tag permit and how many attempts carrying the tag run now."""

    tag: str
    used: int = 0


def _check(name: str, what: str) -> None:
    if not valid_name(name):
        raise DefinitionError(
            Problem(
                f"{what} must be a name of 1-63 letters, digits, '_', '.', ':' or '-' "
                f"(starting with a letter or digit), got {name!r:.60}",
                Location(field=what),
            )
        )


class PoolAdmin:
    """Reads and changes pools and permits (the same for the CLI and the API)."""

    def __init__(self, store: StateStore, auth: AuthService | None) -> None:
        self.store = store
        self.auth = auth

    def _admin(
        self, principal: Principal, action: str, target: str, data: dict[str, object]
    ) -> str:
        if self.auth is not None:
            self.auth.check(principal, "admin")
            self.auth.audit(principal, action, target, data)
        return principal.name

    def _usage(self) -> dict[tuple[str, str], LimitUsage]:
        return {(u.kind, u.name): u for u in self.store.hold_usage()}

    def pools(self) -> list[PoolView]:
        """Every pool with what is used now."""
        usage = self._usage()
        return [_pool_view(p, usage.get(("pool", p.name))) for p in self.store.pools()]

    def permits(self) -> list[PermitView]:
        """Every tag permit with what is used now."""
        usage = self._usage()
        found = []
        for p in self.store.permits():
            used = usage.get(("tag", p.tag))
            found.append(PermitView(tag=p.tag, max=p.max, used=used.count if used else 0))
        return found

    def set_pool(self, name: str, request: PoolRequest, principal: Principal) -> PoolView:
        """Create or change a pool (admin). Raises DefinitionError for a bad name."""
        _check(name, "pool")
        self._admin(principal, "pool.set", f"pool:{name}", request.model_dump())
        record = PoolRecord(name, updated_at=time.time(), **request.model_dump())
        self.store.set_pool(record)
        return next(p for p in self.pools() if p.name == name)

    def delete_pool(self, name: str, principal: Principal) -> None:
        """Delete a pool (admin). Raises NotFoundError."""
        self._admin(principal, "pool.delete", f"pool:{name}", {})
        self.store.delete_pool(name)

    def set_permit(self, tag: str, request: PermitRequest, principal: Principal) -> PermitView:
        """Create or change a tag permit (admin). Raises DefinitionError for a bad tag."""
        _check(tag, "tag")
        self._admin(principal, "permit.set", f"permit:{tag}", request.model_dump())
        self.store.set_permit(PermitRecord(tag, request.max, time.time()))
        return next(p for p in self.permits() if p.tag == tag)

    def delete_permit(self, tag: str, principal: Principal) -> None:
        """Delete a tag permit (admin). Raises NotFoundError."""
        self._admin(principal, "permit.delete", f"permit:{tag}", {})
        self.store.delete_permit(tag)


def _pool_view(pool: PoolRecord, used: LimitUsage | None) -> PoolView:
    return PoolView(
        name=pool.name,
        slots=pool.slots,
        cpus=pool.cpus,
        memory=pool.memory,
        gpus=pool.gpus,
        used=used.count if used else 0,
        used_cpus=used.cpus if used else 0.0,
        used_memory=used.memory if used else 0,
        used_gpus=used.gpus if used else 0.0,
        by_group=dict(used.by_group) if used else {},
    )

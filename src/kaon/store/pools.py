"""SQL of pools, tag permits and holds (see :mod:`kaon.store.schema_pools`).

Functions over an open connection, called by :class:`kaon.store.sql.SQLStore` inside its own
transactions. :func:`claim` is where limits hold across engines: it locks the limit rows it
counts against (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time),
counts the live holds, and inserts the holds of each claim that fits, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kaon.errors import NotFoundError
from kaon.store import schema as t
from kaon.store import schema_pools as p
from kaon.store.base import HoldClaim, LimitUsage, PermitRecord, PoolRecord

_EPSILON = 1e-9


def pools(conn: Connection) -> list[PoolRecord]:
    """Every pool, by name."""
    rows = conn.execute(sa.select(p.pools).order_by(p.pools.c.name))
    return [PoolRecord(**row._asdict()) for row in rows]


def permits(conn: Connection) -> list[PermitRecord]:
    """Every permit, by tag."""
    rows = conn.execute(sa.select(p.permits).order_by(p.permits.c.tag))
    return [PermitRecord(**row._asdict()) for row in rows]


def put(conn: Connection, table: sa.Table, key: str, values: dict[str, Any]) -> None:
    """Insert or replace the row of ``table`` whose key column ``key`` is ``values[key]``."""
    column = table.c[key]
    found = conn.execute(sa.select(column).where(column == values[key])).first()
    if found is None:
        conn.execute(sa.insert(table).values(**values))
    else:
        conn.execute(sa.update(table).where(column == values[key]).values(**values))


def delete(conn: Connection, kind: str, name: str) -> None:
    """Delete a pool (``kind`` "pool") or permit ("tag"); NotFoundError when there is none.

    Its holds stay until their attempts end (the write recording an end deletes them):
    they are attempts still running, and a pool or permit made again under the name counts
    them (deleting them let a re-created pool of 1 slot run its old attempts and new ones)."""
    table, column = (p.pools, p.pools.c.name) if kind == "pool" else (p.permits, p.permits.c.tag)
    if conn.execute(sa.delete(table).where(column == name)).rowcount != 1:
        what = "pool" if kind == "pool" else "permit for tag"
        raise NotFoundError(f"no {what} {name!r}")


def usage(
    conn: Connection, now: sa.ColumnElement[float], limits: Collection[tuple[str, str]] = ()
) -> dict[tuple[str, str], LimitUsage]:
    """Live holds (their run's lease not lapsed) per ``(kind, name)``, of ``limits`` only
    when given."""
    h = p.holds.c
    stmt = (
        sa.select(
            h.kind,
            h.name,
            h.grp,
            sa.func.count(),
            sa.func.sum(h.cpus),
            sa.func.sum(h.memory),
            sa.func.sum(h.gpus),
        )
        .join(t.runs, t.runs.c.id == h.run_id)
        .where(t.runs.c.lease_until > now)
        .group_by(h.kind, h.name, h.grp)
    )
    if limits:
        names = sorted({name for _kind, name in limits})
        stmt = stmt.where(h.name.in_(names))
    found: dict[tuple[str, str], LimitUsage] = {}
    for kind, name, group, count, cpus, memory, gpus in conn.execute(stmt):
        entry = found.setdefault((kind, name), LimitUsage(kind, name))
        entry.count += int(count)
        entry.cpus += float(cpus or 0.0)
        entry.memory += int(memory or 0)
        entry.gpus += float(gpus or 0.0)
        entry.by_group[group] = entry.by_group.get(group, 0) + int(count)
    return found


def pool_load(
    conn: Connection, now: sa.ColumnElement[float], other_than: str | None
) -> dict[tuple[str, str], int]:
    """Live pool holds per ``(pool, owner group)``; of runs leased by engines other than
    ``other_than`` when given."""
    h = p.holds.c
    runs = t.runs.c
    stmt = (
        sa.select(h.name, h.grp, sa.func.count())
        .join(t.runs, runs.id == h.run_id)
        .where(h.kind == "pool", runs.lease_until > now)
        .group_by(h.name, h.grp)
    )
    if other_than is not None:
        stmt = stmt.where(runs.owner != other_than)
    return {(name, group): int(count) for name, group, count in conn.execute(stmt)}


def _fits(claim: HoldClaim, pool: PoolRecord | None, used: LimitUsage) -> bool:
    if pool is None:
        return True
    if used.count + 1 > pool.slots:
        return False
    for quota, taken, asked in (
        (pool.cpus, used.cpus, claim.cpus),
        (None if pool.memory is None else float(pool.memory), float(used.memory), claim.memory),
        (pool.gpus, used.gpus, claim.gpus),
    ):
        if quota is not None and asked and taken + asked > quota + _EPSILON:
            return False
    return True


def claim(
    conn: Connection,
    now: sa.ColumnElement[float],
    at: float,
    owner: str,
    claims: Sequence[HoldClaim],
    *,
    lock: bool,
    limit: int | None = None,
) -> list[bool]:
    """Grant each claim that fits, in order, at most ``limit`` (see
    :meth:`StateStore.claim_holds`)."""
    pool_names = sorted({c.pool for c in claims})
    tag_names = sorted({tag for c in claims for tag in c.tags})
    pool_rows = sa.select(p.pools).where(p.pools.c.name.in_(pool_names)).order_by(p.pools.c.name)
    permit_rows = (
        sa.select(p.permits).where(p.permits.c.tag.in_(tag_names)).order_by(p.permits.c.tag)
    )
    if lock:  # the same order in every engine: no deadlock between two claimers
        pool_rows, permit_rows = pool_rows.with_for_update(), permit_rows.with_for_update()
    limits = {row.name: PoolRecord(**row._asdict()) for row in conn.execute(pool_rows)}
    allowed = {row.tag: int(row.max) for row in conn.execute(permit_rows)}
    room = len(claims) if limit is None else limit
    if not limits and not allowed:
        return [i < room for i in range(len(claims))]
    counted = [("pool", n) for n in limits] + [("tag", n) for n in allowed]
    used = usage(conn, now, counted)
    granted: list[bool] = []
    rows: list[dict[str, Any]] = []
    for c in claims:
        if room <= 0:  # the caller has no room to start more: hold nothing for them
            granted.append(False)
            continue
        pool = limits.get(c.pool)
        pool_used = used.setdefault(("pool", c.pool), LimitUsage("pool", c.pool))
        tags = [tag for tag in c.tags if tag in allowed]
        tag_used = [used.setdefault(("tag", tag), LimitUsage("tag", tag)) for tag in tags]
        ok = _fits(c, pool, pool_used) and all(u.count + 1 <= allowed[u.name] for u in tag_used)
        granted.append(ok)
        if not ok:
            continue
        room -= 1
        taken = ([("pool", c.pool, pool_used)] if pool is not None else []) + [
            ("tag", u.name, u) for u in tag_used
        ]
        for kind, name, entry in taken:
            entry.count += 1
            entry.cpus += c.cpus
            entry.memory += c.memory
            entry.gpus += c.gpus
            entry.by_group[c.group] = entry.by_group.get(c.group, 0) + 1
            rows.append(
                {
                    "run_id": c.run_id,
                    "step_path": c.step_path,
                    "attempt": c.attempt,
                    "kind": kind,
                    "name": name,
                    "grp": c.group,
                    "cpus": c.cpus,
                    "memory": c.memory,
                    "gpus": c.gpus,
                    "owner": owner,
                    "created_at": at,
                }
            )
    if rows:
        conn.execute(sa.insert(p.holds), rows)
    return granted


def release(conn: Connection, run_id: str, keep: Collection[tuple[str, int]]) -> None:
    """Delete the holds of ``run_id`` but those of the attempts in ``keep``."""
    h = p.holds.c
    stmt = sa.delete(p.holds).where(h.run_id == run_id)
    kept = list(keep)
    if kept:
        stmt = stmt.where(sa.not_(sa.tuple_(h.step_path, h.attempt).in_(kept)))
    conn.execute(stmt)


RELEASE_ONE = sa.delete(p.holds).where(
    p.holds.c.run_id == sa.bindparam("h_run"),
    p.holds.c.step_path == sa.bindparam("h_path"),
    p.holds.c.attempt == sa.bindparam("h_attempt"),
)
"""Deletes the holds of one attempt: part of the write that records its end."""

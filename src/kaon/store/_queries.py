"""Every statement of the state store's own reads and writes, by key, in SQLAlchemy Core.

A key is a tuple: the statement's name, then what shapes it (which optional filters a read
has, the columns an update sets), never the values, which are bound parameters. The same key
gives the same statement on every database: :class:`~kaon.store.sql.SQLStore` executes the
construct through SQLAlchemy on PostgreSQL, and on a SQLite file runs its text compiled
ahead of time (:func:`catalogue`, shipped as ``_sqlite_statements.py``) on ``sqlite3``, so
that a local store does not import SQLAlchemy at all (see :mod:`kaon.store._lite`).

Values that vary are ``bindparam``s named in the key's documentation; ``LIKE`` patterns are
escaped by the caller (:func:`kaon.store._lite.like_pattern`; a text filter's two patterns by
:func:`kaon.store._lite.text_patterns`); list parameters (``IN``) are expanding.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from itertools import product
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from kaon.model.status import RUN_ACTIVE, RUN_TERMINAL, StepStatus
from kaon.store import schema as t
from kaon.store import schema_pools as p
from kaon.store import schema_registry as reg
from kaon.store import schema_triggers as tt
from kaon.store._lite import IDEMPOTENT, REPLACED, Key, Statement
from kaon.store._rows import json_text
from kaon.store.base import LOCAL_ORIGIN, STEP_RUN_RESET

_BUILDERS: dict[str, Callable[..., Any]] = {}
_ACTIVE = sorted(s.value for s in RUN_ACTIVE)  # sorted: the shipped text is stable


def _builder(function: Callable[..., Any]) -> Callable[..., Any]:
    _BUILDERS[function.__name__.lstrip("_")] = function
    return function


@functools.lru_cache(maxsize=1024)
def construct(key: Key) -> Any:
    """The SQLAlchemy construct of ``key``."""
    name, *shape = key
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise KeyError(f"no store statement named {name!r}") from None
    return builder(*shape)


def _bind(name: str, type_: Any = None) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=type_)


def _many(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(name, expanding=True)


def db_clock(dialect: str) -> sa.ColumnElement[float]:
    """The database's clock in epoch seconds: leases are timed by it, never by the hosts'
    clocks (which drift apart across replicas)."""
    if dialect == "sqlite":
        return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Double())
    return sa.literal_column("(extract(epoch from clock_timestamp())::float8)", sa.Double())


def _ttl(name: str = "lease_ttl") -> sa.BindParameter[float]:
    return sa.bindparam(name, type_=sa.Double())


def _like(column: Any) -> Any:
    """``column`` contains the (escaped) pattern ``:pattern``, ignoring case."""
    return column.ilike(_bind("pattern"), escape="/")


def _json_like(column: Any) -> Any:
    """A JSON ``column`` holds a string (a value or a key) containing the text of a search,
    ignoring case: its JSON text contains ``:json_pattern``, the text escaped as the store
    writes a JSON string (see :func:`kaon.store._lite.text_patterns`), so that ``ü``, ``"``
    or ``\\`` match as written (and ``\\u00fc``, how SQLite keeps ``ü``, does not find it).
    A user's value (``json`` on PostgreSQL: the text as the client wrote it, ``ü`` escaped)
    is searched in jsonb's rendering there, as every other JSON column is."""
    text = _JsonbText(column) if isinstance(column.type, t.JsonValue.__class__) else column
    return sa.cast(text, sa.Text).ilike(_bind("json_pattern"), escape="/")


class _JsonbText(sa.sql.expression.ColumnElement[Any]):
    """A ``json`` column read as ``jsonb`` on PostgreSQL; the column itself elsewhere."""

    inherit_cache = True

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type

    _traverse_internals = [("column", sa.sql.visitors.InternalTraversal.dp_clauseelement)]


@compiles(_JsonbText)
def _jsonb_text(element: _JsonbText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)  # type: ignore[no-any-return]


@compiles(_JsonbText, "postgresql")
def _jsonb_text_pg(element: _JsonbText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.column, **kw)} AS JSONB)"


# -- definitions and runs ------------------------------------------------------------------


@_builder
def _definition() -> Any:
    """``:hash``."""
    return sa.select(t.definitions).where(t.definitions.c.hash == _bind("hash"))


@_builder
def _definitions() -> Any:
    """``:hashes`` (a list)."""
    return sa.select(t.definitions).where(t.definitions.c.hash.in_(_many("hashes")))


@_builder
def _run() -> Any:
    """``:run_id``."""
    return sa.select(t.runs).where(t.runs.c.id == _bind("run_id"))


@_builder
def _run_exists() -> Any:
    """``:run_id``."""
    return sa.select(t.runs.c.id).where(t.runs.c.id == _bind("run_id"))


@_builder
def _find_runs() -> Any:
    """``:prefix_pattern`` (escaped, ending in ``%``)."""
    c = t.runs.c
    return (
        sa.select(c.id)
        .where(c.id.like(_bind("prefix_pattern"), escape="/"))
        .order_by(c.id)
        .limit(10)
    )


@_builder
def _list_runs(by_workflow: bool, by_status: bool, oldest_first: bool, keyset: bool) -> Any:
    """``:workflow``, ``:statuses``, ``:limit``, ``:offset``; with ``keyset``, only the runs
    after the run ``(:after_at, :after_id)`` in the list's order (its ``created_at`` and id:
    a page that starts there is not shifted by runs created or deleted meanwhile)."""
    c = t.runs.c
    stmt = sa.select(t.runs)
    if by_workflow:
        stmt = stmt.where(c.workflow == _bind("workflow"))
    if by_status:
        stmt = stmt.where(c.status.in_(_many("statuses")))
    if keyset:
        at, run_id = _bind("after_at", sa.Double()), _bind("after_id")
        if oldest_first:
            later = sa.or_(c.created_at > at, sa.and_(c.created_at == at, c.id > run_id))
        else:
            later = sa.or_(c.created_at < at, sa.and_(c.created_at == at, c.id < run_id))
        stmt = stmt.where(later)
    if oldest_first:
        stmt = stmt.order_by(c.created_at, c.id)
    else:
        stmt = stmt.order_by(c.created_at.desc(), c.id.desc())
    return stmt.limit(_bind("limit")).offset(_bind("offset"))


@_builder
def _last_ended_run(bounded: bool) -> Any:
    """``:workflow``, ``:status``, ``:after`` (and ``:until`` when bounded): the run of the
    workflow that ended last in the status, if it ended after ``:after`` (and at or before
    ``:until``); from ix_runs_workflow_status_ended."""
    c = t.runs.c
    stmt = sa.select(t.runs).where(
        c.workflow == _bind("workflow"),
        c.status == _bind("status"),
        c.ended_at > _bind("after", sa.Double()),
    )
    if bounded:
        stmt = stmt.where(c.ended_at <= _bind("until", sa.Double()))
    return stmt.order_by(c.ended_at.desc(), c.id.desc()).limit(1)


_RUNNING_OR_PAUSED = sorted(("running", "paused"))


def _capped_count(where: list[Any]) -> Any:
    """How many runs match ``where``, counting at most ``:limit``."""
    found = sa.select(sa.literal(1)).select_from(t.runs).where(*where).limit(_bind("limit"))
    return sa.select(sa.func.count()).select_from(found.subquery()).scalar_subquery()


@_builder
def _queue_place() -> Any:
    """``:workflow``, ``:run_id``, ``:priority``, ``:created_at``, ``:limit``: the workflow's
    active runs but ``:run_id`` (running or paused; pending and claimed) and its waiting runs
    ahead of the run in claiming order, each part counted up to ``:limit``: index ranges
    (ix_runs_workflow_status_ended, and the partial ix_runs_claimed and ix_runs_waiting,
    which the literal ``'pending'`` lets every plan use, a prepared one too)."""
    c = t.runs.c
    pending = c.status == sa.literal_column("'pending'")
    mine = [c.workflow == _bind("workflow"), c.id != _bind("run_id")]
    waiting = [*mine, pending, c.owner.is_(None)]
    priority, at = _bind("priority", sa.Integer()), _bind("created_at", sa.Double())
    return sa.select(
        (
            _capped_count([*mine, c.status.in_(_RUNNING_OR_PAUSED)])
            + _capped_count([*mine, pending, c.owner.is_not(None)])
        ).label("active"),
        (
            _capped_count([*waiting, c.priority > priority])
            + _capped_count([*waiting, c.priority == priority, c.created_at < at])
            + _capped_count(
                [*waiting, c.priority == priority, c.created_at == at, c.id < _bind("run_id")]
            )
        ).label("ahead"),
    )


@_builder
def _ping() -> Any:
    """The database answers (``GET /readyz``)."""
    return sa.select(sa.literal(1).label("one"))


@_builder
def _active_runs() -> Any:
    """``:workflow``, ``:limit``: its active runs (running or paused; pending and claimed),
    oldest first."""
    c = t.runs.c
    active = sa.or_(
        c.status.in_(_RUNNING_OR_PAUSED), sa.and_(c.status == "pending", c.owner.is_not(None))
    )
    stmt = sa.select(t.runs).where(c.workflow == _bind("workflow"), active)
    return stmt.order_by(c.created_at, c.id).limit(_bind("limit"))


@_builder
def _run_status_events() -> Any:
    """A run's own status changes (``run`` events, no step) from ``:since`` on, in order:
    ``:run_id``, ``:since`` (ix_events_run_step)."""
    return (
        sa.select(_e.at, _e.data)
        .where(
            _e.run_id == _bind("run_id"),
            _e.step_run_id.is_(None),
            _e.kind == "run",
            _e.at >= _bind("since", sa.Double()),
        )
        .order_by(_e.id)
    )


@_builder
def _claimable_runs(dialect: str, skip: bool, after: bool) -> Any:
    """``:limit``, ``:skip`` (workflows), ``:after_priority``, ``:after_at``, ``:after_id``,
    in claiming order (``kaon.store.base.claim_key``). A plain read: it locks nothing and
    skips nothing, so replicas claiming at once all see the first free runs; the conditional
    lease update (``acquire_leases``) decides who takes each.

    Pages are ranges of the partial index ix_runs_claim (the open runs in that order; its
    literal predicate is in every plan's ``WHERE``): a page after a key is the rest of the
    key's priority after it, then the lower priorities, each a range that stops at
    ``:limit``, not every open run read and sorted per page."""
    c = t.runs.c
    order = (c.priority.desc(), c.created_at, c.id)

    def free(*where: Any) -> Any:
        stmt = sa.select(t.runs).where(
            sa.text(t.RUN_OPEN),
            sa.or_(c.owner.is_(None), c.lease_until.is_(None), c.lease_until < db_clock(dialect)),
            c.origin != LOCAL_ORIGIN,  # a local command's: its code is not the server's
            *where,
        )
        if skip:
            stmt = stmt.where(c.workflow.not_in(_many("skip")))
        return stmt.order_by(*order).limit(_bind("limit"))

    if not after:
        return free()
    rank, at = _bind("after_priority", sa.Integer()), _bind("after_at", sa.Double())
    later = sa.tuple_(c.created_at, c.id) > sa.tuple_(at, _bind("after_id"))
    parts = sa.union_all(
        sa.select(free(c.priority == rank, later).subquery()),
        sa.select(free(c.priority < rank).subquery()),
    ).subquery()
    p = parts.c
    return (
        sa.select(*(p[column.name] for column in t.runs.columns))
        .order_by(p.priority.desc(), p.created_at, p.id)
        .limit(_bind("limit"))
    )


# -- step runs ---------------------------------------------------------------------------


_s = t.step_runs.c
# A step run's record: its row but the first attempt's columns (read as an attempt, below).
_step_row = [column for column in _s if not column.name.startswith("first_")]


@_builder
def _step_runs(all_levels: bool, top: bool, by_status: bool) -> Any:
    """``:run_id``, ``:parent_id`` (unless ``all_levels`` or ``top``), ``:statuses``."""
    stmt = sa.select(*_step_row).where(_s.run_id == _bind("run_id"))
    order: sa.ColumnElement[Any] = _s.id
    if not all_levels:
        stmt = stmt.where(_s.parent_id.is_(None) if top else _s.parent_id == _bind("parent_id"))
        # One parent's rows: the range of a parent index, then sorted. Ordered by the bare
        # id, SQLite (no statistics) would read the whole run in id order through the
        # primary key instead, sparing a sort of a few rows: a frame's children, or the top
        # level, cost the run's size (a foreach of 100,000 items: 20 ms a read).
        order = _s.id + 0
    if by_status:
        stmt = stmt.where(_s.status.in_(_many("statuses")))
    return stmt.order_by(order)


@_builder
def _children_of() -> Any:
    """``:run_id``, ``:parent_ids``: the rows under several frames, each parent's range of
    ``ix_step_runs_parent_index`` then sorted (by the bare id, SQLite would read the whole
    run through the primary key, as :func:`_step_runs` says)."""
    where = (_s.run_id == _bind("run_id"), _s.parent_id.in_(_many("parent_ids")))
    return sa.select(*_step_row).where(*where).order_by(_s.id + 0)


@_builder
def _step_run() -> Any:
    """``:run_id``, ``:path``."""
    return sa.select(*_step_row).where(_s.run_id == _bind("run_id"), _s.path == _bind("path"))


@_builder
def _step_run_by_id() -> Any:
    """``:run_id``, ``:id``."""
    return sa.select(*_step_row).where(_s.run_id == _bind("run_id"), _s.id == _bind("id"))


@_builder
def _child_outputs() -> Any:
    """``:run_id``, ``:parent_id``."""
    return (
        sa.select(_s.index, _s.outputs)
        .where(
            _s.run_id == _bind("run_id"), _s.parent_id == _bind("parent_id"), _s.index.is_not(None)
        )
        .order_by(_s.index)
    )


@_builder
def _child_counts() -> Any:
    """``:run_id``, ``:parent_id``."""
    return (
        sa.select(_s.status, sa.func.count().label("n"))
        .where(_s.run_id == _bind("run_id"), _s.parent_id == _bind("parent_id"))
        .group_by(_s.status)
    )


@_builder
def _summary_step_runs() -> Any:
    """``:run_id``: top-level step runs and every step run that did not end well."""
    well = [s.value for s in (StepStatus.SUCCEEDED, StepStatus.CACHED, StepStatus.SKIPPED)]
    return (
        sa.select(*_step_row)
        .where(_s.run_id == _bind("run_id"), sa.or_(~_s.path.contains("["), _s.status.not_in(well)))
        .order_by(_s.id)
    )


@_builder
def _kind_status_counts(by_kind: bool) -> Any:
    """``:run_id``, ``:kind``: counts by (kind, status), or by status of one kind."""
    if by_kind:
        return (
            sa.select(_s.status, sa.func.count().label("n"))
            .where(_s.run_id == _bind("run_id"), _s.kind == _bind("kind"))
            .group_by(_s.status)
        )
    return (
        sa.select(_s.kind, _s.status, sa.func.count().label("n"))
        .where(_s.run_id == _bind("run_id"))
        .group_by(_s.kind, _s.status)
    )


@_builder
def _frame_counts() -> Any:
    """``:run_id``: counts by (frame, status) of the items and iterations."""
    return (
        sa.select(_s.parent_id, _s.status, sa.func.count().label("n"))
        .where(_s.run_id == _bind("run_id"), _s.kind.in_(["item", "iteration"]))
        .group_by(_s.parent_id, _s.status)
    )


@_builder
def _children_counts() -> Any:
    """``:run_id``, ``:parent_ids``."""
    return (
        sa.select(_s.parent_id, _s.status, sa.func.count().label("n"))
        .where(_s.run_id == _bind("run_id"), _s.parent_id.in_(_many("parent_ids")))
        .group_by(_s.parent_id, _s.status)
    )


@_builder
def _top_counts() -> Any:
    """``:run_id``: counts by status of the top level's step runs."""
    return (
        sa.select(_s.status, sa.func.count().label("n"))
        .where(_s.run_id == _bind("run_id"), _s.parent_id.is_(None))
        .group_by(_s.status)
    )


@_builder
def _max_step_run_id() -> Any:
    """``:run_id``."""
    return sa.select(sa.func.max(_s.id).label("n")).where(_s.run_id == _bind("run_id"))


@_builder
def _max_step_run_ids() -> Any:
    """``:run_ids``."""
    return (
        sa.select(_s.run_id, sa.func.max(_s.id).label("n"))
        .where(_s.run_id.in_(_many("run_ids")))
        .group_by(_s.run_id)
    )


@_builder
def _paths() -> Any:
    """``:run_id``, ``:ids``."""
    return sa.select(_s.id, _s.path).where(_s.run_id == _bind("run_id"), _s.id.in_(_many("ids")))


# How a page of step runs may be ordered (ties broken by id); see kaon.store.reads.
SORT_KEYS: dict[str, Any] = {
    "index": _s.index,
    "id": _s.id,
    "path": _s.path,
    "status": _s.status,
    "started_at": _s.started_at,
    "ended_at": _s.ended_at,
    "duration": _s.ended_at - _s.started_at,
    "attempts": _s.attempts,
}


_NULLABLE_SORTS = frozenset({"started_at", "ended_at", "duration"})


def _page_where(top: bool, filters: tuple[str, ...]) -> list[Any]:
    """``:run_id``, ``:parent_id``, and one parameter per filter of ``filters``:
    ``statuses``, ``kind``, ``step_id``, ``index_from``, ``index_to``, ``pattern`` and
    ``json_pattern`` (text)."""
    where: list[Any] = [_s.run_id == _bind("run_id")]
    where.append(_s.parent_id.is_(None) if top else _s.parent_id == _bind("parent_id"))
    for name in filters:
        if name == "statuses":
            where.append(_s.status.in_(_many("statuses")))
        elif name in ("kind", "step_id"):
            where.append(_s[name] == _bind(name))
        elif name == "index_from":
            where.append(_s.index >= _bind("index_from"))
        elif name == "index_to":
            where.append(_s.index <= _bind("index_to"))
        elif name == "text":
            where.append(sa.or_(_like(_s.path), _like(_s.reason), _json_like(_s.item)))
        else:
            raise KeyError(f"unknown step page filter {name!r}")
    return where


@_builder
def _step_page(top: bool, filters: tuple[str, ...], sort: str, descending: bool, seek: bool) -> Any:
    """A page of children (see :func:`_page_where`); ``:limit``, and ``:offset`` or, when
    ``seek``, ``:seek_index`` (the first item index of the page)."""
    order = SORT_KEYS[sort]
    ordering = [order.desc() if descending else order.asc()]
    if descending and sort in _NULLABLE_SORTS:
        # Steps not started (or not ended) last, as SQLite orders them: PostgreSQL puts NULL
        # first in a descending order, so "slowest first" began with the steps that never ran.
        ordering = [order.desc().nulls_last()]
    if sort != "index" or top:
        ordering.append(_s.id.desc() if descending else _s.id.asc())
    where = _page_where(top, filters)
    if seek:
        bound = _bind("seek_index")
        where.append(_s.index <= bound if descending else _s.index >= bound)
    stmt = sa.select(*_step_row).where(*where).order_by(*ordering).limit(_bind("limit"))
    return stmt if seek else stmt.offset(_bind("offset"))


@_builder
def _step_count(top: bool, filters: tuple[str, ...]) -> Any:
    """How many children a page's query matches (see :func:`_page_where`)."""
    where = _page_where(top, filters)
    return sa.select(sa.func.count().label("n")).select_from(t.step_runs).where(*where)


@_builder
def _frame_index(end: str) -> Any:
    """The lowest (``end`` "min") or highest ("max") child index: ``:run_id``, ``:parent_id``."""
    function = sa.func.min if end == "min" else sa.func.max
    return sa.select(function(_s.index).label("n")).where(
        _s.run_id == _bind("run_id"), _s.parent_id == _bind("parent_id")
    )


@_builder
def _all_levels(by_status: bool, by_kind: bool, count: bool) -> Any:
    """Step runs of every level in id order (or their count): ``:run_id``, ``:statuses``,
    ``:kind``, ``:limit``, ``:offset``."""
    where: list[Any] = [_s.run_id == _bind("run_id")]
    if by_status:
        where.append(_s.status.in_(_many("statuses")))
    if by_kind:
        where.append(_s.kind == _bind("kind"))
    if count:
        return sa.select(sa.func.count().label("n")).select_from(t.step_runs).where(*where)
    stmt = sa.select(*_step_row).where(*where).order_by(_s.id)
    return stmt.limit(_bind("limit")).offset(_bind("offset"))


@_builder
def _run_history(filters: tuple[str, ...], count: bool) -> Any:
    """A workflow's runs newest first (or their count): ``:workflow``, ``:limit``,
    ``:offset``, and per filter ``:statuses``, ``:since``, ``:until``, ``:pattern`` and
    ``:json_pattern`` (text), ``:before_at`` and ``:before_id`` (``before``: the runs
    after that one in the list, a keyset that seeks ``ix_runs_workflow_created`` where an
    offset would step over every run before the page)."""
    r = t.runs.c
    where: list[Any] = [r.workflow == _bind("workflow")]
    for name in filters:
        if name == "statuses":
            where.append(r.status.in_(_many("statuses")))
        elif name == "since":
            where.append(r.created_at >= _bind("since", sa.Double()))
        elif name == "until":
            where.append(r.created_at <= _bind("until", sa.Double()))
        elif name == "text":
            where.append(sa.or_(_like(r.id), _json_like(r.params), _json_like(r.labels)))
        elif name == "before":
            at = _bind("before_at", sa.Double())
            where.append(sa.tuple_(r.created_at, r.id) < sa.tuple_(at, _bind("before_id")))
        else:
            raise KeyError(f"unknown run history filter {name!r}")
    if count:
        return sa.select(sa.func.count().label("n")).select_from(t.runs).where(*where)
    stmt = sa.select(t.runs).where(*where).order_by(r.created_at.desc(), r.id.desc())
    return stmt.limit(_bind("limit")).offset(_bind("offset"))


# -- attempts, logs, metrics, events -------------------------------------------------------


_a = t.attempts.c


def _with_first(retries: Any, firsts: Any) -> Any:
    """Attempts: the retries' rows of ``attempts`` (select ``retries``) and the first attempts
    folded into their step runs' rows (``firsts``: the same filter on ``step_runs``), by step
    run id and number."""
    first = sa.select(
        _s.run_id,
        _s.id.label("step_run_id"),
        sa.literal_column("1").label("number"),
        _s.first_status.label("status"),
        _s.first_started_at.label("started_at"),
        _s.first_ended_at.label("ended_at"),
        sa.func.coalesce(_s.first_worker, sa.literal_column("''")).label("worker"),
        _s.first_error.label("error"),
    ).where(_s.first_status.is_not(None), *firsts)
    union = sa.union_all(sa.select(t.attempts).where(*retries), first).subquery()
    return sa.select(union).order_by(union.c.step_run_id, union.c.number)


@_builder
def _attempts(by_step: bool) -> Any:
    """``:run_id``, ``:step_run_id``."""
    retries, firsts = [_a.run_id == _bind("run_id")], [_s.run_id == _bind("run_id")]
    if by_step:
        retries.append(_a.step_run_id == _bind("step_run_id"))
        firsts.append(_s.id == _bind("step_run_id"))
    return _with_first(retries, firsts)


@_builder
def _attempts_of() -> Any:
    """``:run_id``, ``:ids`` (step run ids)."""
    return _with_first(
        [_a.run_id == _bind("run_id"), _a.step_run_id.in_(_many("ids"))],
        [_s.run_id == _bind("run_id"), _s.id.in_(_many("ids"))],
    )


_l = t.logs.c


@_builder
def _logs(by_step: bool, by_attempt: bool) -> Any:
    """``:run_id``, ``:after_id``, ``:step_run_id``, ``:attempt``, ``:limit``."""
    stmt = sa.select(t.logs).where(_l.run_id == _bind("run_id"), _l.id > _bind("after_id"))
    if by_step:
        stmt = stmt.where(_l.step_run_id == _bind("step_run_id"))
    if by_attempt:
        stmt = stmt.where(_l.attempt == _bind("attempt"))
    return stmt.order_by(_l.id).limit(_bind("limit"))


@_builder
def _log_window(by_step: bool, by_attempt: bool, by_text: bool, mode: str) -> Any:
    """A window of log lines: ``mode`` "after" (the first after ``:after_id``), "before"
    (the last before ``:before_id``) or "tail"; ``:run_id``, ``:step_run_id``,
    ``:attempt``, ``:pattern``, ``:limit``."""
    stmt = sa.select(t.logs).where(_l.run_id == _bind("run_id"))
    if by_step:
        stmt = stmt.where(_l.step_run_id == _bind("step_run_id"))
    if by_attempt:
        stmt = stmt.where(_l.attempt == _bind("attempt"))
    if by_text:
        stmt = stmt.where(_like(_l.text))
    if mode == "after":
        stmt = stmt.where(_l.id > _bind("after_id")).order_by(_l.id.asc())
    else:
        if mode == "before":
            stmt = stmt.where(_l.id < _bind("before_id"))
        stmt = stmt.order_by(_l.id.desc())
    return stmt.limit(_bind("limit"))


@_builder
def _log_max() -> Any:
    """The largest log id of ``:run_id`` (on ``ix_logs_run``: one index lookup)."""
    return sa.select(sa.func.max(_l.id).label("n")).where(_l.run_id == _bind("run_id"))


_m = t.metrics.c


@_builder
def _metrics(by_step: bool, by_name: bool, limited: bool) -> Any:
    """``:run_id``, ``:step_run_id``, ``:name``, ``:limit``."""
    stmt = sa.select(t.metrics).where(_m.run_id == _bind("run_id"))
    if by_step:
        stmt = stmt.where(_m.step_run_id == _bind("step_run_id"))
    if by_name:
        stmt = stmt.where(_m.name == _bind("name"))
    stmt = stmt.order_by(_m.id)
    return stmt.limit(_bind("limit")) if limited else stmt


@_builder
def _metrics_after(by_step: bool, by_name: bool) -> Any:
    """``:run_id``'s metrics (``:step_run_id``'s when ``by_step``; named ``:name`` when
    ``by_name``) with ids above ``:after_id``, in the order reported, ``:limit`` at a time:
    a range of ``ix_metrics_run`` (``ix_metrics_run_step``)."""
    stmt = sa.select(t.metrics).where(_m.run_id == _bind("run_id"), _m.id > _bind("after_id"))
    if by_step:
        stmt = stmt.where(_m.step_run_id == _bind("step_run_id"))
    if by_name:
        stmt = stmt.where(_m.name == _bind("name"))
    return stmt.order_by(_m.id).limit(_bind("limit"))


@_builder
def _cached_tasks_after() -> Any:
    """``:run_id``'s tasks that reused another execution's outputs (``cached``), with ids
    above ``:after_id``, ``:limit`` at a time (a range of ``ix_step_runs_kind_status``)."""
    return (
        sa.select(_s.id, _s.path, _s.cached_from)
        .where(_s.run_id == _bind("run_id"), _s.kind == "task")
        .where(_s.status == StepStatus.CACHED.value, _s.id > _bind("after_id"))
        .order_by(_s.id)
        .limit(_bind("limit"))
    )


@_builder
def _step_runs_at() -> Any:
    """``:run_id``'s step runs at ``:paths`` (``ux_step_runs_path``)."""
    return sa.select(*_step_row).where(_s.run_id == _bind("run_id"), _s.path.in_(_many("paths")))


@_builder
def _newest_step_metrics() -> Any:
    """``:run_id``, ``:step_run_id``, ``:limit``: a step run's last metrics, newest first."""
    stmt = sa.select(t.metrics).where(
        _m.run_id == _bind("run_id"), _m.step_run_id == _bind("step_run_id")
    )
    return stmt.order_by(_m.id.desc()).limit(_bind("limit"))


# -- comparison of runs (kaon.store.comparison) ----------------------------------------------

_FRAMES = ("item", "iteration")  # a container's frames: a foreach's items, a loop's rounds
SEPARATOR = "\x1f"  # between the ids in ``:joined`` (no run id holds it)


def _run_rank(dialect: str, run_id: Any) -> Any:
    """Where ``run_id`` is in the list of compared runs: its position in ``:joined`` (the ids
    each between separators, in the order asked), which grows with its place in the list."""
    find = sa.func.instr if dialect == "sqlite" else sa.func.strpos
    return find(_bind("joined"), SEPARATOR + run_id + SEPARATOR)


def _big(value: Any) -> Any:
    """``value`` as a 64-bit integer (a literal, or a cast: PostgreSQL's ``integer`` is 32
    bits, and the comparison's order keys pack a run's place and an id in one number)."""
    if isinstance(value, int):
        return sa.literal(value, sa.BigInteger())
    return sa.cast(value, sa.BigInteger())


def _in_c(column: Any, dialect: str) -> Any:
    """``column`` ordered by code point, as Python orders strings (PostgreSQL's default
    collation may not)."""
    return column if dialect == "sqlite" else column.collate("C")


def _compare_tree() -> Any:
    """The step runs of ``:ids``, each with its ``grp`` (its path with every index made
    ``[*]``: ``outer[*].inner[*].train``), its ``inner`` (only the innermost index made
    ``[*]``) and its innermost ``frame`` (id, index): a recursive walk from the top level
    down the parent index (``ix_step_runs_parent_index``), in the database."""
    top = sa.select(
        _s.run_id,
        _s.id,
        _s.path,
        _s.status,
        _s.cached_from,
        _s.path.label("grp"),
        _s.path.label("inner"),
        sa.cast(sa.null(), sa.Integer()).label("frame"),
        sa.cast(sa.null(), sa.Integer()).label("frame_index"),
    ).where(_s.run_id.in_(_many("ids")), _s.parent_id.is_(None))
    tree = top.cte("tree", recursive=True)
    c = t.step_runs.alias("child")
    framed = c.c.kind.in_(_FRAMES)
    rest = sa.func.substr(c.c.path, sa.func.length(tree.c.path) + 1)  # ".train"
    down = sa.select(
        c.c.run_id,
        c.c.id,
        c.c.path,
        c.c.status,
        c.c.cached_from,
        sa.case((framed, tree.c.grp + "[*]"), else_=tree.c.grp + rest),
        sa.case((framed, tree.c.path + "[*]"), else_=tree.c.inner + rest),
        sa.case((framed, c.c.id), else_=tree.c.frame),
        sa.case((framed, c.c.index), else_=tree.c.frame_index),
    ).where(c.c.run_id == tree.c.run_id, c.c.parent_id == tree.c.id)
    return tree.union_all(down)


def _compare_points(dialect: str) -> Any:
    """Every metric value of ``:ids``, placed (run, path, groups, frame) and numbered
    by ``(seq, b)`` in the order ``kaon.service._compare.metric_points`` lists them: run by run in
    the order asked, a run's own values by id, then those its cached steps reused (each
    step's, from the execution named by ``cached_from``, ``RUN:PATH``)."""
    tree = _compare_tree()
    m = t.metrics.c
    own = sa.select(
        m.run_id,
        tree.c.path,
        tree.c.grp,
        tree.c.inner,
        tree.c.frame,
        tree.c.frame_index,
        m.name,
        m.value,
        sa.literal(0).label("late"),
        m.id.label("a"),
        m.id.label("b"),
    ).where(m.run_id.in_(_many("ids")), tree.c.run_id == m.run_id, tree.c.id == m.step_run_id)
    src = t.step_runs.alias("source")
    find = sa.func.instr if dialect == "sqlite" else sa.func.strpos
    colon = find(tree.c.cached_from, ":")
    reused = sa.select(
        tree.c.run_id,
        tree.c.path,
        tree.c.grp,
        tree.c.inner,
        tree.c.frame,
        tree.c.frame_index,
        m.name,
        m.value,
        sa.literal(1),
        tree.c.id,
        m.id,
    ).where(
        tree.c.status == StepStatus.CACHED.value,
        colon > 0,
        src.c.run_id == sa.func.substr(tree.c.cached_from, 1, colon - 1),
        src.c.path == sa.func.substr(tree.c.cached_from, colon + 1),
        m.run_id == src.c.run_id,
        m.step_run_id == src.c.id,
    )
    both = sa.union_all(own, reused).subquery("both")
    b = both.c
    # (run's place, late, a) as one number (ids stay far below 2**41), then b breaks ties.
    seq = _big(_run_rank(dialect, b.run_id)) * _big(2**42) + _big(b.late) * _big(2**41) + b.a
    return sa.select(*b, seq.label("seq")).cte("points")


def _compare_last(dialect: str) -> Any:
    """Each run's last value per (path, name), one row each, carrying its key's place: the
    run and frame of the key's first value (``first_run``, ``first_frame``: where its item
    is read), ``ord`` (the key's place in the comparison's order: its inner group's first
    value, then name, item index, path; the same in every run's row of the key) and
    ``total`` (how many keys).

    One GROUP BY per (run, path, name) over the points (the last value is the metric row
    of the largest ``(late, b)``, read by its id), then window functions over those rows
    only; no join of two derived tables (which has no index on SQLite: quadratic)."""
    points = _compare_points(dialect)
    p = points.c
    per_run = (
        sa.select(
            p.run_id,
            p.path,
            p.name,
            sa.func.min(p.grp).label("grp"),
            sa.func.min(p.inner).label("inner"),
            sa.func.min(p.frame).label("frame"),
            sa.func.min(p.frame_index).label("frame_index"),
            sa.func.min(p.seq).label("seq"),
            sa.func.max(_big(p.late) * _big(2**41) + p.b).label("newest"),
        )
        .group_by(p.run_id, p.path, p.name)
        .subquery("per_run")
    )
    k = per_run.c
    key, first = (k.path, k.name), k.seq
    value = (
        sa.select(t.metrics.c.value)
        .where(t.metrics.c.id == k.newest % _big(2**41))
        .scalar_subquery()
    )
    placed = sa.select(
        k.run_id,
        k.path,
        k.name,
        k.grp,
        k.inner,
        k.frame_index,
        value.label("value"),
        sa.func.first_value(k.run_id).over(partition_by=key, order_by=first).label("first_run"),
        sa.func.first_value(k.frame).over(partition_by=key, order_by=first).label("first_frame"),
        sa.func.min(k.seq).over(partition_by=k.inner).label("grank"),
    ).subquery("placed")
    q = placed.c
    order = (
        q.grank,
        _in_c(q.name, dialect),
        sa.func.coalesce(q.frame_index, 0),
        _in_c(q.path, dialect),
    )
    ranked = sa.select(*q, sa.func.dense_rank().over(order_by=order).label("ord")).subquery(
        "ranked"
    )
    r = ranked.c
    return sa.select(*r, sa.func.max(r.ord).over().label("total")).cte("last")


@_builder
def _compare_metric_page(dialect: str) -> Any:
    """``:ids``, ``:joined`` (see :func:`_run_rank`), ``:limit``: the first ``:limit``
    metric rows of the comparison (see :func:`_compare_last`), one row per (key, run that
    reported it), in order, with the key's item (its frame's, a foreach item's) and the
    number of keys. Window functions over the runs' metric rows: what is answered is the
    page, whatever the number of items."""
    last = _compare_last(dialect).c
    frame = t.step_runs.alias("frame")
    item = (
        sa.select(frame.c.item)
        .where(
            frame.c.run_id == last.first_run,
            frame.c.id == last.first_frame,
            frame.c.kind == "item",
        )
        .scalar_subquery()
    )
    return (
        sa.select(
            last.ord,
            last.total,
            last.path,
            last.name,
            last.inner,
            last.frame_index,
            sa.type_coerce(item, t.JsonValue).label("item"),
            last.run_id,
            last.value,
        )
        .where(last.ord <= _bind("limit"))
        .order_by(last.ord, last.run_id)
    )


@_builder
def _compare_metric_groups(dialect: str) -> Any:
    """``:ids``, ``:joined``: each metric pooled over the items of its step at every level
    (``grp``, name), per run: the sum, count, min and max of the last values, and
    ``place``, the first of its keys in the comparison's order. One GROUP BY."""
    last = _compare_last(dialect).c
    return (
        sa.select(
            last.grp,
            last.name,
            last.run_id,
            sa.func.sum(last.value).label("total"),
            sa.func.count().label("n"),
            sa.func.min(last.value).label("low"),
            sa.func.max(last.value).label("high"),
            sa.func.min(sa.func.min(last.ord))
            .over(partition_by=(last.grp, last.name))
            .label("place"),
        )
        .group_by(last.grp, last.name, last.run_id)
        .order_by(sa.text("place"), last.run_id)
    )


@_builder
def _compare_steps(dialect: str) -> Any:
    """``:ids``, ``:joined``, ``:n`` (how many runs), ``:limit``: the step paths of the
    runs (frames left out), each once: ``differs`` when a run lacks it or the statuses
    differ, ``seen`` where it is first (run by run, then by id); the first ``:limit`` of
    them, those that differ first, one row per (path, run that has it), with the numbers of
    paths (``total``) and of those that differ (``differing``). One GROUP BY."""
    rank = _run_rank(dialect, _s.run_id)
    differs = sa.case(
        (
            sa.or_(sa.func.count() < _bind("n"), sa.func.min(_s.status) != sa.func.max(_s.status)),
            1,
        ),
        else_=0,
    )
    paths = (
        sa.select(
            _s.path,
            differs.label("differs"),
            sa.func.min(_big(rank) * _big(2**40) + _s.id).label("seen"),
        )
        .where(_s.run_id.in_(_many("ids")), _s.kind.not_in(_FRAMES))
        .group_by(_s.path)
        .subquery("paths")
    )
    q = paths.c
    counted = sa.select(
        *q,
        sa.func.count().over().label("total"),
        sa.func.sum(q.differs).over().label("differing"),
    ).subquery("counted")
    w = counted.c
    page = (
        sa.select(counted).order_by(w.differs.desc(), w.seen).limit(_bind("limit")).subquery("page")
    )
    g = page.c
    s2 = t.step_runs.alias("row")
    return (
        sa.select(g.path, g.differs, g.seen, g.total, g.differing, s2.c.run_id, s2.c.status)
        .select_from(page.join(s2, sa.and_(s2.c.path == g.path, s2.c.run_id.in_(_many("ids")))))
        .order_by(g.differs.desc(), g.seen, s2.c.run_id)
    )


_e = t.events.c


@_builder
def _events(by_run: bool) -> Any:
    """``:after_id``, ``:run_id``, ``:limit``."""
    stmt = sa.select(t.events).where(_e.id > _bind("after_id"))
    if by_run:
        stmt = stmt.where(_e.run_id == _bind("run_id"))
    return stmt.order_by(_e.id).limit(_bind("limit"))


@_builder
def _step_events(by_kind: bool) -> Any:
    """The newest events of a step run: ``:run_id``, ``:step_run_id``, ``:kind``, ``:limit``."""
    stmt = sa.select(t.events).where(
        _e.run_id == _bind("run_id"), _e.step_run_id == _bind("step_run_id")
    )
    if by_kind:
        stmt = stmt.where(_e.kind == _bind("kind"))
    return stmt.order_by(_e.id.desc()).limit(_bind("limit"))


@_builder
def _event_recorded() -> Any:
    """The id of an event of ``:run_id`` of ``:kind`` at ``:at`` on ``:step_run_id`` (NULL:
    the run's own), if one is stored: whether a batch holding it was committed
    (ix_events_run: the run's events only)."""
    return (
        sa.select(_e.id)
        .where(
            _e.run_id == _bind("run_id"),
            _e.kind == _bind("kind"),
            _e.at == _bind("at", sa.Double()),
            _e.step_run_id.is_not_distinct_from(_bind("step_run_id", sa.Integer())),
        )
        .limit(1)
    )


@_builder
def _event_max(by_run: bool) -> Any:
    """The largest event id (of ``:run_id``)."""
    stmt = sa.select(sa.func.max(_e.id).label("n"))
    return stmt.where(_e.run_id == _bind("run_id")) if by_run else stmt


# -- memoization, lineage, signals, commands ------------------------------------------------


_c = t.cache_entries.c


@_builder
def _cache_entries_of() -> Any:
    """``:keys``."""
    return sa.select(t.cache_entries).where(_c.key.in_(_many("keys")))


@_builder
def _cache_entries(by_workflow: bool, by_step: bool) -> Any:
    """Newest first: ``:workflow``, ``:step_id``, ``:limit``."""
    stmt = sa.select(t.cache_entries)
    if by_workflow:
        stmt = stmt.where(_c.workflow == _bind("workflow"))
    if by_step:
        stmt = stmt.where(_c.step_id == _bind("step_id"))
    return stmt.order_by(_c.created_at.desc(), _c.key).limit(_bind("limit"))


@_builder
def _artifacts(by_run: bool, by_hash: bool) -> Any:
    """``:run_id``, ``:hash``."""
    c = t.artifacts.c
    stmt = sa.select(t.artifacts)
    if by_run:
        stmt = stmt.where(c.run_id == _bind("run_id"))
    if by_hash:
        stmt = stmt.where(c.hash == _bind("hash"))
    return stmt.order_by(c.id)


@_builder
def _artifact_uses() -> Any:
    """``:hash``, ``:after_id``, ``:limit``: the attempts that read a blob, oldest first."""
    c = t.artifact_uses.c
    return (
        sa.select(t.artifact_uses)
        .where(c.hash == _bind("hash"), c.id > _bind("after_id"))
        .order_by(c.id)
        .limit(_bind("limit"))
    )


@_builder
def _referenced_hashes() -> Any:
    return sa.select(t.artifacts.c.hash).distinct()


_g = t.signals.c


@_builder
def _signals(by_name: bool, since: bool) -> Any:
    """``:after_id``, ``:name``, ``:since``, ``:limit``."""
    stmt = sa.select(t.signals).where(_g.id > _bind("after_id"))
    if by_name:
        stmt = stmt.where(_g.name == _bind("name"))
    if since:
        stmt = stmt.where(_g.at >= _bind("since", sa.Double()))
    return stmt.order_by(_g.id).limit(_bind("limit"))


@_builder
def _signal_first_since() -> Any:
    """The first signal id at or after ``:since``, through the index on ``at``."""
    recent = sa.select(_g.id).where(_g.at >= _bind("since", sa.Double())).order_by(_g.at)
    return sa.select(sa.func.min(recent.subquery().c.id).label("n"))


@_builder
def _signal_max() -> Any:
    return sa.select(sa.func.max(_g.id).label("n"))


_k = t.commands.c


@_builder
def _pending_commands() -> Any:
    """Commands not yet done of runs still active (the partial index ``ix_commands_pending``)."""
    r = t.runs.c
    return (
        sa.select(t.commands)
        .join(t.runs, r.id == _k.run_id)
        .where(_k.done_at.is_(None), r.status.in_(_ACTIVE))
        .order_by(_k.id)
    )


@_builder
def _run_pending_commands() -> Any:
    """``:run_id``."""
    return (
        sa.select(t.commands)
        .where(_k.run_id == _bind("run_id"), _k.done_at.is_(None))
        .order_by(_k.id)
    )


# -- leases and the write path ------------------------------------------------------------


_r = t.runs.c


@_builder
def _acquire_lease(dialect: str, steal: bool) -> Any:
    """Take a free lease: ``:run_id``, ``:owner``, ``:lease_ttl``, ``:steal_from``."""
    now = db_clock(dialect)
    free = [_r.owner.is_(None), _r.lease_until.is_(None), _r.lease_until < now]
    if steal:
        free.append(_r.owner == _bind("steal_from"))
    return (
        sa.update(t.runs)
        .where(_r.id == _bind("run_id"), sa.or_(*free))
        .values(owner=_bind("owner"), lease_until=now + _ttl(), lease_epoch=_r.lease_epoch + 1)
    )


@_builder
def _lease_epoch() -> Any:
    """``:run_id``."""
    return sa.select(_r.lease_epoch).where(_r.id == _bind("run_id"))


@_builder
def _lease_holders(lock: bool) -> Any:
    """Who holds the leases of ``:ids``, their rows locked when ``lock`` (PostgreSQL)."""
    stmt = sa.select(_r.id, _r.owner, _r.lease_epoch).where(_r.id.in_(_many("ids")))
    return stmt.with_for_update() if lock else stmt


@_builder
def _renew_leases(dialect: str) -> Any:
    """Extend the leases of ``:ids`` to ``:lease_ttl`` after the database's clock."""
    return (
        sa.update(t.runs)
        .where(_r.id.in_(_many("ids")))
        .values(lease_until=db_clock(dialect) + _ttl())
    )


@_builder
def _release_lease(at_epoch: bool) -> Any:
    """``:run_id``, ``:holder``, ``:epoch``."""
    stmt = sa.update(t.runs).where(_r.id == _bind("run_id"), _r.owner == _bind("holder"))
    if at_epoch:
        stmt = stmt.where(_r.lease_epoch == _bind("epoch"))
    return stmt.values(owner=None, lease_until=None)


@_builder
def _fence(dialect: str) -> Any:
    """The fence of a write: the run's row while its holder still owns it at its epoch, locked
    against a takeover until the write commits (``FOR SHARE`` on PostgreSQL; a SQLite write
    holds the database's write lock already). ``:f_id``, ``:f_owner``, ``:f_epoch``; a null
    ``:f_owner`` is a run no engine holds (a restart's write: refused once it is claimed)."""
    stmt = sa.select(_r.id).where(
        _r.id == _bind("f_id"),
        _r.owner.is_not_distinct_from(_bind("f_owner")),
        _r.lease_epoch == _bind("f_epoch"),
    )
    return stmt.with_for_update(read=True) if dialect == "postgresql" else stmt


@_builder
def _release_hold() -> Any:
    """Delete the holds of one attempt: ``:h_run``, ``:h_path``, ``:h_attempt``."""
    h = p.holds.c
    return sa.delete(p.holds).where(
        h.run_id == _bind("h_run"), h.step_path == _bind("h_path"), h.attempt == _bind("h_attempt")
    )


@_builder
def _pools() -> Any:
    return sa.select(p.pools).order_by(p.pools.c.name)


@_builder
def _permits() -> Any:
    return sa.select(p.permits).order_by(p.permits.c.tag)


@_builder
def _insert(dialect: str, table_name: str, *columns: str) -> Any:
    """Insert one row of ``columns`` (parameters named as the columns)."""
    table = t.metadata.tables[table_name]
    values = {c: sa.bindparam(c, type_=table.c[c].type) for c in columns}
    if table_name in REPLACED and dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        module: Any = sqlite if dialect == "sqlite" else postgresql
        upsert = module.insert(table).values(values)
        keys = REPLACED[table_name]
        changed = {c: upsert.excluded[c] for c in columns if c not in keys}
        return upsert.on_conflict_do_update(index_elements=list(keys), set_=changed)
    if table_name in IDEMPOTENT and dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).values(values).on_conflict_do_nothing()
    if table_name in IDEMPOTENT and dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    return table.insert().values(values)


@_builder
def _update(table_name: str, keys: tuple[str, ...], *columns: str) -> Any:
    """``UPDATE table SET column = :v_column ... WHERE key = :k_key ...``."""
    table = t.metadata.tables[table_name]
    return (
        sa.update(table)
        .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in keys))
        .values({c: sa.bindparam(f"v_{c}", type_=table.c[c].type) for c in columns})
    )


@_builder
def _reset_below() -> Any:
    """Reset every step run inside the step run ``:b_root`` of run ``:b_run`` (its children,
    theirs, and so on, by ``parent_id``; not the row itself) as a restart resets a row it
    redoes (:data:`kaon.store.base.STEP_RUN_RESET`). Visits only those rows, through
    ``ix_step_runs_parent_index``."""
    sr = t.step_runs
    inner = sr.alias("inner_rows")
    below = (
        sa.select(sr.c.id)
        .where(sr.c.run_id == _bind("b_run"), sr.c.parent_id == _bind("b_root"))
        .cte("below", recursive=True)
    )
    below = below.union_all(
        sa.select(inner.c.id).where(
            inner.c.run_id == _bind("b_run"), inner.c.parent_id == below.c.id
        )
    )
    values = {name: _constant(value) for name, value in STEP_RUN_RESET.items()}
    return (
        sa.update(sr)
        .where(sr.c.run_id == _bind("b_run"), sr.c.id.in_(sa.select(below.c.id)))
        .values(values)
    )


def _constant(value: Any) -> Any:
    """A constant written into a statement's text (NULL, an integer, a string or an enum's)."""
    if value is None:
        return sa.null()
    if isinstance(value, int):
        return sa.literal_column(str(int(value)))
    text = str(getattr(value, "value", value)).replace("'", "''")
    return sa.literal_column(f"'{text}'")


# -- deleting runs (kaon.store.deletion) -----------------------------------------------------

_TERMINAL = sorted(s.value for s in RUN_TERMINAL)  # sorted: the shipped text is stable


@_builder
def _mark_deleting(dialect: str) -> Any:
    """Claim a finished run for deletion: its ``owner`` becomes ``:marker`` (no engine can
    take it and a restart refuses it) with a lease of ``:claim_s`` seconds by the database's
    clock, which the deletion renews as it goes (a lapsed one: the deleter died, a server
    finishes the job), unless it is active or an engine's lease on it has not expired (a
    run already claimed for deletion is claimed again: a second call finishes the job).
    ``:run_id``, ``:marker``, ``:claim_s``."""
    now = db_clock(dialect)
    free = sa.or_(
        _r.owner.is_(None),
        _r.owner == _bind("marker"),
        _r.lease_until.is_(None),
        _r.lease_until < now,
    )
    return (
        sa.update(t.runs)
        .where(_r.id == _bind("run_id"), _r.status.in_(_TERMINAL), free)
        .values(owner=_bind("marker"), lease_until=now + _bind("claim_s", sa.Double()))
    )


@_builder
def _renew_deleting(dialect: str) -> Any:
    """Renew a deletion's claim on ``:run_id`` (owner ``:marker``) for ``:claim_s`` seconds."""
    return (
        sa.update(t.runs)
        .where(_r.id == _bind("run_id"), _r.owner == _bind("marker"))
        .values(lease_until=db_clock(dialect) + _bind("claim_s", sa.Double()))
    )


@_builder
def _take_abandoned_deletion(dialect: str) -> Any:
    """Take over the lapsed deletion claim on ``:run_id`` (owner ``:marker``) for
    ``:claim_s`` seconds; matches no row when another finisher took it first."""
    now = db_clock(dialect)
    return (
        sa.update(t.runs)
        .where(_r.id == _bind("run_id"), _r.owner == _bind("marker"), _r.lease_until < now)
        .values(lease_until=now + _bind("claim_s", sa.Double()))
    )


@_builder
def _abandoned_deletions(dialect: str) -> Any:
    """Runs claimed for deletion (owner ``:marker``) whose claim lapsed by the database's
    clock (their deleter died midway), oldest first, at most ``:limit``."""
    return (
        sa.select(_r.id)
        .where(_r.owner == _bind("marker"), _r.lease_until < db_clock(dialect))
        .order_by(_r.created_at, _r.id)
        .limit(_bind("limit"))
    )


@_builder
def _lease_live(dialect: str) -> Any:
    """``:run_id``'s owner when its lease has not expired by the database's clock."""
    return sa.select(_r.owner).where(
        _r.id == _bind("run_id"),
        _r.owner.is_not(None),
        sa.or_(_r.lease_until.is_(None), _r.lease_until >= db_clock(dialect)),
    )


@_builder
def _lease_owners(dialect: str) -> Any:
    """The engines holding an unexpired lease (by the database's clock) on an unfinished
    run, each once."""
    return (
        sa.select(_r.owner)
        .where(
            _r.status.in_(_ACTIVE),
            _r.owner.is_not(None),
            _r.lease_until >= db_clock(dialect),
        )
        .distinct()
    )


@_builder
def _release_leases_of() -> Any:
    """Void every lease ``:dead_owner`` (an engine proven dead) holds on an unfinished run."""
    return (
        sa.update(t.runs)
        .where(_r.owner == _bind("dead_owner"), _r.status.in_(_ACTIVE))
        .values(lease_until=None)
    )


@_builder
def _delete_run_rows(table_name: str) -> Any:
    """Delete the ``:limit`` oldest rows (by primary key) of ``:run_id`` in ``table_name``:
    one bounded statement, on both databases (no ``DELETE ... LIMIT`` needed)."""
    table = t.metadata.tables[table_name]
    keys = list(table.primary_key.columns)
    oldest = (
        sa.select(*keys)
        .where(table.c.run_id == _bind("run_id"))
        .order_by(*keys)
        .limit(_bind("limit"))
    )
    chosen = keys[0].in_(oldest) if len(keys) == 1 else sa.tuple_(*keys).in_(oldest)
    return sa.delete(table).where(table.c.run_id == _bind("run_id"), chosen)


@_builder
def _delete_run() -> Any:
    """Delete the row of ``:run_id`` claimed by ``:marker`` (the last of its rows)."""
    return sa.delete(t.runs).where(_r.id == _bind("run_id"), _r.owner == _bind("marker"))


@_builder
def _delete_idempotency_of_run() -> Any:
    """Forget the idempotency keys whose answer names a run: those made at or after
    ``:since`` whose JSON text contains the escaped pattern ``:pattern`` (keys live a day,
    so few rows are looked at)."""
    keys = t.metadata.tables["idempotency_keys"]
    return sa.delete(keys).where(
        keys.c.created_at >= _bind("since", sa.Double()),
        sa.cast(keys.c.response, sa.Text).like(_bind("pattern"), escape="/"),
    )


@_builder
def _cached_from_run() -> Any:
    """Step runs of other runs that reused outputs of ``:run_id`` from the cache
    (``cached_from`` between ``:low`` and ``:high``), after the key ``(:after_from,
    :after_run, :after_id)``, ``:limit`` at a time (``ix_step_runs_cached_from``)."""
    c = t.step_runs.c
    after = sa.tuple_(c.cached_from, c.run_id, c.id) > sa.tuple_(
        _bind("after_from"), _bind("after_run"), _bind("after_id")
    )
    return (
        sa.select(c.run_id, c.id, c.path, c.cached_from)
        .where(c.cached_from.is_not(None), c.cached_from >= _bind("low"))
        .where(c.cached_from < _bind("high"), c.run_id != _bind("run_id"), after)
        .order_by(c.cached_from, c.run_id, c.id)
        .limit(_bind("limit"))
    )


@_builder
def _artifacts_at_paths() -> Any:
    """The artifact records of ``:run_id`` made by the step runs at ``:paths``."""
    c = t.artifacts.c
    return (
        sa.select(t.artifacts)
        .where(c.run_id == _bind("run_id"), c.path.in_(_many("paths")))
        .order_by(c.id)
    )


@_builder
def _step_runs_with_artifacts() -> Any:
    """Which of ``:ids`` (step runs of ``:run_id``) have artifact records of their own."""
    c = t.artifacts.c
    return (
        sa.select(c.step_run_id)
        .where(c.run_id == _bind("run_id"), c.step_run_id.in_(_many("ids")))
        .distinct()
    )


@_builder
def _expired_runs(by_workflow: bool) -> Any:
    """Finished runs that ended (or, never started, were created) before ``:before``, that
    are not among the ``:keep`` newest finished runs of their workflow (``workflow =
    :workflow`` when ``by_workflow``), oldest first, at most ``:limit``.

    Oldest first from ``ix_runs_created``, each candidate kept out when fewer than ``:keep``
    finished runs of its workflow are newer (counted in ``ix_runs_workflow_created``, up to
    ``:keep``): the cost follows the batch and ``:keep``, where ranking every finished run of
    every workflow took 0.96 s a call with 200,000 of them. The status is tested through
    ``coalesce`` so that no plan takes a status index instead: one would read every finished
    run, and sort them, before the first of the batch."""
    newer = t.runs.alias("newer")
    n = newer.c
    counted = (
        sa.select(sa.literal(1))
        .select_from(newer)
        .where(
            n.workflow == _r.workflow,
            sa.func.coalesce(n.status, "").in_(_TERMINAL),
            n.created_at >= _r.created_at,  # a range of the index; the tie is settled below
            sa.or_(
                n.created_at > _r.created_at, sa.and_(n.created_at == _r.created_at, n.id > _r.id)
            ),
        )
        .limit(_bind("keep"))
        .correlate(t.runs)
        .subquery()
    )
    newer_count = sa.select(sa.func.count()).select_from(counted).scalar_subquery()
    where = [
        sa.func.coalesce(_r.status, "").in_(_TERMINAL),
        sa.func.coalesce(_r.ended_at, _r.created_at) < _bind("before", sa.Double()),
        newer_count >= _bind("keep"),
    ]
    if by_workflow:
        where.append(_r.workflow == _bind("workflow"))
    return sa.select(t.runs).where(*where).order_by(_r.created_at, _r.id).limit(_bind("limit"))


@_builder
def _expired_firings() -> Any:
    """Delete the oldest ``:limit`` trigger firings claimed before ``:before`` that retention
    may delete (:data:`kaon.store.schema_triggers.FIRING_EXPIRES`): a range of the partial
    index ``ix_trigger_firings_expiry``, so the rows kept for good are never read."""
    c = tt.trigger_firings.c
    batch = (
        sa.select(c.id)
        .where(sa.text(tt.FIRING_EXPIRES), c.created_at < _bind("before", sa.Double()))
        .order_by(c.created_at)
        .limit(_bind("limit"))
    )
    return sa.delete(tt.trigger_firings).where(c.id.in_(batch.scalar_subquery()))


@_builder
def _last_state_change() -> Any:
    """When a trigger-state document whose key matches ``:pattern`` (a prefix, escaped with
    ``/``, then ``%``) last changed, or NULL."""
    c = tt.trigger_state.c
    return sa.select(sa.func.max(c.updated_at)).where(c.key.like(_bind("pattern"), escape="/"))


_tok = reg.tokens.c


@_builder
def _token() -> Any:
    """The token ``:token_id`` (its primary key), revoked or not."""
    return sa.select(reg.tokens).where(_tok.id == _bind("token_id"))


@_builder
def _tokens_page(after: bool, limited: bool) -> Any:
    """Tokens oldest first (``created_at``, ``id``): after the keyset ``:after_at``,
    ``:after_id`` when ``after``, ``:limit`` of them when ``limited``; a range of
    ``ix_tokens_created`` read in its order, whatever the tokens before the page."""
    stmt = sa.select(reg.tokens)
    if after:
        at = _bind("after_at", sa.Double())
        stmt = stmt.where(sa.tuple_(_tok.created_at, _tok.id) > sa.tuple_(at, _bind("after_id")))
    stmt = stmt.order_by(_tok.created_at, _tok.id)
    return stmt.limit(_bind("limit")) if limited else stmt


_idem = reg.idempotency_keys.c


@_builder
def _release_idempotency() -> Any:
    """Mark ``:b_actor``'s key ``:b_key``, still reserved (status 0), as released (status
    ``:released``): its request failed unexpectedly, the next one takes it over at once."""
    return (
        sa.update(reg.idempotency_keys)
        .where(_idem.actor == _bind("b_actor"), _idem.key == _bind("b_key"), _idem.status == 0)
        .values(status=_bind("released"))
    )


@_builder
def _retake_idempotency() -> Any:
    """Take over ``:b_actor``'s key ``:b_key`` as last read (reserved at ``:seen``, not
    answered: status 0 or released): reserved again at ``:now``. One row for one taker."""
    return (
        sa.update(reg.idempotency_keys)
        .where(_idem.actor == _bind("b_actor"), _idem.key == _bind("b_key"), _idem.status <= 0)
        .where(_idem.created_at == _bind("seen", sa.Double()))
        .values(status=0, created_at=_bind("now", sa.Double()))
    )


# -- compiling ------------------------------------------------------------------------------


@functools.cache
def _sqlite_dialect() -> sa.Dialect:
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    return SQLiteDialect_pysqlite(paramstyle="named")


def compile_sqlite(key: Key) -> Statement:
    """``key``'s statement compiled for SQLite, with what running it on ``sqlite3`` needs."""
    stmt = construct(key)
    compiled = stmt.compile(dialect=_sqlite_dialect())
    assert isinstance(compiled, SQLCompiler)
    binds = [(name, bind) for bind, name in compiled.bind_names.items()]
    expanding = tuple(dict.fromkeys(name for name, bind in binds if bind.expanding))
    json_params = tuple(name for name, bind in binds if isinstance(bind.type, t.Json.__class__))
    defaults = {name: bind.effective_value for name, bind in binds if not bind.required}
    columns = getattr(stmt, "exported_columns", ()) if _returns_rows(stmt) else ()
    json_columns = tuple(
        i for i, column in enumerate(columns) if isinstance(column.type, t.Json.__class__)
    )
    return Statement(
        compiled.string,
        expanding=expanding,
        json=json_columns,
        json_params=json_params,
        defaults=defaults,
    )


def compiled_for(
    stmt: Any, dialect: sa.Dialect
) -> tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
    """The SQL of ``stmt`` for ``dialect``'s driver (run with ``executemany``), and the bind
    processors (JSON encoding) of its parameters.

    A JSON document is encoded once, to its text, by :func:`~kaon.store._rows.json_text` (as
    on SQLite), not by SQLAlchemy's JSON processor, which wraps it in a psycopg ``Json`` for
    psycopg to encode (two layers per value, and the same text: standard JSON, no NaN). Its
    parameter is cast to ``json``/``jsonb`` in the SQL, so the server reads the text as one.

    On PostgreSQL a double (a time, mostly) is cast to ``FLOAT8`` in the SQL and made a
    ``float``, for :mod:`kaon.store._pg_write` to send in binary: its 8 bytes, where the
    shortest text that reads back the same (``repr``) cost more than the rest of its row."""
    compiled = stmt.compile(dialect=dialect, for_executemany=True)
    assert isinstance(compiled, SQLCompiler)
    sql = compiled.string
    processors: list[tuple[str, Callable[[Any], Any]]] = []
    for name, bind in compiled.binds.items():
        if isinstance(bind.type, t.JsonType):
            processors.append((name, json_text))
            continue
        if dialect.name == "postgresql" and isinstance(bind.type, sa.Float):
            sql = re.sub(rf"%\({name}\)s(?!::)", f"%({name})s::FLOAT8", sql)
            processors.append((name, as_double))
            continue
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((name, process))
    return sql, tuple(processors)


def as_double(value: Any) -> float | None:
    """A double parameter's value as a ``float`` (its binary form is a float's): ``None``
    stays NULL; anything else not a number raises TypeError or ValueError."""
    return None if value is None else float(value)


def _returns_rows(stmt: Any) -> bool:
    return isinstance(stmt, sa.Select) or bool(getattr(stmt, "_returning", ()))


def catalogue_keys() -> Iterator[Key]:
    """The keys shipped compiled (``_sqlite_statements.py``): every shape of every read and
    write the engine, ``kaon run`` and ``kaon show`` use on SQLite. Inserts and updates are
    rendered from their column lists at run time (see :func:`kaon.store._lite.insert_statement`
    and :func:`kaon.store._lite.update_statement`)."""
    flags = (False, True)
    yield from (
        ("definition",),
        ("definitions",),
        ("run",),
        ("run_exists",),
        ("find_runs",),
        ("step_run",),
        ("step_run_by_id",),
        ("children_of",),
        ("child_outputs",),
        ("child_counts",),
        ("summary_step_runs",),
        ("frame_counts",),
        ("children_counts",),
        ("top_counts",),
        ("max_step_run_id",),
        ("max_step_run_ids",),
        ("paths",),
        *(("metrics_after", by_step, by_name) for by_step, by_name in product(flags, flags)),
        ("cached_tasks_after",),
        ("step_runs_at",),
        ("newest_step_metrics",),
        ("attempts_of",),
        ("referenced_hashes",),
        ("artifact_uses",),
        ("signal_first_since",),
        ("signal_max",),
        ("log_max",),
        ("pending_commands",),
        ("run_pending_commands",),
        ("lease_epoch",),
        ("lease_holders", False),
        ("renew_leases", "sqlite"),
        ("fence", "sqlite"),
        ("release_hold",),
        ("reset_below",),
        ("pools",),
        ("permits",),
        ("cache_entries_of",),
        ("frame_index", "min"),
        ("frame_index", "max"),
        ("queue_place",),
        ("active_runs",),
        ("ping",),
    )
    for a in flags:
        yield ("last_ended_run", a)
    for a, b, c, d in product(flags, flags, flags, flags):
        yield ("list_runs", a, b, c, d)
    for a, b, c in product(flags, flags, flags):
        yield ("claimable_runs", "sqlite", a, b)
        yield ("step_runs", a, b, c)
        yield ("all_levels", a, b, c)
        yield ("metrics", a, b, c)
    for a, b in product(flags, flags):
        yield ("logs", a, b)
        yield ("cache_entries", a, b)
        yield ("artifacts", a, b)
        yield ("signals", a, b)
        for mode in ("after", "before", "tail"):
            yield ("log_window", a, b, False, mode)
    for a in flags:
        yield ("kind_status_counts", a)
        yield ("attempts", a)
        yield ("events", a)
        yield ("step_events", a)
        yield ("event_max", a)
        yield ("acquire_lease", "sqlite", a)
        yield ("release_lease", a)
        yield ("run_history", (), a)
        for top in flags:
            yield ("step_count", top, ())
            yield ("step_count", top, ("statuses",))
            for descending in flags:
                yield ("step_page", top, (), "index", descending, False)
                yield ("step_page", top, ("statuses",), "index", descending, False)
                yield ("step_page", top, (), "index", descending, True)
    # kaon run's end-of-run report: the slowest of the top-level steps that went well.
    yield ("step_page", True, ("statuses",), "duration", True, False)


def render_catalogue() -> str:
    """The text of ``_sqlite_statements.py``."""
    lines = [
        '"""Generated by ``python -m kaon.store._ddl`` from :mod:`kaon.store._queries`: the',
        'store\'s statements compiled for SQLite, by key. Do not edit."""',
        "",
        "from typing import Any",
        "",
        "STATEMENTS: dict[tuple[Any, ...], dict[str, Any]] = {",
    ]
    for key in catalogue_keys():
        statement = compile_sqlite(key)
        fields: dict[str, Any] = {"sql": statement.sql}
        for name in ("expanding", "json", "json_params"):
            if getattr(statement, name):
                fields[name] = getattr(statement, name)
        if statement.defaults:
            fields["defaults"] = statement.defaults
        lines.append(f"    {key!r}: {fields!r},")
    lines.append("}")
    lines.append("")
    lines.append(f"COLUMNS: dict[str, dict[str, tuple[str, bool, bool]]] = {table_columns()!r}")
    return "\n".join(lines) + "\n"


def table_columns() -> dict[str, dict[str, tuple[str, bool, bool]]]:
    """Per table of the state store, in the table's order: each column's quoted SQLite name,
    whether it holds JSON, and whether an insert may leave it out to mean NULL (nullable,
    no default, not a key): what :func:`kaon.store._lite.insert_statement` and
    :func:`kaon.store._lite.update_statement` need."""
    preparer = _sqlite_dialect().identifier_preparer
    return {
        name: {
            column.name: (
                preparer.quote(column.name),
                isinstance(column.type, t.Json.__class__),
                bool(
                    column.nullable
                    and column.default is None
                    and column.server_default is None
                    and not column.primary_key
                ),
            )
            for column in table.columns
        }
        for name, table in sorted(t.metadata.tables.items())  # not in import order
    }

"""Rows of the SQL store's write path: records as parameter rows, JSON as stored, statements.

The engine commits one :class:`~kaon.store.base.WriteBatch` per turn;
:class:`~kaon.store.sql.SQLStore` plans it with what is here: the fields each table's inserts
set (:data:`INSERTED`), records turned into parameter rows (:func:`record_rows`), JSON
documents encoded as the store keeps them (:func:`json_text`, one C encoder made once), a step
run's first attempt folded into its step run's row (:func:`fold_first_attempts`), updates
grouped by the columns they set (:func:`update_groups`), and SQLite's inserts without their
NULL columns (:func:`sparse_groups`). It also turns rows read back into records
(:func:`run_record`...).
No SQL text is made here: statements come from :mod:`kaon.store._lite` and
:mod:`kaon.store._queries`.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from kaon.model.events import AttemptKey
from kaon.model.status import RunStatus, StepStatus
from kaon.store import _lite
from kaon.store.base import (
    ArtifactRecord,
    ArtifactUseRecord,
    AttemptRecord,
    CacheEntryRecord,
    CommandRecord,
    DefinitionRecord,
    EventRecord,
    Fence,
    LogRecord,
    MetricRecord,
    RunRecord,
    SignalRecord,
    StepRunKey,
    StepRunRecord,
    WriteBatch,
)

Row = dict[str, Any]


def record_fields(record_type: type, *, skip: str = "") -> tuple[str, ...]:
    """The field names of a record dataclass (but ``skip``: an autoincrement id)."""
    return tuple(f.name for f in fields(record_type) if f.name != skip)


DEFINITION_FIELDS = record_fields(DefinitionRecord)
RUN_FIELDS = record_fields(RunRecord)
STEP_RUN_FIELDS = record_fields(StepRunRecord)
ATTEMPT_FIELDS = record_fields(AttemptRecord)
LOG_FIELDS = record_fields(LogRecord, skip="id")
METRIC_FIELDS = record_fields(MetricRecord, skip="id")
EVENT_FIELDS = record_fields(EventRecord, skip="id")
COMMAND_FIELDS = record_fields(CommandRecord, skip="id")
CACHE_FIELDS = record_fields(CacheEntryRecord)
ARTIFACT_FIELDS = record_fields(ArtifactRecord, skip="id")
ARTIFACT_USE_FIELDS = record_fields(ArtifactUseRecord, skip="id")
SIGNAL_FIELDS = record_fields(SignalRecord, skip="id")

KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("id",),
    "step_runs": ("run_id", "id"),
    "attempts": ("run_id", "step_run_id", "number"),
    "commands": ("id",),
}


def plain(value: Any) -> Any:
    """An enum as its value (a status as stored); any other value as it is."""
    return value.value if isinstance(value, Enum) else value


_GETTERS: dict[tuple[str, ...], Callable[[Any], tuple[Any, ...]]] = {}


def record_rows(records: Iterable[Any], names: tuple[str, ...]) -> list[Row]:
    """Parameter rows of ``records`` (the fields ``names``, enums as their values)."""
    get = _GETTERS.get(names)
    if get is None:
        get = _GETTERS[names] = operator.attrgetter(*names)  # a tuple: names has 2 or more
    has_status = "status" in names
    rows = []
    for record in records:
        row = dict(zip(names, get(record), strict=True))
        if has_status:
            status = row["status"]
            if isinstance(status, Enum):
                row["status"] = status.value
        rows.append(row)
    return rows


_JSON = json.JSONEncoder(allow_nan=False)
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
# The C encoder made once (JSONEncoder.encode makes one per call, most of the cost of a small
# document), without the circular-reference markers: a cycle (or a document nested past the
# recursion limit) raises RecursionError, reported as the ValueError the markers would raise.
_chunks: Any = (
    _make_encoder(
        None,  # no markers (see above)
        _JSON.default,
        json.encoder.encode_basestring_ascii,
        None,  # indent
        ": ",
        ", ",
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    if _make_encoder is not None
    else None
)


def encode_json(value: Any) -> str:
    """Compact JSON text of ``value``; ValueError for NaN, a cycle or a document too deep."""
    if _chunks is None:
        return _JSON.encode(value)
    try:
        return "".join(_chunks(value, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or a document nested too deep)") from None


def json_text(value: Any) -> str | None:
    """A JSON document as SQLite stores it (SQL NULL for None): what SQLAlchemy's JSON bind
    processor makes, without its per-value layers (the write path's largest Python cost)."""
    return None if value is None else encode_json(value)


# A step run's first attempt is stored in the step run's own row: the attempt's field ->
# its column of `step_runs`. Rows of `attempts` are the retries (numbers 2 and up), so a step
# that succeeds at once costs one row and its indexes, not two (see fold_first_attempts).
FIRST_ATTEMPT: dict[str, str] = {
    name: f"first_{name}" for name in ("status", "started_at", "ended_at", "worker", "error")
}
FIRST_COLUMNS = frozenset(FIRST_ATTEMPT.values())
STEP_RUN_COLUMNS = STEP_RUN_FIELDS + tuple(FIRST_ATTEMPT.values())

# The columns each table's inserts set: the record's fields (autoincrement ids excluded).
INSERTED: dict[str, tuple[str, ...]] = {
    "definitions": DEFINITION_FIELDS,
    "runs": RUN_FIELDS,
    "step_runs": STEP_RUN_COLUMNS,
    "attempts": ATTEMPT_FIELDS,
    "logs": LOG_FIELDS,
    "metrics": METRIC_FIELDS,
    "events": EVENT_FIELDS,
    "commands": COMMAND_FIELDS,
    "cache_entries": CACHE_FIELDS,
    "artifacts": ARTIFACT_FIELDS,
    "artifact_uses": ARTIFACT_USE_FIELDS,
    "signals": SIGNAL_FIELDS,
}


@dataclass(frozen=True, slots=True)
class Compiled:
    """SQL for the driver, and the encoders (JSON) of its parameters by name."""

    sql: str
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]


def json_processors(names: Iterable[str]) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """The JSON encoder of each parameter of ``names`` (see :class:`Compiled`)."""
    return tuple((name, json_text) for name in names)


_STEP_RUN_VALUES = operator.attrgetter(*STEP_RUN_FIELDS)
_FIRST_VALUES = operator.attrgetter(*FIRST_ATTEMPT)
_NO_FIRST = (None,) * len(FIRST_ATTEMPT)


def fold_first_attempts(
    batch: WriteBatch,
) -> tuple[
    list[tuple[Any, ...]],
    Mapping[StepRunKey, dict[str, Any]],
    list[AttemptRecord],
    Mapping[AttemptKey, dict[str, Any]],
]:
    """A batch's step runs and attempts as rows: ``(step runs to insert, each its values in
    the order of STEP_RUN_COLUMNS, its status as given; step run updates; attempts to insert;
    attempt updates)``, each first attempt moved into its step run's row (its insert when the
    batch inserts the step run, else an update of it; see :data:`FIRST_ATTEMPT`). The batch
    itself is left as it is (a failed write is retried)."""
    step_runs, attempts, attempt_updates = batch.step_runs, batch.attempts, batch.attempt_updates
    if not attempts and not attempt_updates:
        rows = [(*_STEP_RUN_VALUES(record), *_NO_FIRST) for record in step_runs.values()]
        return rows, batch.step_run_updates, [], {}
    firsts: dict[StepRunKey, AttemptRecord] = {}  # the first attempts of inserted step runs
    updates: dict[StepRunKey, dict[str, Any]] = dict(batch.step_run_updates)
    retries: list[AttemptRecord] = []
    for (run_id, step_run_id, number), attempt in attempts.items():
        if number != 1:
            retries.append(attempt)
        elif (run_id, step_run_id) in step_runs:
            firsts[(run_id, step_run_id)] = attempt
        else:
            columns = {column: getattr(attempt, name) for name, column in FIRST_ATTEMPT.items()}
            updates[(run_id, step_run_id)] = {**updates.get((run_id, step_run_id), {}), **columns}
    rows = []
    for step_run, record in step_runs.items():  # no first attempt, unless this batch starts it
        first = firsts.get(step_run)
        rows.append(
            (*_STEP_RUN_VALUES(record), *(_NO_FIRST if first is None else _FIRST_VALUES(first)))
        )
    retry_updates: dict[AttemptKey, dict[str, Any]] = {}
    for key, changes in attempt_updates.items():
        if key[2] != 1:
            retry_updates[key] = changes
            continue
        # An unknown field names a column step runs do not have (never one of their own).
        columns = {FIRST_ATTEMPT.get(name, f"first_{name}"): v for name, v in changes.items()}
        step = (key[0], key[1])
        updates[step] = {**updates.get(step, {}), **columns}
    return rows, updates, retries, retry_updates


def named_rows(names: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> list[Row]:
    """Rows of values in the order of ``names`` as parameter rows (a status enum as its
    value, as :func:`record_rows` makes them)."""
    named = []
    for values in rows:
        row = dict(zip(names, values, strict=True))
        status = row.get("status")
        if isinstance(status, Enum):
            row["status"] = status.value
        named.append(row)
    return named


def fence_rows(fence: Fence, ids: list[str]) -> list[Row]:
    """The fence's parameter rows: one per run it names, with the owner and lease epoch."""
    return [{"f_id": r, "f_owner": fence.owner, "f_epoch": fence.epochs[r]} for r in ids]


def held(cursor: Any, sql: str, rows: list[Row]) -> int:
    """How many of the fence's rows (one per run) the store still has as the writer holds
    them (SQLite: ``executemany`` takes no ``SELECT``)."""
    return sum(cursor.execute(sql, row).fetchone() is not None for row in rows)


def execute_rows(cursor: Any, sql: str, rows: list[Row]) -> None:
    """Run ``sql`` for each of ``rows`` (one ``execute`` for one row, else ``executemany``)."""
    if len(rows) == 1:
        cursor.execute(sql, rows[0])
    else:
        cursor.executemany(sql, rows)


_KEY_BINDS = {name: tuple(f"k_{k}" for k in keys) for name, keys in KEYS.items()}
_VALUE_BINDS: dict[str, str] = {}  # column -> its bind name, made once per column


def update_groups(
    name: str, updates: Mapping[Any, dict[str, Any]]
) -> dict[frozenset[str], list[Row]]:
    """Updates of one table as parameter rows, grouped by the set of columns they change."""
    binds = _KEY_BINDS[name]
    value_binds = _VALUE_BINDS
    groups: dict[frozenset[str], list[Row]] = {}
    for key, changes in updates.items():
        if not changes:
            continue
        row = dict(zip(binds, key if type(key) is tuple else (key,), strict=True))
        for column, value in changes.items():
            bind = value_binds.get(column)
            if bind is None:
                bind = value_binds.setdefault(column, f"v_{column}")
            row[bind] = value.value if isinstance(value, Enum) else value
        groups.setdefault(frozenset(changes), []).append(row)
    return groups


def sparse_groups(
    table: str, names: tuple[str, ...], rows: list[Row]
) -> list[tuple[tuple[str, ...], list[Row]]]:
    """SQLite: rows to insert as runs of rows that give a value to the same columns, the
    NULLs left out (the driver binds None through a failed adapter lookup, several times the
    cost of binding a value; a chain step inserts a dozen of them). Only columns an insert
    may leave out to mean NULL are (see :func:`kaon.store._lite.table_columns`). The runs
    keep the rows' order: logs, metrics and events get their ids in the order written."""
    optional = _optional_columns(table, names)
    groups: list[tuple[tuple[str, ...], list[Row]]] = []
    for row in rows:
        absent = tuple([c for c in optional if row[c] is None])
        if absent:
            for column in absent:
                del row[column]
            shape = (names, absent)
            columns = _GIVEN.get(shape)
            if columns is None:
                columns = _GIVEN[shape] = tuple(c for c in names if c not in absent)
        else:
            columns = names
        if groups and groups[-1][0] == columns:
            groups[-1][1].append(row)
        else:
            groups.append((columns, [row]))
    return groups


_OPTIONAL: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
_GIVEN: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}  # by what is absent


def _optional_columns(table: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of ``names`` an insert into ``table`` may leave out to mean NULL."""
    found = _OPTIONAL.get((table, names))
    if found is None:
        known = _lite.table_columns(table)
        found = _OPTIONAL[(table, names)] = tuple(c for c in names if c in known and known[c][2])
    return found


def run_record(values: Row) -> RunRecord:
    """A run from its row's values (a dict the record takes over)."""
    values["status"] = RunStatus(values["status"])
    values["params"] = values["params"] or {}
    values["labels"] = values["labels"] or {}
    return RunRecord(**values)


def step_run_record(values: Row) -> StepRunRecord:
    """A step run from its row's values."""
    values["status"] = StepStatus(values["status"])
    return StepRunRecord(**values)


def event_record(values: Row) -> EventRecord:
    """An event from its row's values."""
    values["data"] = values["data"] or {}
    return EventRecord(**values)


def command_record(values: Row) -> CommandRecord:
    """A command from its row's values."""
    values["payload"] = values["payload"] or {}
    return CommandRecord(**values)

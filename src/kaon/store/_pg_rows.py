"""PostgreSQL's parameter rows: a plan's values in the order of its prepared statement's ``$n``.

On PostgreSQL, :meth:`SQLStore._plan <kaon.store.sql.SQLStore._plan>` makes each row of a
statement as the list that :mod:`kaon.store._pg_write` dumps libpq's parameters from: its
values in the order of the statement's parameters, encoded as stored (a JSON document as its
text, a double as a ``float``, a status enum as its value). How a row's values are picked and
encoded is worked out once per statement (:func:`pg_rows`), from the order its values come
in: a record's fields in the order of its table's insert (``names``), or the named parameters
of a dict (updates, the fence). A turn's batch is a handful of rows: a dict of named
parameters per row, read back by name in the statement's order, cost more than the rest of
its plan.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from kaon.errors import StoreError
from kaon.store._rows import encode_json, json_text

if TYPE_CHECKING:  # psycopg, an optional dependency, is imported when a statement is made
    from kaon.store._pg_statements import PgStatement


@dataclass(frozen=True, slots=True)
class PgRows:
    """How the rows of one statement are made (see :func:`pg_rows`)."""

    statement: PgStatement
    # A row's values in the statement's order, from the order they come in (None: the same).
    order: Callable[[Any], Sequence[Any]] | None
    # The encoder of each value that has one, by position: JSON documents and doubles, which
    # both keep None (SQL NULL) as it is, so a None is not passed to them.
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    enums: tuple[int, ...]  # positions of a status, stored as its enum's value

    def rows(self, table: str, sources: Iterable[Any]) -> list[list[Any]]:
        """The parameter rows of ``sources`` (each in the order this was made for). Raises
        :class:`StoreError` naming ``table`` for a value that cannot be encoded."""
        order, processors, enums = self.order, self.processors, self.enums
        rows = []
        try:
            for source in sources:
                row = list(source if order is None else order(source))
                for index in enums:
                    value = row[index]
                    if isinstance(value, Enum):  # its _value_: .value is a Python property
                        row[index] = value._value_
                for index, process in processors:
                    value = row[index]
                    if value is not None:
                        row[index] = process(value)
                rows.append(row)
        except (TypeError, ValueError) as error:
            raise StoreError(f"cannot store a row of table {table}: {error}") from error
        return rows


# What a statement's rows are made from (see pg_rows), besides tuples in a given order.
RECORDS = "records"  # records whose fields are named as the statement's parameters
DICTS = "dicts"  # dicts of named parameters
UPDATES = "updates"  # an update's (changes, key): {column: value}, the row's key as a tuple


def pg_rows(
    sql: str,
    processors: Iterable[tuple[str, Callable[[Any], Any]]],
    *,
    checked: bool,
    source: str | tuple[str, ...],
    keys: tuple[str, ...] = (),
) -> PgRows:
    """The rows of ``sql`` (SQLAlchemy's, for psycopg; ``checked``: see
    :func:`~kaon.store._pg_statements.pg_statement`) with the encoders ``processors`` of its
    parameters by name, made from ``source``: :data:`RECORDS`, :data:`DICTS`, :data:`UPDATES`
    (of a table whose key is the columns ``keys``; an update's parameters are ``v_<column>``
    then ``k_<key column>``, as :mod:`kaon.store._queries` names them), or tuples of values
    in the order of the names ``source``. A status, and any value an update sets, may be an
    enum: it is stored as its value (as on SQLite)."""
    from kaon.store._pg_statements import pg_statement
    from kaon.store._queries import as_double

    # What the encoders do to a value that is not None, with one call fewer (or none in
    # Python): a turn's rows have a dozen such values.
    same_for_a_value: dict[Callable[[Any], Any], Callable[[Any], Any]] = {
        json_text: encode_json,
        as_double: float,
    }

    statement = pg_statement(sql, checked)
    params = statement.params
    enums = [i for i, p in enumerate(params) if p == "status"]
    order: Callable[[Any], Sequence[Any]] | None
    if source == RECORDS:
        order = _picker(params, attributes=True)
    elif source == DICTS:
        order = _picker(params)
    elif source == UPDATES:
        order, enums = _update_values(params, keys)
    elif source == params:
        order = None
    else:
        order = _picker([source.index(p) for p in params])
    by_name = {name: same_for_a_value.get(p, p) for name, p in processors}
    return PgRows(
        statement,
        order,
        tuple((i, by_name[p]) for i, p in enumerate(params) if p in by_name),
        tuple(enums),
    )


def _picker(keys: Sequence[Any], *, attributes: bool = False) -> Callable[[Any], Sequence[Any]]:
    """``keys``' items (or attributes) of a row, as a tuple (``itemgetter`` of one key gives
    the item itself)."""
    if len(keys) == 1:
        key = keys[0]
        return (lambda row: (getattr(row, key),)) if attributes else (lambda row: (row[key],))
    return operator.attrgetter(*keys) if attributes else operator.itemgetter(*keys)


def _update_values(
    params: tuple[str, ...], keys: tuple[str, ...]
) -> tuple[Callable[[tuple[Mapping[str, Any], tuple[Any, ...]]], tuple[Any, ...]], list[int]]:
    """An update's parameter values from its ``(changes, key)``, and the positions of the
    values it sets."""
    columns = [p[2:] for p in params if p.startswith("v_")]
    if params[len(columns) :] != tuple(f"k_{key}" for key in keys):
        raise ValueError(f"an update whose parameters are not its values then its key: {params}")
    changed = _picker(columns)

    def values(update: tuple[Mapping[str, Any], tuple[Any, ...]]) -> tuple[Any, ...]:
        return (*changed(update[0]), *update[1])

    return values, list(range(len(columns)))

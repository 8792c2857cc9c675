"""PostgreSQL's parameter rows (:mod:`kaon.store._pg_rows`): a plan's values come out in the
order of the statement's ``$n``, whatever they are made from, encoded as stored."""

from __future__ import annotations

import pytest

from kaon.errors import StoreError
from kaon.model.status import StepStatus
from kaon.store._pg_rows import DICTS, RECORDS, UPDATES, pg_rows
from kaon.store._queries import as_double
from kaon.store._rows import json_text
from kaon.store.base import EventRecord

pytest.importorskip("psycopg")

_INSERT = (
    "INSERT INTO events (run_id, step_run_id, kind, at, data) VALUES "
    "(%(run_id)s, %(step_run_id)s, %(kind)s, %(at)s::FLOAT8, %(data)s::JSON)"
)
_PROCESSORS = (("at", as_double), ("data", json_text))


def test_records_dicts_and_tuples_give_the_statements_order() -> None:
    event = EventRecord("r1", "step_started", 2, {"step": 1}, 7)
    expected = [["r1", 7, "step_started", 2.0, '{"step": 1}']]
    by_record = pg_rows(_INSERT, _PROCESSORS, checked=False, source=RECORDS)
    assert by_record.rows("events", [event]) == expected
    by_dict = pg_rows(_INSERT, _PROCESSORS, checked=False, source=DICTS)
    values = {"run_id": "r1", "kind": "step_started", "at": 2, "data": {"step": 1}}
    assert by_dict.rows("events", [{**values, "step_run_id": 7}]) == expected
    names = ("run_id", "kind", "at", "data", "step_run_id")  # the record's order, not the SQL's
    by_tuple = pg_rows(_INSERT, _PROCESSORS, checked=False, source=names)
    assert by_tuple.rows("events", [("r1", "step_started", 2, {"step": 1}, 7)]) == expected


def test_none_stays_null_and_a_bad_value_names_its_table() -> None:
    rows = pg_rows(_INSERT, _PROCESSORS, checked=False, source=RECORDS)
    event = EventRecord("r1", "x", 1.5, None, None)  # type: ignore[arg-type]
    assert rows.rows("events", [event]) == [["r1", None, "x", 1.5, None]]
    with pytest.raises(StoreError, match="table events"):
        rows.rows("events", [EventRecord("r1", "x", 1.0, {"nan": float("nan")})])


def test_an_update_takes_its_changes_then_its_key_and_stores_enums_as_values() -> None:
    sql = (
        "UPDATE step_runs SET status=%(v_status)s, ended_at=%(v_ended_at)s::FLOAT8 "
        "WHERE step_runs.run_id = %(k_run_id)s AND step_runs.id = %(k_id)s"
    )
    processors = (("v_ended_at", as_double),)
    rows = pg_rows(sql, processors, checked=True, source=UPDATES, keys=("run_id", "id"))
    changes = {"ended_at": 3, "status": StepStatus.SUCCEEDED}
    assert rows.rows("step_runs", [(changes, ("r1", 4))]) == [["succeeded", 3.0, "r1", 4]]
    with pytest.raises(ValueError, match="not its values then its key"):
        pg_rows(sql, processors, checked=True, source=UPDATES, keys=("id", "run_id"))

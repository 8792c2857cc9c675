"""The sql step type against real DuckDB and a real SQLite file through SQLAlchemy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kaon.artifacts import open_artifact_store
from kaon.errors import Location, StepError
from kaon.executors.base import TaskRequest
from kaon.executors.runtime import run_task
from kaon.model.events import ExecutorEvent, LogLine, StepFailed, StepSucceeded
from kaon.model.values import ArtifactRef
from kaon.steptypes.context import StepContext
from kaon.steptypes.registry import get_step_type
from kaon.steptypes.sql import SqlStepType, duckdb_parameter_names

DATA = Path(__file__).parent / "data"
HERE = Location("flow.yaml", 7, "steps.q")
USERS = pd.DataFrame({"name": ["ann", "bob", "cy"], "age": [34, 17, 51]})


class Harness:
    def __init__(self, **extra: Any) -> None:
        self.events: list[ExecutorEvent] = []
        self.ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, self.events.append, extra=extra)

    def run(self, inputs: dict[str, Any] | None = None, **config: Any) -> Any:
        return SqlStepType().run(self.ctx, config, inputs or {})

    def log_text(self) -> str:
        return "\n".join(e.text for e in self.events if isinstance(e, LogLine))


def fields(config: dict[str, Any]) -> list[str | None]:
    return [p.location.field for p in SqlStepType().validate(config, HERE)]


def test_registered_as_sql() -> None:
    assert isinstance(get_step_type("sql"), SqlStepType)


def test_duckdb_scalar_with_bound_parameter() -> None:
    assert Harness().run(query="select $a * 2 as x", params={"a": 21}, result="scalar") == 42


def test_parameters_are_bound_not_formatted() -> None:
    hostile = "x'; drop table users; --"
    value = Harness().run(query="select $name as n", params={"name": hostile}, result="scalar")
    assert value == hostile


def test_dataframe_inputs_are_tables_and_scalar_inputs_are_parameters() -> None:
    frame = Harness().run(
        {"users": USERS, "min_age": 18}, file="adults.sql", base_dir=str(DATA), params={}
    )
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("records") == [{"name": "ann", "age": 34}, {"name": "cy", "age": 51}]


def test_input_wins_over_a_param_of_the_same_name() -> None:
    value = Harness().run({"k": 5}, query="select $k", params={"k": 1}, result="scalar")
    assert value == 5


def test_row_result_is_json_friendly() -> None:
    row = Harness().run(
        query="select 1.50::decimal(5,2) as price, date '2024-02-03' as day, 7 as n",
        result="row",
    )
    assert row == {"price": 1.5, "day": "2024-02-03", "n": 7}


def test_none_result_runs_a_script() -> None:
    assert (
        Harness().run(query="create table t(a int); insert into t values (1)", result="none")
        is None
    )


@pytest.mark.parametrize("query", ["select 1 where false", "select * from range(3)"])
def test_scalar_needs_exactly_one_row(query: str) -> None:
    with pytest.raises(StepError) as info:
        Harness().run(query=query, result="scalar")
    assert info.value.error_type == "SQLResultError"
    assert "exactly one row" in info.value.message


def test_duckdb_error_carries_the_database_message() -> None:
    with pytest.raises(StepError) as info:
        Harness().run(query="select * from no_such_table")
    assert info.value.error_type == "SQLError"
    assert "no_such_table" in info.value.message
    assert "Catalog Error" in info.value.message


def test_an_error_in_a_sql_file_names_the_file_its_lines_count_in(tmp_path: Path) -> None:
    query = tmp_path / "adults.sql"
    query.write_text("select 1 as a\nunion all\nselect\n  2\nwhere\n  nosuchcol = 1\n")
    with pytest.raises(StepError) as info:
        Harness().run(file=str(query))
    assert info.value.error_type == "SQLError"
    assert info.value.message.startswith(f"{query}: Binder Error")
    assert "LINE 6" in info.value.message


def test_duckdb_file_database_persists(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    Harness().run(query="create table t as select 3 as v", url=url, result="none")
    assert Harness().run(query="select v from t", url=url, result="scalar") == 3


def test_sqlite_file_through_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/app.db"
    harness = Harness()
    harness.run(query="create table users (name text, age int)", url=url, result="none")
    for name, age in [("ann", 34), ("bob", 17)]:
        harness.run(
            query="insert into users values (:name, :age)",
            url=url,
            params={"name": name, "age": age},
            result="none",
        )
    frame = harness.run({"min_age": 18}, query="select * from users where age >= :min_age", url=url)
    assert frame.to_dict("records") == [{"name": "ann", "age": 34}]
    assert harness.run(query="select count(*) from users", url=url, result="scalar") == 2
    assert harness.run(query="select * from users where name = 'bob'", url=url, result="row") == {
        "name": "bob",
        "age": 17,
    }


def test_sqlite_error_carries_the_driver_message(tmp_path: Path) -> None:
    with pytest.raises(StepError) as info:
        Harness().run(query="select * from missing", url=f"sqlite:///{tmp_path}/x.db")
    assert info.value.error_type == "SQLError"
    assert info.value.message == "OperationalError: no such table: missing"


def test_table_inputs_need_duckdb(tmp_path: Path) -> None:
    with pytest.raises(StepError, match="only be queried with DuckDB"):
        Harness().run({"users": USERS}, query="select 1", url=f"sqlite:///{tmp_path}/x.db")


def test_secrets_are_expanded_at_run_time_and_redacted(tmp_path: Path) -> None:
    secret = "hunter2-secret-dir"
    harness = Harness(env={"DB_DIR": secret})
    url = f"duckdb:///{tmp_path}/${{DB_DIR}}/nested/db.duckdb"
    with pytest.raises(StepError) as info:
        harness.run(query="select 1", url=url)
    assert info.value.error_type == "SQLError"
    assert secret not in info.value.message
    assert "***" in info.value.message


def test_password_and_secret_never_reach_the_log(tmp_path: Path) -> None:
    harness = Harness(env={"SQLITE_NAME": "topsecretname"})
    harness.run(query="select 1", url=f"sqlite:///{tmp_path}/${{SQLITE_NAME}}.db", result="row")
    assert (tmp_path / "topsecretname.db").exists()
    logs = harness.log_text()
    assert "topsecretname" not in logs
    assert "***.db" in logs


def test_missing_secret_is_a_config_error() -> None:
    with pytest.raises(StepError) as info:
        Harness().run(query="select 1", url="postgresql://u:${KAON_TEST_UNSET_PW}@h/db")
    assert info.value.error_type == "ConfigError"
    assert "KAON_TEST_UNSET_PW" in info.value.message


def test_timeout_interrupts_a_duckdb_query() -> None:
    with pytest.raises(StepError) as info:
        Harness(timeout_s=0.3).run(
            query="select count(*) from range(1000000000000) a", result="scalar"
        )
    assert info.value.error_type == "Timeout"


def test_parameter_names_skip_literals_and_comments() -> None:
    query = "select $a, '$b', \"$c\" -- $d\n /* $e */ from t where x = $f and y = $a"
    assert duckdb_parameter_names(query) == ["a", "f"]


def test_valid_configs_have_no_problems() -> None:
    assert fields({"query": "select 1"}) == []
    assert fields({"file": "adults.sql", "base_dir": str(DATA), "result": "none"}) == []
    assert fields({"query": "select 1", "url": "postgresql://u:${PW}@h/db", "params": {}}) == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.query"),
        ({"query": "select 1", "file": "a.sql"}, "config.query"),
        ({"query": "select 1", "result": "frame"}, "config.result"),
        ({"query": "select 1", "params": [1]}, "config.params"),
        ({"query": "select 1", "url": 5}, "config.url"),
        ({"query": "select 1", "url": "postgresql://u:${PW@h/db"}, "config.url"),
        ({"query": "select 1", "sql": "x"}, "config.sql"),
        ({"file": "missing.sql", "base_dir": str(DATA)}, "config.file"),
    ],
)
def test_config_problems_name_the_field(config: dict[str, Any], field: str) -> None:
    problems = SqlStepType().validate(config, HERE)
    assert [p.location.field for p in problems] == [f"steps.q.{field}"]
    assert all(p.location.file == "flow.yaml" and p.location.line == 7 for p in problems)


def test_relative_file_resolves_against_the_definition_file(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("select 1")
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: x\n")
    assert SqlStepType().validate({"file": "q.sql"}, Location(str(flow), 3)) == []


def test_run_task_stores_the_table_as_parquet(tmp_path: Path) -> None:
    events: list[ExecutorEvent] = []
    store_url = str(tmp_path / "artifacts")
    users_ref = open_artifact_store(store_url).put(USERS, name="users")
    request = TaskRequest(
        key=("run-1", 1, 1),
        step_path="adults",
        step_type="sql",
        config={"query": "select name from users where age >= $min_age order by name"},
        inputs={"users": users_ref, "min_age": open_artifact_store(store_url).put(18)},
        params={},
        artifact_url=store_url,
    )
    run_task(request, events.append)
    done = events[-1]
    assert isinstance(done, StepSucceeded), done
    ref = done.outputs["return"]
    assert isinstance(ref, ArtifactRef) and ref.serializer == "parquet"
    assert open_artifact_store(store_url).get(ref)["name"].tolist() == ["ann", "cy"]


def test_run_task_reports_the_sql_error_as_the_summary(tmp_path: Path) -> None:
    events: list[ExecutorEvent] = []
    request = TaskRequest(
        key=("run-1", 1, 1),
        step_path="bad",
        step_type="sql",
        config={"query": "selec 1"},
        inputs={},
        params={},
        artifact_url=str(tmp_path),
    )
    run_task(request, events.append)
    failed = events[-1]
    assert isinstance(failed, StepFailed)
    assert failed.error.error_type == "SQLError"
    assert 'syntax error at or near "selec"' in failed.error.message


def test_numpy_numbers_from_a_step_are_bound_as_numbers(tmp_path: Path) -> None:
    # An upstream step's `df["age"].max()` is an np.int64: DuckDB failed with "Unable to
    # transform python value of type numpy.int64", SQLite through SQLAlchemy with its own.
    import numpy as np

    inputs = {"k": np.int64(2), "f": np.float32(0.5), "b": np.bool_(True), "u": np.uint8(3)}
    assert Harness().run(inputs, query="select [$k, $f, $b::int, $u]", result="scalar") == [
        2,
        0.5,
        1,
        3,
    ]
    url = f"sqlite:///{tmp_path}/app.db"
    query = "select :k + :u as s, :f as f, :b as b"
    row = Harness().run(inputs, query=query, url=url, result="row")
    assert row == {"s": 5, "f": 0.5, "b": 1}
    assert (
        Harness().run(
            {"users": USERS, "k": np.int64(34)},
            query="select name from users where age = $k",
            result="scalar",
        )
        == "ann"
    )

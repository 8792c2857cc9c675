"""The spark step type with real PySpark in local mode (one session for the whole file)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kaon.artifacts import open_artifact_store
from kaon.errors import Location, StepError
from kaon.executors.base import TaskRequest
from kaon.executors.runtime import run_task
from kaon.model.events import ExecutorEvent, LogLine, StepSucceeded
from kaon.model.values import ArtifactRef
from kaon.steptypes.context import StepContext
from kaon.steptypes.registry import get_step_type
from kaon.steptypes.spark import (
    SparkStepType,
    first_meaningful_line,
    session_settings,
    stop_session,
)

DATA = Path(__file__).parent / "data"
HERE = Location("flow.yaml", 14, "steps.global")
USERS = pd.DataFrame(
    {
        "name": ["ann", "bob", "cy", "dee"],
        "age": [34, 17, 51, 40],
        "region": ["eu", "eu", "us", "us"],
    }
)
JOBS = {"file": "spark_jobs.py", "base_dir": str(DATA)}
LOCAL = {"resources": {"cores": 2, "memory": "1g"}, "log_level": "WARN"}

# `make test` installs Java when missing: without it these tests fail, never skip.
needs_java = pytest.mark.usefixtures("java_installed")


@pytest.fixture(scope="module")
def java_installed() -> None:
    if shutil.which("java") is None:
        pytest.fail("Java is required for Spark (make test installs default-jre-headless)")


class Harness:
    def __init__(self, **extra: Any) -> None:
        self.events: list[ExecutorEvent] = []
        self.ctx = StepContext(("run-1", 1, 1), "global", "wf", {}, self.events.append, extra=extra)

    def run(self, function: str, inputs: dict[str, Any] | None = None, **config: Any) -> Any:
        full = {**JOBS, **LOCAL, "function": function, **config}
        return SparkStepType().run(self.ctx, full, inputs or {})

    def log_text(self) -> str:
        return "\n".join(e.text for e in self.events if isinstance(e, LogLine))


@pytest.fixture(scope="module", autouse=True)
def _stop_spark_after_the_file() -> Any:
    yield
    stop_session()


def test_registered_as_spark() -> None:
    assert isinstance(get_step_type("spark"), SparkStepType)


def test_settings_come_from_resources_and_conf_wins() -> None:
    master, conf = session_settings(
        {"resources": {"cores": 3, "memory": "2g"}, "conf": {"spark.sql.shuffle.partitions": "5"}}
    )
    assert master == "local[3]"
    assert conf["spark.driver.memory"] == "2048m"
    assert conf["spark.sql.shuffle.partitions"] == "5"
    assert conf["spark.pyspark.python"] == sys.executable
    master, conf = session_settings({"master": "spark://head:7077"})
    assert master == "spark://head:7077"
    assert "spark.driver.host" not in conf and "spark.driver.memory" not in conf


@pytest.mark.slow
@needs_java
def test_annotated_input_becomes_a_spark_frame_and_the_result_pandas() -> None:
    harness = Harness()
    result = harness.run("users_by_region", {"users": USERS, "min_age": 18})
    assert isinstance(result, pd.DataFrame)
    assert result.to_dict("records") == [{"region": "eu", "n": 1}, {"region": "us", "n": 2}]


@pytest.mark.slow
@needs_java
def test_spark_inputs_convert_by_config_and_mappings_convert_back() -> None:
    result = Harness().run("train_global", {"users": USERS, "rows": USERS}, spark_inputs=["users"])
    assert result["model"] == {"mean_age": 35.5, "rows": 4}
    assert isinstance(result["table"], pd.DataFrame) and len(result["table"]) == 2


@pytest.mark.slow
@needs_java
def test_session_is_built_from_resources_and_reused() -> None:
    first = Harness().run("settings")
    assert first == {"master": "local[2]", "memory": "1024m", "partitions": "4"}
    harness = Harness()
    assert harness.run("settings") == first
    assert "starting a Spark session" not in harness.log_text()


@pytest.mark.slow
@needs_java
def test_the_warehouse_is_in_the_sessions_scratch_folder_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    where = Harness().run("warehouse")
    assert str(tmp_path) not in where and re.search(r"/kaon-\d+-\w+/spark-", where)
    assert not (tmp_path / "spark-warehouse").exists()


@pytest.mark.slow
@needs_java
def test_through_run_task_prints_reach_the_log_and_the_table_is_parquet(tmp_path: Path) -> None:
    store_url = str(tmp_path)
    store = open_artifact_store(store_url)
    events: list[ExecutorEvent] = []
    request = TaskRequest(
        key=("run-1", 1, 1),
        step_path="by_region",
        step_type="spark",
        config={**JOBS, **LOCAL, "function": "users_by_region"},
        inputs={"users": store.put(USERS), "min_age": store.put(18)},
        params={},
        artifact_url=store_url,
    )
    run_task(request, events.append)
    done = events[-1]
    assert isinstance(done, StepSucceeded), done
    ref = done.outputs["return"]
    assert isinstance(ref, ArtifactRef) and ref.serializer == "parquet"
    assert store.get(ref)["n"].tolist() == [1, 2]
    printed = [e.text for e in events if isinstance(e, LogLine) and e.stream == "stdout"]
    assert printed == ["partitions: 4"]


@pytest.mark.slow
@needs_java
def test_function_without_spark_parameter_gets_only_its_inputs() -> None:
    assert Harness().run("no_spark_argument", {"x": 41}) == 42


@pytest.mark.slow
@needs_java
def test_analysis_error_is_a_spark_error_with_the_first_line() -> None:
    harness = Harness()
    with pytest.raises(StepError) as info:
        harness.run("missing_table")
    assert info.value.error_type == "SparkError"
    assert info.value.message.startswith("[TABLE_OR_VIEW_NOT_FOUND]")
    assert "no_such_table" in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.slow
@needs_java
def test_python_worker_error_names_the_python_exception() -> None:
    harness = Harness()
    with pytest.raises(StepError) as info:
        harness.run("failing_udf")
    assert info.value.error_type == "SparkError"
    assert info.value.message in (
        "ValueError: cannot score row 0",
        "ValueError: cannot score row 1",
    )
    assert "ERROR" in harness.log_text()  # Spark's own log4j lines reached the step log


@pytest.mark.slow
@needs_java
def test_plain_python_errors_propagate_unchanged() -> None:
    with pytest.raises(KeyError):
        Harness().run("plain_python_error")


@pytest.mark.slow
@needs_java
def test_timeout_cancels_the_job() -> None:
    with pytest.raises(StepError) as info:
        Harness(timeout_s=1.0).run("slow_job")
    assert info.value.error_type == "Timeout"


@pytest.mark.slow
@needs_java
def test_other_settings_restart_the_session() -> None:
    harness = Harness()
    result = harness.run("settings", conf={"spark.sql.shuffle.partitions": "3"})
    assert result["partitions"] == "3"
    assert "restarting the Spark session" in harness.log_text()


def test_first_meaningful_line_of_common_errors() -> None:
    python = (
        "An exception was thrown:\nTraceback (most recent call last):\n  File x\nValueError: v\n"
    )
    assert first_meaningful_line(python) == "ValueError: v"
    py4j = (
        "An error occurred while calling o38.sql.\n: org.apache.spark.SparkException: boom\n\tat x"
    )
    assert first_meaningful_line(py4j) == "org.apache.spark.SparkException: boom"
    assert first_meaningful_line("[CODE] message\ndetail") == "[CODE] message"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.function"),
        ({"function": "no_colon"}, "config.function"),
        ({"function": "m:f", "resources": {"cores": 0}}, "config.resources.cores"),
        ({"function": "m:f", "resources": {"memory": "lots"}}, "config.resources.memory"),
        ({"function": "m:f", "resources": {"gpus": 1}}, "config.resources.gpus"),
        ({"function": "m:f", "conf": ["a"]}, "config.conf"),
        ({"function": "m:f", "spark_inputs": "users"}, "config.spark_inputs"),
        ({"function": "m:f", "log_level": "LOUD"}, "config.log_level"),
        ({"function": "f", "file": "missing.py", "base_dir": str(DATA)}, "config.file"),
    ],
)
def test_config_problems_name_the_field(config: dict[str, Any], field: str) -> None:
    problems = SparkStepType().validate(config, HERE)
    assert [p.location.field for p in problems] == [f"steps.global.{field}"]


def test_valid_config_has_no_problems() -> None:
    config = {**JOBS, **LOCAL, "function": "settings", "spark_inputs": "all", "conf": {"a": 1}}
    assert SparkStepType().validate(config, HERE) == []


def test_the_driver_asks_for_its_local_cores_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the ``ray`` executor asks Ray for a Spark step that says nothing itself."""
    spark = SparkStepType()
    assert spark.resources({"master": "local[4]"}) == {"cpus": 4.0}
    assert spark.resources({"resources": {"cores": 2, "memory": "1g"}}) == {
        "cpus": 2.0,
        "memory": 1024**3,
    }
    assert spark.resources({"master": "spark://h:7077", "resources": {"cores": 8}}) == {}
    monkeypatch.setenv("KAON_SPARK_MASTER", "spark://127.0.0.1:7077")
    master, conf = session_settings({})
    assert master == "spark://127.0.0.1:7077" and conf["spark.driver.host"] == "127.0.0.1"
    assert session_settings({"master": "local[2]"})[0] == "local[2]"  # the step's wins

"""SQL (DuckDB), R, notebook and Spark steps on Ray: with the ``ray`` executor, their attempts
run in Ray tasks on the cluster (Rscript, the notebook's kernel and Spark's JVM in the task's own
process tree), their inputs and outputs through the artifact store."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kaon.artifacts import open_artifact_store
from kaon.dsl.yaml_loader import load_yaml_file
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors import create_executor
from kaon.model.status import RunStatus
from kaon.model.values import decode_outputs
from kaon.store import open_store

FLOW = """
name: steptypes_on_ray
steps:
  - id: users
    type: sql
    config:
      query: "select * from (values ('ann', 34), ('bob', 17), ('cy', 51)) t(name, age)"
      result: table
  - id: adults
    type: sql
    config: {query: "select name, age from users where age >= $min_age order by name"}
    inputs: {users: "${{ steps.users }}", min_age: 18}
  - id: count
    type: r
    config: {code: "df <- kaon_input('adults'); kaon_output('n', nrow(df))"}
    inputs: {adults: "${{ steps.adults }}"}
  - id: report
    type: notebook
    config: {file: report.ipynb}
    inputs: {n: "${{ steps.count.n }}"}
"""

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {"tags": ["parameters"]},
            "outputs": [],
            "source": ["n = 0"],
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": ["import kaon.notebook\n", "kaon.notebook.record('double', n * 2)"],
        },
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _output(store: Any, artifacts: Any, run_id: str, path: str, name: str) -> Any:
    return artifacts.get(decode_outputs(store.get_step_run(run_id, path).outputs)[name])


@contextmanager
def _ran_on_ray(
    tmp_path: Path, ray_address: str, *, workers: int
) -> Iterator[tuple[Any, Any, str]]:
    """Run ``tmp_path/flow.yaml`` to success on the Ray executor; yield the store, the
    artifact store and the run id, then check that every step ran as a Ray task."""
    store = open_store(f"sqlite:///{tmp_path / 'kaon.db'}")
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    engine = Engine(store, create_executor("ray", workers=workers, address=ray_address), artifacts)
    engine.start()
    try:
        run = create_run(store, load_yaml_file(str(tmp_path / "flow.yaml")), {})
        status = engine.run_until_done(run.id)
        errors = {row.path: row.error for row in store.step_runs(run.id) if row.error}
        assert status is RunStatus.SUCCEEDED, errors
        yield store, artifacts, run.id
        for row in store.step_runs(run.id):
            (attempt,) = store.attempts(run.id, row.id)
            assert "kaon-ray-attempts" in attempt.worker, (row.path, attempt.worker)  # a Ray task
    finally:
        engine.close()
        store.close()


def test_sql_r_and_notebook_steps_run_in_ray_tasks(tmp_path: Path, ray_address: str) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "report.ipynb").write_text(json.dumps(NOTEBOOK))
    with _ran_on_ray(tmp_path, ray_address, workers=4) as (store, artifacts, run_id):
        adults = _output(store, artifacts, run_id, "adults", "return")
        assert adults["name"].tolist() == ["ann", "cy"]
        assert _output(store, artifacts, run_id, "count", "n") == 2
        assert _output(store, artifacts, run_id, "report", "double") == 4


SPARK_FLOW = """
name: spark_on_ray
steps:
  - id: users
    type: sql
    config:
      query: >-
        select * from (values ('ann', 34, 'eu'), ('bob', 17, 'us'), ('cy', 51, 'eu'),
        ('dee', 40, 'us')) t(name, age, region)
      result: table
  - id: regions
    type: spark
    config:
      file: jobs.py
      function: adults_by_region
      master: "local[1]"
      conf:  # a JVM that compiles less starts in half the CPU time: a small job's choice
        spark.driver.extraJavaOptions: "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
        spark.sql.shuffle.partitions: "1"
    inputs: {users: "${{ steps.users }}", min_age: 18}
"""

SPARK_JOBS = """
from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def adults_by_region(spark: SparkSession, users: DataFrame, min_age: int) -> dict:
    spark.sql("create database if not exists kaon_on_ray")  # makes the warehouse folder
    adults = users.where(F.col("age") >= min_age)
    counts = adults.groupBy("region").agg(F.count("*").alias("n")).orderBy("region")
    return {
        "counts": counts,
        "master": spark.sparkContext.master,
        "warehouse": spark.conf.get("spark.sql.warehouse.dir"),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }
"""


def test_a_spark_step_runs_in_a_ray_task(tmp_path: Path, ray_address: str) -> None:
    """A local-master Spark job as the driver in a Ray task: its pandas input arrives through
    the artifact store as a Spark DataFrame, its result comes back as a table, and Spark SQL's
    warehouse lands in a temporary folder, not in the worker's (or the repository's) folder."""
    (tmp_path / "flow.yaml").write_text(SPARK_FLOW)
    (tmp_path / "jobs.py").write_text(SPARK_JOBS)
    repo = Path(__file__).resolve().parents[3]
    with _ran_on_ray(tmp_path, ray_address, workers=2) as (store, artifacts, run_id):
        counts = _output(store, artifacts, run_id, "regions", "counts")
        assert counts.to_dict("records") == [{"region": "eu", "n": 2}, {"region": "us", "n": 1}]
        assert _output(store, artifacts, run_id, "regions", "master") == "local[1]"
        assert _output(store, artifacts, run_id, "regions", "pid") != os.getpid()
        warehouse = str(_output(store, artifacts, run_id, "regions", "warehouse"))
        warehouse = warehouse.removeprefix("file:")
        assert warehouse.startswith(tempfile.gettempdir()), warehouse
        assert os.path.isdir(warehouse), warehouse
        cwd = Path(_output(store, artifacts, run_id, "regions", "cwd"))
        for folder in {cwd, repo, tmp_path}:
            assert not (folder / "spark-warehouse").exists(), folder

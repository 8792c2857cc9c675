"""PySpark functions run by the spark step type tests."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def users_by_region(spark: SparkSession, users: DataFrame, min_age: int) -> DataFrame:
    """``users`` arrives as a Spark DataFrame because of its annotation."""
    print("partitions:", spark.conf.get("spark.sql.shuffle.partitions"))
    adults = users.where(F.col("age") >= min_age)
    return adults.groupBy("region").agg(F.count("*").alias("n")).orderBy("region")


def train_global(spark: SparkSession, users: Any, rows: pd.DataFrame) -> dict[str, Any]:
    """``users`` is converted by config (``spark_inputs``); ``rows`` stays pandas."""
    mean_age = users.agg(F.avg("age")).first()[0]
    return {"model": {"mean_age": mean_age, "rows": len(rows)}, "table": users.limit(2)}


def settings(spark: SparkSession) -> dict[str, str]:
    return {
        "master": spark.sparkContext.master,
        "memory": spark.conf.get("spark.driver.memory"),
        "partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    }


def warehouse(spark: SparkSession) -> str:
    """Where Spark SQL keeps managed tables; creating a database makes Spark create it."""
    spark.sql("create database if not exists kaon_litter_check")
    return str(spark.conf.get("spark.sql.warehouse.dir"))


def no_spark_argument(x: int) -> int:
    return x + 1


def missing_table(spark: SparkSession) -> Any:
    return spark.sql("select * from no_such_table").collect()


def failing_udf(spark: SparkSession) -> Any:
    @F.udf("int")  # type: ignore[untyped-decorator]
    def explode(value):  # type: ignore[no-untyped-def]  # no hints: Spark reads them
        raise ValueError(f"cannot score row {value}")

    return spark.range(2).select(explode("id")).collect()


def plain_python_error(spark: SparkSession) -> Any:
    raise KeyError("region")


def slow_job(spark: SparkSession) -> Any:
    @F.udf("int")  # type: ignore[untyped-decorator]
    def sleepy(value):  # type: ignore[no-untyped-def]  # no hints: Spark reads them
        time.sleep(30)
        return value

    return spark.range(2).select(sleepy("id")).collect()

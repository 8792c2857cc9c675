"""A relative database path in a SQL step's ``url`` (``duckdb:///data/p.duckdb``,
``sqlite:///data/p.db``) is a file beside the workflow, as a relative ``file`` is: it used
to resolve against the folder ``kaon run`` was started from, so the same workflow read or
wrote another database (or failed: "Cannot open file") depending on where it was run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from kaon.dsl.loader import load_workflow
from kaon.model.specs import TaskSpec
from kaon.steptypes.context import StepContext
from kaon.steptypes.sql import SqlStepType

FLOW_YAML = """\
name: persisted
steps:
  - id: write
    type: sql
    config:
      query: "create table t as select 42 as a"
      url: "duckdb:///data/p.duckdb"
      result: none
  - id: lite
    type: sql
    config: {query: "create table t as select 7 as a", url: "sqlite:///data/p.db", result: none}
  - id: memory
    type: sql
    config: {query: "select 1 as a", url: "duckdb:///:memory:", result: scalar}
"""

FLOW_PY = """\
import kaon

@kaon.workflow
def persisted():
    kaon.task(
        "sql",
        {"query": "create table t as select 42 as a", "url": "duckdb:///data/p.duckdb",
         "result": "none"},
        id="write",
    )
"""


def _run(config: dict[str, Any]) -> Any:
    ctx = StepContext(("run-1", 1, 1), "q", "wf", {}, lambda event: None, extra={})
    return SqlStepType().run(ctx, config, {})


def _config(spec_file: Path, step: str) -> dict[str, Any]:
    found = dict(load_workflow(str(spec_file)).graph.walk())[step]
    assert isinstance(found, TaskSpec)
    return dict(found.config)


@pytest.mark.parametrize("name", ["flow.yaml", "flow.py"])
def test_a_relative_duckdb_file_is_beside_the_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    project = tmp_path / "proj"
    (project / "data").mkdir(parents=True)
    (project / name).write_text(FLOW_YAML if name.endswith(".yaml") else FLOW_PY)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert _run(_config(project / name, "write")) is None
    assert not (elsewhere / "data" / "p.duckdb").exists()
    connection = duckdb.connect(str(project / "data" / "p.duckdb"))
    assert connection.execute("select a from t").fetchall() == [(42,)]
    connection.close()


def test_a_relative_sqlite_file_is_beside_the_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    (project / "data").mkdir(parents=True)
    (project / "flow.yaml").write_text(FLOW_YAML)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert _run(_config(project / "flow.yaml", "lite")) is None
    assert (project / "data" / "p.db").exists()
    assert not (elsewhere / "data" / "p.db").exists()
    assert _run(_config(project / "flow.yaml", "memory")) == 1

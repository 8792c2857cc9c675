"""A pushed SQL step reads the files pushed with it by a relative path.

A push carries the ``.json`` and ``.txt`` files beside the workflow for its steps to read, and
a shell step, a notebook or an R script runs in that folder. A DuckDB query's relative path
(``read_json_auto('cfg.json')``) was resolved in the worker's working directory only: on a
server it failed (``No files found that match the pattern "cfg.json"``), and locally it
worked only when ``kaon run`` was started in the workflow's folder. DuckDB now also searches
the folder of the step's SQL file, so each version reads its own pushed file.
"""

from __future__ import annotations

from kaon.api.deps import Services
from kaon.engine.engine import Engine
from kaon.executors.inline import InlineExecutor
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL

FLOW = """name: sqlread
steps:
  - id: q
    type: sql
    config: {file: q.sql, result: scalar}
"""


def test_each_version_reads_its_own_pushed_file(services: Services) -> None:
    for value in ("one", "two"):
        files = {
            "q.sql": "SELECT v FROM read_json_auto('cfg.json')\n",
            "cfg.json": f'{{"v": "{value}"}}\n',
        }
        services.registry.push(FLOW, "flow.yaml", LOCAL_PRINCIPAL, files=files)
    engine = Engine(
        services.store, InlineExecutor(), services.runs.artifacts, localize=services.runs.localize
    )
    seen = []
    try:
        for version in (1, 2, 1):
            run = services.registry.start_run("sqlread", {}, LOCAL_PRINCIPAL, version=version)
            engine.add_run(run.id)
            status = engine.run_until_done(run.id)
            step = {s.path: s for s in services.runs.run_detail(run.id).steps}["q"]
            assert status is RunStatus.SUCCEEDED, step.error
            seen.append(step.outputs["return"].value)
    finally:
        engine.close()
    assert seen == ["one", "two", "one"]

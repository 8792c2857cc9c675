"""A YAML step's ``python: helper:compute`` names the ``helper.py`` beside the YAML file.

``MODULE:FUNCTION`` was imported from ``sys.path`` only: with the ``helper.py`` beside
``flow.yaml`` it ran locally when ``kaon run`` was started in that folder (and failed from
any other), a push carrying ``helper.py`` was refused with ``No module named 'helper'``, and
where a ``helper`` was importable it was one module under its bare name for every workflow
and version. A module file beside the YAML file is now that file, loaded as the version's
code, as ``python: helper.py:compute`` is.
"""

from __future__ import annotations

from pathlib import Path

from kaon.api.deps import Services
from kaon.dsl.loader import load_workflow
from kaon.engine.engine import Engine
from kaon.executors.inline import InlineExecutor
from kaon.model.specs import TaskSpec
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL

FLOW = "name: ymod\nsteps:\n  - id: c\n    python: helper:compute\n"


def _helper(value: str) -> str:
    return f"def compute():\n    return {value!r}\n"


def test_a_module_beside_the_yaml_is_its_file(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "helper.py").write_text(_helper("one"))
    step = load_workflow(str(tmp_path / "flow.yaml")).graph.steps[0]
    assert isinstance(step, TaskSpec)
    assert step.config == {"file": str((tmp_path / "helper.py").resolve()), "function": "compute"}


def test_each_pushed_version_runs_its_own_helper(services: Services) -> None:
    for value in ("one", "two"):
        files = {"helper.py": _helper(value)}
        services.registry.push(FLOW, "flow.yaml", LOCAL_PRINCIPAL, files=files)
    engine = Engine(
        services.store, InlineExecutor(), services.runs.artifacts, localize=services.runs.localize
    )
    seen = []
    try:
        for version in (1, 2):
            run = services.registry.start_run("ymod", {}, LOCAL_PRINCIPAL, version=version)
            engine.add_run(run.id)
            assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
            steps = {s.path: s for s in services.runs.run_detail(run.id).steps}
            seen.append(steps["c"].outputs["return"].value)
    finally:
        engine.close()
    assert seen == ["one", "two"]

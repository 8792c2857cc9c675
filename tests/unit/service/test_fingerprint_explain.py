"""The cache key is the code, not where it was loaded from: the same steps run from the Python
front end then from YAML (or from a copy of the folder, as a pushed bundle is) are cached, and
changing a constant a step reads re-executes exactly that step, with `explain` naming it."""

from __future__ import annotations

import pathlib
import shutil
import textwrap
from collections.abc import Iterator

import pytest

from kaon.dsl.loader import load_workflow
from kaon.model.status import StepStatus
from kaon.service import LocalService, Settings

PIPELINE = """
    import threading

    FACTOR = 2
    UNUSED = "left alone"
    LOCK = threading.Lock()

    def scale(x):
        with LOCK:
            return x * FACTOR

    def base():
        return 3

    def scaled(x):
        return scale(x)
"""
FLOW_PY = """
    import pipeline

    import kaon

    base = kaon.step(cache=True)(pipeline.base)
    scaled = kaon.step(cache=True)(pipeline.scaled)

    @kaon.workflow(name="fp")
    def fp() -> None:
        scaled(base())
"""
FLOW_YAML = """
    name: fp
    defaults: {cache: true}
    steps:
      - id: base
        python: pipeline.py:base
      - id: scaled
        python: pipeline.py:scaled
        inputs: {x: "${{ steps.base }}"}
"""


def _project(folder: pathlib.Path, factor: int = 2) -> pathlib.Path:
    folder.mkdir(parents=True)
    pipeline = textwrap.dedent(PIPELINE).replace("FACTOR = 2", f"FACTOR = {factor}")
    (folder / "pipeline.py").write_text(pipeline)
    (folder / "flow.py").write_text(textwrap.dedent(FLOW_PY))
    (folder / "flow.yaml").write_text(textwrap.dedent(FLOW_YAML))
    return folder


@pytest.fixture
def service(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalService]:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    service = LocalService(Settings(home=tmp_path / "home", executor="inline"))
    yield service
    service.close()


def _run(service: LocalService, target: pathlib.Path) -> tuple[str, dict[str, StepStatus]]:
    run_id = service.create_run(load_workflow(str(target)), {}).id
    assert service.execute(run_id).value == "succeeded", service.get_run(run_id).error
    rows = {r.path: r.status for r in service.store.step_runs(run_id)}
    return run_id, rows


def test_python_then_yaml_then_a_copy_is_cached_and_a_constant_is_named(
    service: LocalService, tmp_path: pathlib.Path
) -> None:
    first = _project(tmp_path / "v1")
    _, rows = _run(service, first / "flow.py")
    assert set(rows.values()) == {StepStatus.SUCCEEDED}
    _, rows = _run(service, first / "flow.yaml")
    assert set(rows.values()) == {StepStatus.CACHED}, rows
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    _, rows = _run(service, copy / "flow.yaml")
    assert set(rows.values()) == {StepStatus.CACHED}, rows

    changed = _project(tmp_path / "v2", factor=10)
    run_id, rows = _run(service, changed / "flow.yaml")
    assert rows == {"base": StepStatus.CACHED, "scaled": StepStatus.SUCCEEDED}
    view = service.experiments.explain(run_id, "scaled")
    assert view.verdict == "changed"
    assert [c.component for c in view.changes] == ["code: constant FACTOR in pipeline.py changed"]
    assert "constant FACTOR in pipeline.py" in view.message
    assert view.not_covered == ["pipeline.py:LOCK (lock)"]
    assert service.experiments.explain(run_id, "base").not_covered == []

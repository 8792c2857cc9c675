"""Pushed code is versioned data: each bundle is loaded in a namespace of its own.

Two versions of a workflow whose step imports a sibling ``helper.py``, and another workflow
with a ``helper.py`` of its own, run on one engine with one warm worker process: every run
gets its own version's module, in the worker and in the pushing (validating) process.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.api.app import build_services
from kaon.api.deps import Services
from kaon.engine.engine import Engine
from kaon.executors.process import ProcessExecutor
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL
from kaon.service.settings import Settings
from kaon.steptypes.fingerprint import code_fingerprint
from kaon.steptypes.python import resolve_function

FLOW = """
import kaon
import helper


@kaon.step
def answer() -> object:
    return helper.value()


@kaon.workflow
def {name}() -> None:
    answer()
"""

FLOW_V3 = """
import kaon
from helper import extra


@kaon.step
def answer() -> object:
    return extra()


@kaon.workflow
def versioned() -> None:
    answer()
"""


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(Settings.from_env(home=str(tmp_path / "home"), executor="process"))
    try:
        yield built
    finally:
        built.runs.close()


def _push(services: Services, name: str, helper: str, source: str | None = None) -> int:
    text = source if source is not None else FLOW.format(name=name)
    pushed = services.registry.push(text, "flow.py", LOCAL_PRINCIPAL, files={"helper.py": helper})
    return pushed.version


def _helper(value: object) -> str:
    return f"def value():\n    return {value!r}\n"


def _answer(services: Services, engine: Engine, workflow: str, version: int) -> object:
    run = services.registry.start_run(workflow, {}, LOCAL_PRINCIPAL, version=version)
    engine.add_run(run.id)
    assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
    steps = {s.path: s for s in services.runs.run_detail(run.id).steps}
    return steps["answer"].outputs["return"].value


def test_versions_and_workflows_never_share_modules(services: Services) -> None:
    assert _push(services, "versioned", _helper("one")) == 1
    assert _push(services, "versioned", _helper("two")) == 2
    assert _push(services, "other_team", _helper("other")) == 1
    extra = _helper("unused") + "\ndef extra():\n    return 'three'\n"
    assert _push(services, "versioned", extra, FLOW_V3) == 3  # validated with its own helper
    engine = Engine(
        services.store,
        ProcessExecutor(workers=1),
        services.runs.artifacts,
        localize=services.runs.localize,  # as the server's engine: stored paths made its own
    )
    try:
        answers = [
            _answer(services, engine, "versioned", 1),
            _answer(services, engine, "versioned", 2),
            _answer(services, engine, "other_team", 1),
            _answer(services, engine, "versioned", 3),
            _answer(services, engine, "versioned", 1),
        ]
    finally:
        engine.close()
    assert answers == ["one", "two", "other", "three", "one"]
    assert "helper" not in sys.modules  # no bundle module under its bare name


def test_fingerprints_follow_each_versions_helper(services: Services) -> None:
    prints = []
    for value in ("one", "two", "three"):
        _push(services, "versioned", _helper(value))
        latest = services.registry.versions("versioned")[-1]
        spec = services.registry.bundles.localize(services.registry.spec(latest.definition_hash))
        config = spec.graph.steps[0].config  # type: ignore[attr-defined]
        prints.append(code_fingerprint(resolve_function(config)))
    assert len(set(prints)) == 3

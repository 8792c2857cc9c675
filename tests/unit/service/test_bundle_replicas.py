"""Pushed code runs on every replica: replicas share the database and the artifact store,
not their homes (each container its own volume)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.api.app import build_services
from kaon.api.deps import Services
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL
from kaon.service.bundle_files import BUNDLE_ROOT
from kaon.service.settings import Settings

FLOW = """
import kaon
import helper


@kaon.step
def scaled(n: int) -> int:
    return helper.scale(n)


@kaon.workflow
def scaler(n: int = 2) -> None:
    scaled(n)
"""

QUERY_FLOW = """
name: counted
steps:
  - id: q
    type: sql
    config: {file: count.sql}
"""


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Services, Services]]:
    """Two servers' services over one database and one artifact store, each with its own
    home (so its own ``sources``)."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    artifacts = str(tmp_path / "artifacts")
    made = [
        build_services(
            Settings.from_env(
                home=str(tmp_path / name), db_url=db, artifact_url=artifacts, executor="inline"
            )
        )
        for name in ("r1", "r2")
    ]
    try:
        yield made[0], made[1]
    finally:
        for services in made:
            services.runs.close()


def test_a_version_pushed_through_one_replica_runs_on_another(
    replicas: tuple[Services, Services],
) -> None:
    """It failed at its first step (``FileNotFoundError: .../r1/sources/<digest>/flow.py``),
    and pushing the same file through the second replica made a new version."""
    first, second = replicas
    pushed = first.registry.push(
        FLOW, "flow.py", LOCAL_PRINCIPAL, files={"helper.py": "def scale(n):\n    return n * 7\n"}
    )
    stored = first.store.get_definition(pushed.definition_hash).spec
    [task] = stored["graph"]["steps"]
    assert task["config"]["file"].startswith(f"{BUNDLE_ROOT}/")  # no replica's home in it
    assert not second.registry.sources_dir.exists()  # nothing of it in the second home yet
    shutil.rmtree(first.registry.sources_dir)  # the first home is on another machine
    run = second.registry.start_run("scaler", {"n": 3}, LOCAL_PRINCIPAL)
    assert second.runs.execute(run.id) is RunStatus.SUCCEEDED, second.store.get_run(run.id).error
    assert second.runs.run_detail(run.id).steps[0].outputs["return"].value == 21
    [folder] = second.registry.sources_dir.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["flow.py", "helper.py"]
    again = second.registry.push(
        FLOW, "flow.py", LOCAL_PRINCIPAL, files={"helper.py": "def scale(n):\n    return n * 7\n"}
    )
    assert (again.version, again.created) == (1, False)
    assert again.definition_hash == pushed.definition_hash


def test_a_lost_home_is_written_again_and_a_match_finds_the_version(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    files = {"helper.py": "def scale(n):\n    return n + 1\n"}
    first.registry.push(FLOW, "flow.py", LOCAL_PRINCIPAL, files=files)
    shutil.rmtree(first.registry.sources_dir)  # a replica's volume replaced
    run = first.registry.start_run("scaler", {"n": 1}, LOCAL_PRINCIPAL)
    assert first.runs.execute(run.id) is RunStatus.SUCCEEDED, first.store.get_run(run.id).error
    found = second.registry.match("scaler", FLOW, "flow.py", LOCAL_PRINCIPAL, files=files)
    assert found.version == 1


def test_a_sql_steps_file_is_found_on_the_other_replica(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    first.registry.push(
        QUERY_FLOW, "counted.yaml", LOCAL_PRINCIPAL, files={"count.sql": "SELECT 41 + 1 AS n\n"}
    )
    shutil.rmtree(first.registry.sources_dir)  # the first home is on another machine
    run = second.registry.start_run("counted", {}, LOCAL_PRINCIPAL)
    assert second.runs.execute(run.id) is RunStatus.SUCCEEDED, second.store.get_run(run.id).error

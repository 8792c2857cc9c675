"""The server refuses to resume or restart a run a local command created (its files are that
machine's): its engine never claims one, so the run would wait for ever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaon.api.deps import Services
from kaon.engine import operations
from kaon.model.specs import GraphSpec, TaskSpec, WorkflowSpec
from kaon.model.status import RunStatus
from kaon.service import LocalService, Settings
from kaon.store.base import WriteBatch

SPEC = WorkflowSpec(name="w", graph=GraphSpec(steps=(TaskSpec(id="a", step_type="shell"),)))


def _local_run(services: Services, tmp_path: Path, status: RunStatus) -> str:
    with LocalService(Settings.from_env(home=str(tmp_path / "home"))) as local:
        run_id = local.create_run(SPEC, {}).id
    batch = WriteBatch()
    batch.update_run(run_id, status=status)
    services.store.write(batch)
    return run_id


def test_resume_and_restart_of_a_local_run_are_refused(
    services: Services, client: Any, tokens: dict[str, str], tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {tokens['admin']}"}
    running = _local_run(services, tmp_path, RunStatus.RUNNING)
    answer = client.post(f"/runs/{running}/resume", headers=auth)
    assert answer.status_code == 409, answer.text
    assert f"kaon resume {running}" in answer.text
    failed = _local_run(services, tmp_path, RunStatus.FAILED)
    answer = client.post(f"/runs/{failed}/restart", headers=auth)
    assert answer.status_code == 409, answer.text
    assert f"kaon restart {failed}" in answer.text
    assert services.store.get_run(failed).status is RunStatus.FAILED


def test_a_server_run_is_still_resumed(
    services: Services, client: Any, tokens: dict[str, str]
) -> None:
    run = operations.create_run(services.store, SPEC, {})
    answer = client.post(
        f"/runs/{run.id}/resume", headers={"Authorization": f"Bearer {tokens['admin']}"}
    )
    assert answer.status_code == 200, answer.text

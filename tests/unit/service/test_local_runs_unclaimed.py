"""A run a local command creates (``kaon run``, ``kaon.run``, ``kaon.start``) on a home a
server also serves is the local command's: its code is files of that machine, which the
server cannot load (an unpushed file). The server's engine took it between its creation and
the local engine's lease, then failed it; now it never claims one, and ``kaon resume`` still
drives one left behind by a crashed ``kaon run``. Runs made for the server are claimed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.api.app import build_services
from kaon.api.deps import Services
from kaon.engine import operations
from kaon.engine.engine import Engine
from kaon.executors.inline import InlineExecutor
from kaon.model.status import RunStatus
from kaon.service import LocalService, Settings
from kaon.store.base import WriteBatch

FLOW = """\
import kaon


@kaon.step
def one() -> int:
    return 1


@kaon.workflow
def flow():
    one()
"""


@pytest.fixture
def home(tmp_path: Path) -> str:
    return str(tmp_path / "home")


@pytest.fixture
def server(home: str) -> Iterator[Services]:
    """A server's services on ``home`` with its engine serving (claiming every 20 ms)."""
    services = build_services(Settings.from_env(home=home, executor="inline"))
    engine = Engine(
        services.store, InlineExecutor(), services.runs.artifacts, localize=services.runs.localize
    )
    thread = threading.Thread(target=lambda: engine.serve(claim_every_s=0.02), daemon=True)
    thread.start()
    try:
        yield services
    finally:
        engine.stop()
        thread.join(10)
        engine.close()
        services.runs.close()


@pytest.fixture
def local(home: str, tmp_path: Path) -> Iterator[LocalService]:
    service = LocalService(Settings.from_env(home=home, executor="inline"))
    try:
        yield service
    finally:
        service.close()


def _unpushed(tmp_path: Path) -> str:
    file = tmp_path / "work" / "sweep.py"
    file.parent.mkdir()
    file.write_text(FLOW)
    return f"{file}:flow"


def test_a_local_run_is_not_claimed_by_a_server_on_the_same_home(
    server: Services, local: LocalService, tmp_path: Path
) -> None:
    spec = local.validate(_unpushed(tmp_path))
    created = local.create_run(spec, {})
    time.sleep(0.5)  # many claiming passes of the server's engine
    record = local.store.get_run(created.id)
    assert (record.status, record.owner) == (RunStatus.PENDING, None)
    assert local.execute(created.id) is RunStatus.SUCCEEDED


def test_a_crashed_local_run_is_left_to_kaon_resume(
    server: Services, local: LocalService, tmp_path: Path
) -> None:
    spec = local.validate(_unpushed(tmp_path))
    created = local.create_run(spec, {})
    batch = WriteBatch()  # its `kaon run` started it and was killed: a lapsed lease
    batch.update_run(created.id, status=RunStatus.RUNNING, owner="gone:1:x", lease_until=1.0)
    local.store.write(batch)
    time.sleep(0.5)
    assert local.store.get_run(created.id).owner == "gone:1:x"
    assert local.execute(created.id) is RunStatus.SUCCEEDED  # kaon resume


def test_a_run_made_for_the_server_is_still_claimed(
    server: Services, local: LocalService, tmp_path: Path
) -> None:
    spec = local.validate(_unpushed(tmp_path))
    run = operations.create_run(server.store, spec, {})  # as the server's API and triggers do
    deadline = time.monotonic() + 20
    while not server.store.get_run(run.id).status.is_terminal and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.store.get_run(run.id).status is RunStatus.SUCCEEDED

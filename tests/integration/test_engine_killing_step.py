"""A step that stops its own engine (``os._exit`` in an inline step: the engine's process
dies before the step's start is committed) is failed after a bounded number of resumes, with
a reason that names the likely cause, instead of running again on every ``kaon resume``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kaon.engine.containers import UNSTARTED_LOSS_LIMIT
from kaon.model.status import RunStatus, StepStatus
from kaon.store import open_store

KAON = [sys.executable, "-m", "kaon.cli.main"]

FLOW = """
import os
from pathlib import Path

import kaon


@kaon.step
def fine() -> int:
    return 1


@kaon.step
def boom(x: int) -> int:
    with Path(os.environ["KAON_TEST_LEDGER"]).open("a") as ledger:
        ledger.write("boom\\n")
    os._exit(9)


@kaon.workflow
def killer():
    boom(fine())
"""


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_step_that_kills_its_engine_fails_after_a_bounded_number_of_resumes(
    tmp_path: Path,
) -> None:
    flow, ledger = tmp_path / "killer.py", tmp_path / "ledger"
    flow.write_text(FLOW)
    env = dict(os.environ, KAON_HOME=str(tmp_path / "home"), KAON_TEST_LEDGER=str(ledger))
    first = subprocess.run(
        [*KAON, "run", str(flow), "-e", "inline"], env=env, capture_output=True, text=True
    )
    assert first.returncode == 9, first.stderr
    run_id = first.stdout.splitlines()[0].strip()
    resumes = 0
    while True:
        resumed = subprocess.run([*KAON, "resume", run_id], env=env, capture_output=True, text=True)
        if resumed.returncode != 9:
            break
        resumes += 1
        assert resumes < 2 * UNSTARTED_LOSS_LIMIT, "the step runs again on every resume"
    assert resumed.returncode == 1, resumed.stderr
    store = open_store(f"sqlite:///{tmp_path / 'home' / 'kaon.db'}")
    try:
        assert store.get_run(run_id).status is RunStatus.FAILED
        row = store.get_step_run(run_id, "boom")
        assert row.error is not None and row.error["type"] == "EngineLost"
        assert f"stopped {UNSTARTED_LOSS_LIMIT} times in a row" in row.error["message"]
        assert store.get_step_run(run_id, "fine").status is StepStatus.SUCCEEDED
    finally:
        store.close()
    assert ledger.read_text().split() == ["boom"] * UNSTARTED_LOSS_LIMIT

"""The local service layer: `kaon.run` from Python, kills, settings errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import kaon
from kaon.dsl.loader import load_workflow
from kaon.errors import (
    ConfigurationError,
    DefinitionError,
    InvalidActionError,
    NotFoundError,
    ParameterError,
)
from kaon.model.status import RunStatus
from kaon.model.values import decode_outputs, outputs_value
from kaon.service import LocalService, Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
import cli_flows
import progress_flows


def test_kaon_run_from_python_records_in_the_store(tmp_path: Path) -> None:
    detail = kaon.run(cli_flows.squares, n=3, home=str(tmp_path))
    assert detail.status == "succeeded" and detail.tasks == {"succeeded": 5}
    again = kaon.run(f"{cli_flows.__file__}:squares", n=3, home=str(tmp_path))
    assert again.id != detail.id
    with LocalService(Settings.from_env(home=str(tmp_path))) as service:
        assert {r.id for r in service.list_runs()} == {detail.id, again.id}


def test_kaon_run_rejects_bad_parameters(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"params\.n"):
        kaon.run(cli_flows.squares, n="many", home=str(tmp_path))


def test_unknown_executor_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown executor 'warp'"):
        LocalService(Settings.from_env(home=str(tmp_path), executor="warp"))


def test_kill_pending_run_and_refuse_step_cancel_without_engine(tmp_path: Path) -> None:
    with LocalService(Settings.from_env(home=str(tmp_path), executor="inline")) as service:
        created = service.create_run(cli_flows.squares.spec, {})
        with pytest.raises(InvalidActionError, match="not being driven"):
            service.kill(created.id, step="numbers")
        assert service.kill(created.id).status == "cancelled"
        with pytest.raises(InvalidActionError, match="already cancelled"):
            service.kill(created.id)


def test_a_prepared_executor_is_the_one_the_run_executes_on(tmp_path: Path) -> None:
    """``prepare_execution`` (``kaon run`` calls it before loading the workflow) boots a
    worker that ``execute`` then uses; a service closed without executing stops it."""
    settings = Settings.from_env(home=str(tmp_path), executor="process", workers=1)
    with LocalService(settings) as service:
        service.prepare_execution()
        prepared = service._executor
        assert prepared is not None
        (pid,) = prepared.worker_pids()  # type: ignore[attr-defined]
        created = service.create_run(cli_flows.squares.spec, {"n": 2})
        assert service.execute(created.id).value == "succeeded"
        assert service._executor is None  # used up, and shut down with the engine
        ran_on = {a.worker.split(":")[1] for a in service.store.attempts(created.id)}
        assert ran_on == {str(pid)}
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    with LocalService(settings) as service:
        service.prepare_execution()
        (pid,) = service._executor.worker_pids()  # type: ignore[union-attr]
    with pytest.raises(ChildProcessError):  # closed without a run: the worker is stopped
        os.waitpid(pid, os.WNOHANG)


_HOLD_LOCK = """
import sys, time
from kaon.engine.liveness import EngineLock
lock = EngineLock(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_steering_a_run_whose_engine_died_leaves_it_resumable_at_once(tmp_path: Path) -> None:
    """The proof that a runner died (its free lock file) is used up by the first command
    that takes it: that command also releases the dead runner's lease, so a later command
    does not wait on the engine that is gone and a resume takes the run at once (it used to
    be refused for the rest of the lease)."""
    from kaon.engine.liveness import new_owner
    from kaon.model.status import StepStatus

    with LocalService(Settings.from_env(home=str(tmp_path), executor="inline")) as service:
        created = service.create_run(cli_flows.squares.spec, {"n": 2})
        owner = new_owner() + "-killed"
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, owner], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert service.store.acquire_lease(created.id, owner, 60.0) is not None
        holder.kill()  # kill -9 of the runner: its lease stays, the kernel drops its lock
        holder.wait(10)
        holder.stdout.close()
        with pytest.raises(InvalidActionError, match="not being driven"):
            service.kill(created.id, step="numbers")
        assert service.store.get_run(created.id).owner is None  # released with the proof
        assert service.skip(created.id, "numbers", output=[5], has_output=True) == "queued"
        assert service.execute(created.id) is RunStatus.SUCCEEDED  # no wait for the lease
        numbers = service.store.get_step_run(created.id, "numbers")
        assert numbers.status is StepStatus.SKIPPED
        assert service.store.get_step_run(created.id, "total").status is StepStatus.SUCCEEDED


def _echo_workflow(tmp_path: Path, text: str) -> Any:
    """The YAML workflow ``text``, whose python steps call ``steps.py:echo``."""
    (tmp_path / "steps.py").write_text("def echo(value):\n    return value\n")
    (tmp_path / "flow.yaml").write_text(text)
    return load_workflow(str(tmp_path / "flow.yaml"))


def _drive_until_paused(
    service: LocalService, run_id: str
) -> tuple[threading.Thread, dict[str, RunStatus]]:
    """Execute the run in a thread until it pauses at a breakpoint; the thread puts the
    run's final status in the dict under ``"s"``."""
    result: dict[str, RunStatus] = {}
    driver = threading.Thread(target=lambda: result.update(s=service.execute(run_id)))
    driver.start()
    deadline = time.monotonic() + 20
    while service.store.get_run(run_id).status is not RunStatus.PAUSED:
        assert time.monotonic() < deadline and driver.is_alive()
        time.sleep(0.05)
    return driver, result


_COMPUTED = """
name: computed
params:
  k: {type: int, default: 4}
  width: {type: int, default: "${{ params.k * 2 }}"}
steps:
  - id: a
    python: steps.py:echo
    inputs: {value: 1}
  - id: b
    needs: [a]
    python: steps.py:echo
    inputs: {value: "${{ params.width }}"}
"""


@pytest.mark.parametrize(
    ("given", "expected"), [({}, {"k": 5, "width": 10}), ({"width": 3}, {"k": 5, "width": 3})]
)
def test_continue_with_a_new_parameter_recomputes_a_computed_default(
    tmp_path: Path, given: dict[str, int], expected: dict[str, int]
) -> None:
    """``kaon continue -p k=5``: ``width`` (computed from ``k``) follows, unless the run was
    given a ``width`` of its own."""
    spec = _echo_workflow(tmp_path, _COMPUTED)
    settings = Settings.from_env(home=str(tmp_path / "home"), executor="inline")
    with LocalService(settings) as runner, LocalService(settings) as steerer:
        run_id = runner.create_run(spec, given, breakpoints=["b"]).id
        driver, result = _drive_until_paused(runner, run_id)
        steerer.continue_run(run_id, params={"k": "5"}, from_strings=True)
        driver.join(20)
        assert result["s"] is RunStatus.SUCCEEDED
        assert steerer.store.get_run(run_id).params == expected
        row = steerer.store.get_step_run(run_id, "b")
        value = steerer.artifacts.get(outputs_value(decode_outputs(row.outputs)))
        assert value == expected["width"]


_NESTED = """
name: nested
steps:
  - id: first
    python: steps.py:echo
    inputs: {value: 1}
  - id: each
    needs: [first]
    foreach: "[1, 2, 3]"
    concurrency: 1
    steps:
      - id: work
        python: steps.py:echo
        inputs: {value: "${{ item }}"}
"""


def test_a_step_action_the_engine_would_refuse_is_refused_at_once(tmp_path: Path) -> None:
    """A skip, cancel or continue of a step of an active run is checked before its command is
    sent: a path naming no step is not found, a finished step or an item not started yet is
    refused (an engine could only record the refusal as an event, after an answer of "ok")."""
    spec = _echo_workflow(tmp_path, _NESTED)
    settings = Settings.from_env(home=str(tmp_path / "home"), executor="inline")
    with LocalService(settings) as service:
        run_id = service.create_run(spec, {}, breakpoints=["each[0].work"]).id
        driver, result = _drive_until_paused(service, run_id)
        with pytest.raises(NotFoundError, match="no 'nope' at the top level"):
            service.skip(run_id, "nope")
        with pytest.raises(NotFoundError, match="no 'work' at the top level"):
            service.kill(run_id, step="work")
        with pytest.raises(NotFoundError, match=r"name one item or iteration of each"):
            service.skip(run_id, "each.work")
        with pytest.raises(DefinitionError, match=r"path: malformed step path 'each\[-1\]"):
            service.skip(run_id, "each[-1].work")
        with pytest.raises(InvalidActionError, match=r"step first of run .* already succeeded"):
            service.skip(run_id, "first", output=5, has_output=True)
        with pytest.raises(InvalidActionError, match=r"each\[2\] of run .* has not started"):
            service.skip(run_id, "each[2].work", output=5, has_output=True)
        with pytest.raises(InvalidActionError, match="is an item or iteration, not a step"):
            service.kill(run_id, step="each[0]")
        with pytest.raises(InvalidActionError, match=r"step each of run .* is running, not paused"):
            service.continue_run(run_id, step="each")
        assert service.store.pending_commands(run_id) == []  # nothing was sent
        service.continue_run(run_id, step="each[0].work")
        driver.join(20)
        assert result["s"] is RunStatus.SUCCEEDED


_FAILING_ITEM = """
name: failing_item
steps:
  - id: each
    foreach: "[0, 1]"
    steps:
      - id: work
        python: steps.py:echo
        inputs: {value: "${{ 10 / item }}"}
"""


def test_a_skip_of_an_item_of_a_finished_run_is_refused(tmp_path: Path) -> None:
    """``kaon skip RUN each[1]`` of a finished run marked the item's row skipped, and the
    restart that follows reopened the failed foreach and ran its failed step again: the skip
    was lost without a word (and its value never reached anything). An item is no step, on a
    finished run as on an active one; its step is (``each[1].work``)."""
    spec = _echo_workflow(tmp_path, _FAILING_ITEM)
    settings = Settings.from_env(home=str(tmp_path / "home"), executor="inline")
    with LocalService(settings) as service:
        run_id = service.create_run(spec, {}).id
        assert service.execute(run_id) is RunStatus.FAILED
        before = service.store.get_step_run(run_id, "each[1]").status
        with pytest.raises(InvalidActionError, match=r"each\[1\] is an item or iteration, not"):
            service.skip(run_id, "each[1]", output=5, has_output=True)
        assert service.store.get_step_run(run_id, "each[1]").status is before
        assert service.skip(run_id, "each[1].work", output=5, has_output=True) == "recorded"


def test_a_run_started_on_ray_is_not_resumed_on_another_executor(tmp_path: Path) -> None:
    """Its attempts may still run on the cluster after its runner was killed: resuming it on
    local workers would run them a second time, beside their copies."""
    from kaon.engine import operations
    from kaon.store.base import WriteBatch

    settings = Settings.from_env(home=str(tmp_path), executor="inline")
    with LocalService(settings) as service:
        record = operations.create_run(service.store, cli_flows.squares.spec, {}, executor="ray")
        batch = WriteBatch()
        batch.update_run(record.id, status=RunStatus.RUNNING, started_at=time.time())
        service.store.write(batch)
        with pytest.raises(InvalidActionError, match="started on the ray executor"):
            service.execute(record.id)
        assert service.store.get_run(record.id).status is RunStatus.RUNNING


def test_logs_shows_every_stored_line_not_the_first_page(tmp_path: Path) -> None:
    """A step's stored log (its first megabyte) can hold far more lines than one page of the
    store: ``kaon logs`` shows them all, through the note that names the whole log."""
    from kaon.engine import operations
    from kaon.model.status import StepStatus
    from kaon.store.base import LogRecord, StepRunRecord, WriteBatch

    with LocalService(Settings.from_env(home=str(tmp_path), executor="inline")) as service:
        run_id = operations.create_run(service.store, cli_flows.squares.spec, {}).id
        batch = WriteBatch()
        batch.insert_step_run(
            StepRunRecord(run_id, 1, "numbers", "numbers", "task", StepStatus.SUCCEEDED)
        )
        batch.logs += [LogRecord(run_id, 1, 1, 1.0, "stdout", f"line {i}") for i in range(25_000)]
        batch.logs.append(LogRecord(run_id, 1, 1, 2.0, "stderr", "kaon: log truncated"))
        service.store.write(batch)
        lines = service.logs(run_id, "numbers")
        assert len(lines) == 25_001 and lines[-1].text == "kaon: log truncated"
        assert [line.text for line in lines[:2]] == ["line 0", "line 1"]


def test_the_last_log_id_of_a_run_is_one_read(tmp_path: Path) -> None:
    """``last_log_id`` (where a restart's log tail starts) reads the run's largest log id
    once, whatever the length of its log: it used to be found by paging through the log."""
    with LocalService(Settings.from_env(home=str(tmp_path), executor="inline")) as service:
        created = service.create_run(progress_flows.crunching.spec, {"batches": 450})
        assert service.execute(created.id) is RunStatus.SUCCEEDED
        store = service.reads.reads.store
        reads: list[object] = []
        query = store.query

        def counted(key: Any, **params: Any) -> Any:  # query_value reads through it too
            reads.append(key)
            return query(key, **params)

        store.query = counted  # type: ignore[method-assign]
        try:
            last = service.last_log_id(created.id)
        finally:
            del store.query
        assert len(reads) == 1, reads
        lines = service.reads.reads.log_window(created.id, None, limit=1)
        assert last == lines[-1].id and last > 0
        assert service.last_log_id(service.create_run(progress_flows.crunching.spec, {}).id) == 0

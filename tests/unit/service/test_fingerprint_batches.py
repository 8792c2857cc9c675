"""A server's engine fingerprints pushed code in sandboxed children, one for many steps.

Each cacheable step's configuration used to cost a child of its own on the engine's thread
(a process start, and the imports of the step's module all over again: a workflow of ten
cacheable steps of a module importing scikit-learn held the engine, and every other run,
for ten such imports), including shell, SQL and notebook steps, whose fingerprint only reads
files. Now a run's cacheable configurations are fingerprinted together when it is first
probed (a module imported once), and step types whose fingerprint runs no code are
fingerprinted in the engine's process. The child's time is bounded by a third of a lease.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kaon.api.deps import Services
from kaon.artifacts import open_artifact_store
from kaon.dsl.loader import load_workflow
from kaon.engine.engine import Engine
from kaon.engine.operations import create_run
from kaon.executors.inline import InlineExecutor
from kaon.model.status import RunStatus
from kaon.server_parts import ServerOptions, build_engine
from kaon.service import fingerprint_sandbox
from kaon.service.fingerprint_sandbox import FingerprintError, IsolatedFingerprints
from kaon.service.push_sandbox import SandboxLimits
from kaon.steptypes.shell import ShellStepType
from kaon.store import open_store

FLOW = """
import kaon

with open({imports!r}, "a") as ledger:  # what a module's top-level code does each import
    ledger.write("imported\\n")


@kaon.step(cache=True)
def one() -> int:
    return 1


@kaon.step(cache=True)
def two(x: int) -> int:
    return x + 1


@kaon.step(cache=True)
def three(x: int) -> int:
    return x + 2


@kaon.workflow
def chain() -> None:
    b = two(one())
    three(b)
    kaon.shell("echo hi", id="say", cache=True)
"""


def test_a_runs_cacheable_steps_are_fingerprinted_in_one_child(tmp_path: Path) -> None:
    imports = tmp_path / "imports.txt"
    flow = tmp_path / "flow.py"
    flow.write_text(FLOW.format(imports=str(imports)))
    spec = load_workflow(f"{flow}:chain")
    imports.unlink()  # loading the definition here imported it once
    store = open_store(f"sqlite:///{tmp_path / 'kaon.db'}")
    fingerprint = IsolatedFingerprints(SandboxLimits(timeout_s=60))
    engine = Engine(
        store,
        InlineExecutor(),
        open_artifact_store(str(tmp_path / "artifacts")),
        fingerprint=fingerprint,
    )
    try:
        run = create_run(store, spec, {})
        engine.add_run(run.id)
        assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
    finally:
        engine.close()
        store.close()
    # The engine's process imported nothing; one child imported the module once for the
    # three Python steps (the inline worker's own import of the steps ran in this test's
    # process, which had the module already).
    assert imports.read_text().count("imported") == 1


def test_a_step_type_whose_fingerprint_runs_no_code_is_fingerprinted_here() -> None:
    fingerprint = IsolatedFingerprints(SandboxLimits(timeout_s=0.001))  # a child would fail
    config = {"command": "echo hi"}
    assert fingerprint("shell", config) == ShellStepType().fingerprint(config)


def test_the_fingerprint_child_may_take_a_third_of_a_lease(services: Services) -> None:
    engine = build_engine(services, ServerOptions(lease_ttl_s=30.0))
    try:
        fingerprint = engine.ctx.memo._fingerprint
        assert isinstance(fingerprint, IsolatedFingerprints)
        assert fingerprint.limits.timeout_s == 10.0
    finally:
        engine.close()


def test_a_failed_fingerprint_is_tried_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "later.py"
    module.write_text("raise RuntimeError('the data mount is not there yet')\n")
    fingerprint = IsolatedFingerprints(SandboxLimits(timeout_s=60))
    config = {"file": str(module), "function": "step"}
    with pytest.raises(FingerprintError, match="not there yet"):
        fingerprint("python", config)
    module.write_text("def step():\n    return 1\n")
    with pytest.raises(FingerprintError):  # remembered: a foreach does not retry per item
        fingerprint("python", config)
    monkeypatch.setattr(fingerprint_sandbox, "RETRY_FAILED_S", 0.0)
    assert fingerprint("python", config)  # tried again once the failure is old

"""A pushed workflow's shell steps run the scripts pushed with it.

A shell step used to run in the server's working folder, and a push carried no ``.sh`` file:
``bash prep.sh`` in a pushed YAML could not run, and a new ``prep.sh`` made no new version.
Now the step runs in the bundle's folder (its ``base_dir``, stored under the path every
replica maps to its own home), ``.sh`` files travel in the bundle, and a changed script is a
new version; the Ray executor ships the folder to a node as it ships a Python step's file.
"""

from __future__ import annotations

from pathlib import Path

from kaon.api.deps import Services
from kaon.engine.engine import Engine
from kaon.executors.base import TaskRequest
from kaon.executors.code_bundle import BundleCache, localize
from kaon.executors.inline import InlineExecutor
from kaon.model.specs import TaskSpec
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL
from kaon.service.bundle_files import BUNDLE_ROOT

FLOW = "name: scripted\nsteps:\n  - id: prep\n    shell: bash prep.sh\n"
SCRIPT = 'echo "::kaon::output said={said}"\necho "::kaon::output dir=$KAON_WORKFLOW_DIR"\n'


def _push(services: Services, said: str) -> int:
    files = {"prep.sh": SCRIPT.format(said=said)}
    return services.registry.push(FLOW, "flow.yaml", LOCAL_PRINCIPAL, files=files).version


def test_a_pushed_shell_step_runs_the_script_pushed_with_it(services: Services) -> None:
    assert _push(services, "one") == 1
    assert _push(services, "one") == 1  # the same bundle: no new version
    assert _push(services, "two") == 2  # a changed script is a new version
    stored = services.registry.spec(services.registry.versions("scripted")[-1].definition_hash)
    step = stored.graph.steps[0]
    assert isinstance(step, TaskSpec)
    assert step.config["base_dir"].startswith(f"{BUNDLE_ROOT}/")  # the same on every replica
    engine = Engine(
        services.store, InlineExecutor(), services.runs.artifacts, localize=services.runs.localize
    )
    said = []
    try:
        for version in (1, 2):
            run = services.registry.start_run("scripted", {}, LOCAL_PRINCIPAL, version=version)
            engine.add_run(run.id)
            assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
            outputs = {s.path: s for s in services.runs.run_detail(run.id).steps}["prep"].outputs
            said.append(outputs["said"].value)
            folder = Path(str(outputs["dir"].value))
            assert folder.parent == services.registry.sources_dir  # this home's bundle folder
    finally:
        engine.close()
    assert said == ["one", "two"]


def test_the_ray_bundle_of_a_shell_step_is_its_folder(tmp_path: Path) -> None:
    (tmp_path / "prep.sh").write_text("echo hi\n")
    (tmp_path / "data.csv").write_text("a,b\n")  # data: not code, not shipped
    config = {"command": "bash prep.sh", "base_dir": str(tmp_path)}
    request = TaskRequest(("r", 1, 1), "prep", "shell", config, {}, {}, "", workflow="wf")
    bundle = BundleCache().for_request(request)
    assert bundle is not None and set(bundle.files) == {"prep.sh"}
    moved = localize(request, bundle.folder, "/node/cache/x")
    assert moved.config["base_dir"] == "/node/cache/x"

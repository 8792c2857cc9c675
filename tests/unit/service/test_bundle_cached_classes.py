"""An object of a sibling module's class, reused from another version's run, loads as the class
of the step's own version.

Version 2 of a workflow changes only its file, not ``helper.py`` (version 3 changes
``helper.py`` but not its ``Box``): its ``make`` step is a cache
hit on version 1's, whose output is a ``helper.Box``. The downstream step of version 2 got an
object of version 1's ``Box`` (loaded by value, or from version 1's module when the process had
run version 1), so ``isinstance(obj, helper.Box)`` was False in a step whose own ``helper.py``
defines the same ``Box``, where a local run of the edited file gets True.
"""

from __future__ import annotations

from kaon.api.deps import Services
from kaon.engine.engine import Engine
from kaon.executors.inline import InlineExecutor
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL

FLOW = """
import kaon
import helper


@kaon.step(cache=True)
def make() -> object:
    return helper.Box("x")


@kaon.step
def use(obj: object) -> object:
    return [isinstance(obj, helper.Box), obj.show(), {note!r}]


@kaon.workflow
def boxes() -> None:
    use(make())
"""
HELPER = """
class Box:
    def __init__(self, v):
        self.v = v

    def show(self):
        return "box " + self.v
"""


def _push(services: Services, note: str, helper: str = HELPER) -> int:
    pushed = services.registry.push(
        FLOW.format(note=note), "flow.py", LOCAL_PRINCIPAL, files={"helper.py": helper}
    )
    return pushed.version


def test_a_cached_object_loads_as_its_own_versions_class(services: Services) -> None:
    assert _push(services, "v1") == 1
    assert _push(services, "v2") == 2  # helper.py unchanged
    assert _push(services, "v3", HELPER + "\nOTHER = 3\n") == 3  # Box unchanged, file not
    other_box = HELPER.replace('"box "', '"other "')
    assert _push(services, "v4", other_box) == 4  # another Box: make misses
    engine = Engine(
        services.store, InlineExecutor(), services.runs.artifacts, localize=services.runs.localize
    )
    seen = []
    try:
        for version in (1, 2, 3, 4):
            run = services.registry.start_run("boxes", {}, LOCAL_PRINCIPAL, version=version)
            engine.add_run(run.id)
            assert engine.run_until_done(run.id) is RunStatus.SUCCEEDED
            steps = {s.path: s for s in services.runs.run_detail(run.id).steps}
            seen.append((steps["make"].status, steps["use"].outputs["return"].value))
    finally:
        engine.close()
    assert seen == [
        ("succeeded", [True, "box x", "v1"]),
        ("cached", [True, "box x", "v2"]),  # was [False, ...]: version 1's Box
        ("cached", [True, "box x", "v3"]),  # helper.py changed, its Box did not
        ("succeeded", [True, "other x", "v4"]),
    ]

"""The registry service: push (validation, versions, no-op), runs of versions, signals."""

from __future__ import annotations

import re
import threading

import pytest

from kaon.api.deps import Services
from kaon.errors import (
    DefinitionError,
    InvalidActionError,
    NotFoundError,
    ParameterError,
    PermissionDeniedError,
)
from kaon.model.status import RunStatus
from kaon.service.auth import LOCAL_PRINCIPAL, Principal

FLOW = """
import kaon


@kaon.step
def double(n: int) -> int:
    return n * {factor}


@kaon.workflow
def doubler(n: int = 2) -> None:
    double(n)
"""


def test_python_push_is_content_addressed_and_runs(services: Services) -> None:
    registry = services.registry
    first = registry.push(FLOW.format(factor=2), "flow.py", LOCAL_PRINCIPAL)
    assert (first.workflow, first.version, first.created) == ("doubler", 1, True)
    again = registry.push(FLOW.format(factor=2), "flow.py", LOCAL_PRINCIPAL)
    assert not again.created and again.definition_hash == first.definition_hash
    changed = registry.push(FLOW.format(factor=3), "flow.py", LOCAL_PRINCIPAL)
    assert changed.version == 2 and changed.definition_hash != first.definition_hash
    run_v1 = registry.start_run("doubler", {"n": 5}, LOCAL_PRINCIPAL, version=1)
    run_v2 = registry.start_run("doubler", {"n": 5}, LOCAL_PRINCIPAL)
    for run, expected in ((run_v1, 10), (run_v2, 15)):
        assert services.runs.execute(run.id) is RunStatus.SUCCEEDED
        step = services.runs.run_detail(run.id).steps[0]
        assert step.outputs["return"].value == expected
    assert services.store.get_run(run_v1.id).labels == {"version": 1, "by": "local"}
    assert services.store.get_run(run_v2.id).labels["version"] == 2


def test_push_errors_name_the_pushed_file(services: Services) -> None:
    with pytest.raises(DefinitionError) as caught:
        services.registry.push("import kaon\nraise ValueError('boom')\n", "f.py", LOCAL_PRINCIPAL)
    [problem] = caught.value.problems
    assert problem.location.file == "f.py" and problem.location.line == 2
    assert "boom" in problem.message
    misspelt = "name: x\nsteps:\n  - {id: a, shell: echo, retry: {retry_on: [KeyEror]}}\n"
    with pytest.raises(DefinitionError) as caught:
        services.registry.push(misspelt, "x.yaml", LOCAL_PRINCIPAL)
    [problem] = caught.value.problems
    assert (problem.location.file, problem.location.line) == ("x.yaml", 3)
    assert "unknown exception type 'KeyEror': did you mean 'KeyError'?" in problem.message
    with pytest.raises(DefinitionError, match="bare name"):
        services.registry.push("name: x", "dir/x.yaml", LOCAL_PRINCIPAL)
    with pytest.raises(DefinitionError, match="bare name"):
        services.registry.push("name: x", "x.txt", LOCAL_PRINCIPAL)


def test_owner_groups_and_start_checks(services: Services) -> None:
    registry = services.registry
    owner = Principal("ann", "owner", ("ml",))
    registry.push(FLOW.format(factor=2), "flow.py", owner)
    assert registry.workflow("doubler").owner_group == "ml"
    with pytest.raises(PermissionDeniedError):
        registry.push(FLOW.format(factor=9), "flow.py", Principal("bob", "owner", ("data",)))
    with pytest.raises(PermissionDeniedError):
        registry.start_run("doubler", {}, Principal("eve", "operator", ("data",)))
    with pytest.raises(ParameterError):
        registry.start_run("doubler", {"n": "many"}, owner)
    with pytest.raises(NotFoundError):
        registry.start_run("ghost", {}, owner)
    with pytest.raises(NotFoundError):
        registry.start_run("doubler", {}, owner, version=7)
    registry.deactivate("doubler", owner)
    with pytest.raises(InvalidActionError, match="deactivated"):
        registry.start_run("doubler", {}, owner)
    assert registry.start_run("doubler", {}, owner, version=1).status == "pending"


def test_an_owner_cannot_hand_a_workflow_to_a_group_it_is_not_in(services: Services) -> None:
    """Moving a workflow into a group makes its runs and its steps' signals that group's: a
    team's owner could give its workflow to another team (PATCH or a push naming the group)
    and then start that team's signal-triggered runs with its own parameters."""
    registry = services.registry
    bob = Principal("bob", "owner", ("b",))
    registry.push(FLOW.format(factor=2), "flow.py", bob)
    for group in ("a", "*"):
        with pytest.raises(PermissionDeniedError, match=f"not in group '{re.escape(group)}'"):
            registry.update("doubler", bob, owner_group=group)
        with pytest.raises(PermissionDeniedError, match=f"not in group '{re.escape(group)}'"):
            registry.push(FLOW.format(factor=3), "flow.py", bob, owner_group=group)
    assert registry.workflow("doubler").owner_group == "b"
    assert [v.version for v in registry.versions("doubler")] == [1]
    both = Principal("carol", "owner", ("a", "b"))
    assert registry.update("doubler", both, owner_group="a").owner_group == "a"
    admin = Principal("root", "admin", ())
    assert registry.update("doubler", admin, owner_group="b").owner_group == "b"


def test_properties_merge_without_a_new_version(services: Services) -> None:
    registry = services.registry
    registry.push(FLOW.format(factor=2), "flow.py", LOCAL_PRINCIPAL)
    registry.update("doubler", LOCAL_PRINCIPAL, properties={"concurrency": 2, "alerts": {}})
    view = registry.update("doubler", LOCAL_PRINCIPAL, properties={"alerts": None})
    assert view.properties == {"concurrency": 2}
    assert [v.version for v in registry.versions("doubler")] == [1]
    actions = [a.action for a in services.auth.registry.audit(target="workflow:doubler")]
    assert actions == ["workflow.push", "workflow.update", "workflow.update"]
    with pytest.raises(ParameterError, match=r"properties\.run_strategy: unknown run strategy"):
        registry.update("doubler", LOCAL_PRINCIPAL, properties={"run_strategy": "sequentail"})
    assert registry.workflow("doubler").properties == {"concurrency": 2}  # nothing changed


def test_properties_changed_at_once_are_all_kept(services: Services) -> None:
    """Each PATCH merged its keys into properties it had read before its write: of 40
    concurrent PATCHes of different keys, each answered 200, 5 keys were kept (10 on
    PostgreSQL). The merge now happens in the write's transaction."""
    registry = services.registry
    registry.push(FLOW.format(factor=2), "flow.py", LOCAL_PRINCIPAL)
    registry.update("doubler", LOCAL_PRINCIPAL, properties={"gone": 1})
    changes = [{f"k{n}": n} for n in range(24)] + [{"gone": None}]
    barrier = threading.Barrier(len(changes))

    def change(properties: dict[str, int | None]) -> None:
        barrier.wait()
        registry.update("doubler", LOCAL_PRINCIPAL, properties=properties)

    threads = [threading.Thread(target=change, args=(c,)) for c in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.workflow("doubler").properties == {f"k{n}": n for n in range(24)}


def test_signals_get_ids(services: Services) -> None:
    first = services.registry.send_signal("ready", {"day": 1}, LOCAL_PRINCIPAL)
    second = services.registry.send_signal("ready", {"day": 2}, LOCAL_PRINCIPAL, dedupe_key="k")
    assert first.id is not None and second.id == first.id + 1
    assert [s.dedupe_key for s in services.store.signals(name="ready")] == [None, "k"]

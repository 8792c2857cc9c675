"""Memoization in the engine: hits, misses, what the key covers, lineage records."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conftest import E, Harness, flow, task

from kaon.engine.memo import digest
from kaon.engine.operations import create_run
from kaon.model.cache_policy import CachePolicy
from kaon.model.params import bind_params
from kaon.model.specs import ForeachSpec, GraphSpec, ParamSpec, ParamType, StepDefaults
from kaon.model.status import RunStatus, StepStatus
from kaon.model.values import ArtifactRef, Literal, RefDict, RefList
from kaon.steptypes.fingerprint import code_fingerprint


def _spec(h: Harness, version: str = "") -> object:
    state = str(h.state)
    return flow(
        task(
            "a", "add", inputs={"a": E("params.x"), "b": 1, "state": state, "name": "a"}, cache=True
        ),
        task(
            "b",
            "add",
            inputs={"a": 10, "b": 0, "state": state, "name": "b"},
            cache=True,
            cache_version=version,
        ),
        task(
            "c",
            "add",
            inputs={"a": E("steps.a + steps.b"), "state": state, "name": "c"},
            cache=True,
        ),
        params=(ParamSpec("x", ParamType.INT, 1),),
    )


def test_rerun_with_same_inputs_is_fully_cached(harness: Harness) -> None:
    spec = _spec(harness)
    status, first = harness.run(spec)  # type: ignore[arg-type]
    assert status is RunStatus.SUCCEEDED
    status, second = harness.run(spec)  # type: ignore[arg-type]
    assert status is RunStatus.SUCCEEDED
    rows = harness.rows(second)
    assert {p: r.status for p, r in rows.items()} == {p: StepStatus.CACHED for p in "abc"}
    assert rows["c"].cached_from == f"{first}:c"
    assert harness.value(second, "c") == 12
    assert (harness.count("a"), harness.count("b"), harness.count("c")) == (1, 1, 1)


def test_changed_parameter_reruns_only_what_it_reaches(inline: Harness) -> None:
    spec = _spec(inline)
    _, first = inline.run(spec)  # type: ignore[arg-type]
    status, run_id = inline.run(spec, {"x": 5})  # type: ignore[arg-type]
    assert status is RunStatus.SUCCEEDED
    rows = inline.rows(run_id)
    assert rows["a"].status is StepStatus.SUCCEEDED and rows["c"].status is StepStatus.SUCCEEDED
    assert rows["b"].status is StepStatus.CACHED
    assert inline.value(run_id, "c") == 16
    misses = [e.data["path"] for e in inline.store.events(run_id) if e.kind == "cache"]
    assert misses == ["a", "c"]  # a miss records its key's components, for `kaon explain`
    hit = [e for e in inline.store.events(run_id) if e.data.get("path") == "b"]
    assert [e.data.get("cached_from") for e in hit] == [f"{first}:b"]


def test_cache_version_forces_a_miss(inline: Harness) -> None:
    inline.run(_spec(inline))  # type: ignore[arg-type]
    _, run_id = inline.run(_spec(inline, version="2"))  # type: ignore[arg-type]
    rows = inline.rows(run_id)
    assert rows["b"].status is StepStatus.SUCCEEDED and rows["a"].status is StepStatus.CACHED


def test_code_change_changes_the_fingerprint(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    source = "def helper(x):\n    return x + {n}\n\ndef f(x):\n    return helper(x)\n"

    def fingerprint_of(n: int) -> str:
        module.write_text(source.format(n=n))
        loaded = importlib.util.spec_from_file_location(f"fresh_mod_{n}", module)
        assert loaded is not None and loaded.loader is not None
        fresh = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(fresh)
        return code_fingerprint(fresh.f)

    # A project function the step calls is part of the fingerprint; an unrelated edit is not.
    assert fingerprint_of(1) == fingerprint_of(1)
    assert fingerprint_of(1) != fingerprint_of(2)


def test_a_forced_execution_is_what_later_runs_reuse(inline: Harness) -> None:
    """`--force` (or `--no-cache`) executes a step whose outside data changed; the next plain
    run went back to the first execution's outputs (the first entry under a key stayed)."""
    state = inline.state
    spec = flow(task("read", "read_flag", inputs={"state": str(state), "flag": "data"}, cache=True))
    (state / "data").write_text("v1")
    inline.run(spec)
    (state / "data").write_text("v2")
    labels = CachePolicy(force=("read",)).with_labels({})
    forced = create_run(inline.store, spec, bind_params(spec, {}), labels=labels).id
    assert inline.drive(forced) is RunStatus.SUCCEEDED
    assert inline.value(forced, "read") == "v2"
    status, later = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    row = inline.rows(later)["read"]
    assert (row.status, row.cached_from) == (StepStatus.CACHED, f"{forced}:read")
    assert inline.value(later, "read") == "v2"


def test_missing_blob_falls_back_to_executing(inline: Harness) -> None:
    state = str(inline.state)
    spec = flow(
        task("big", "biglist", inputs={"n": 9000, "state": state, "name": "big"}, cache=True)
    )
    inline.run(spec)
    blobs = list(inline.artifacts.iter_blobs())  # type: ignore[attr-defined]
    assert blobs, "a large output must be a blob"
    for blob_hash, _ in blobs:
        inline.artifacts.delete_blob(blob_hash)  # type: ignore[attr-defined]
    status, second = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    assert inline.rows(second)["big"].status is StepStatus.SUCCEEDED
    assert inline.count("big") == 2
    # The new execution is the entry now: the next run reuses it, not executing ever after.
    status, third = inline.run(spec)
    assert inline.rows(third)["big"].cached_from == f"{second}:big"
    assert inline.count("big") == 2


def test_workflow_default_cache_and_foreach_items(inline: Harness) -> None:
    state = str(inline.state)
    body = GraphSpec(
        steps=(task("sq", "add", inputs={"a": E("item"), "state": state, "name": "sq"}),)
    )
    spec = flow(
        ForeachSpec(id="fe", items=E("[1,2,3]"), body=body), defaults=StepDefaults(cache=True)
    )
    inline.run(spec)
    _, run_id = inline.run(spec)
    rows = inline.rows(run_id)
    assert all(rows[f"fe[{i}].sq"].status is StepStatus.CACHED for i in range(3))
    assert inline.value(run_id, "fe") == [1, 2, 3]
    assert inline.count("sq") == 3


def test_lineage_records_blobs_and_their_inputs(inline: Harness) -> None:
    spec = flow(
        task("big", "biglist", inputs={"n": 9000}),
        task("total", "total", inputs={"values": E("steps.big")}),
        task("again", "const", inputs={"value": E("steps.big")}),
    )
    status, run_id = inline.run(spec)
    assert status is RunStatus.SUCCEEDED
    records = inline.store.artifacts(run_id=run_id)
    produced = [r for r in records if r.path == "big"]
    assert len(produced) == 1 and produced[0].inputs == [] and produced[0].output == "return"
    uses = inline.store.artifact_uses(produced[0].hash)
    again = [r for r in records if r.path == "again"]
    # "total" and "again" run side by side: their uses come in the order they ended.
    assert sorted((u.path, u.attempt, u.outputs) for u in uses) == [
        ("again", 1, [["return", again[0].hash]]),
        ("total", 1, []),  # an inline int: no artifact of its own, a use all the same
    ]


def test_digest_is_content_based() -> None:
    assert digest(Literal({"a": 1, "b": 2})) == digest(Literal({"a": 1, "b": 2}))
    # A step iterating the mapping sees another order: not the same input.
    assert digest(Literal({"a": 1, "b": 2})) != digest(Literal({"b": 2, "a": 1}))
    blob = ArtifactRef("ab", "pickle", 3)
    assert digest(RefDict({"a": blob, "b": Literal(1)})) != digest(
        RefDict({"b": Literal(1), "a": blob})
    )
    assert digest(ArtifactRef("ab", "pickle", 3)) == "sha256:ab"
    assert digest(RefList((Literal(1),))) != digest(Literal([1]))


def test_a_script_a_shell_command_names_counts_by_its_content(inline: Harness) -> None:
    from kaon.model.specs import TaskSpec
    from kaon.steptypes.shell import ShellStepType

    folder = inline.tmp / "project"
    (folder / "scripts").mkdir(parents=True)
    script = folder / "scripts" / "prep.sh"
    script.write_text("echo ::kaon::output n=1\n")
    (folder / "rows.csv").write_text("a\n1\n")
    command = "bash scripts/prep.sh --data=rows.csv /etc/hostname $HOME"
    config = {"command": command, "cwd": str(folder)}
    step = TaskSpec(id="prep", step_type="shell", config=config, cache=True)
    spec = flow(step)
    assert inline.run(spec)[0] is RunStatus.SUCCEEDED
    status, second = inline.run(spec)
    assert (status, inline.rows(second)["prep"].status) == (RunStatus.SUCCEEDED, StepStatus.CACHED)
    script.write_text("echo ::kaon::output n=2\n")  # the script changed: executed again
    status, third = inline.run(spec)
    assert inline.rows(third)["prep"].status is StepStatus.SUCCEEDED
    assert inline.value(third, "prep") == {"n": 2}
    found = ShellStepType().fingerprint(config)
    assert not isinstance(found, str)
    assert sorted(found.parts) == ["file scripts/prep.sh"]  # not data, /etc, $HOME

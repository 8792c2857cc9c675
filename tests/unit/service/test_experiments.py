"""Experiments over real runs: artifacts, lineage, fetching, explain, cache, compare, plot, gc.

Workflows run through :class:`LocalService` with the inline executor in a tmp home.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import kaon
from kaon.errors import CorruptArtifactError, InvalidActionError, NotFoundError, ParameterError
from kaon.model.values import ArtifactRef, encode_outputs
from kaon.service import LocalService, Settings
from kaon.service.experiments import Experiments
from kaon.store.base import CacheEntryRecord, WriteBatch

# -- the workflow under test -------------------------------------------------------------------


@kaon.step(cache=True)
def prepare(n: int, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"x": rng.normal(size=n), "seg": [f"s{i % 3}" for i in range(n)]})
    return {"table": table, "segments": ["s0", "s1", "s2"], "count": n}


@kaon.step(cache=True)
def train(segment: str, table: pd.DataFrame, lr: float) -> np.ndarray:
    ctx = kaon.context()
    for epoch in range(3):
        ctx.metric("loss", 1.0 / (epoch + 1) + lr, step=epoch)
    rmse = float(table[table.seg == segment].x.std()) + lr
    ctx.metric("rmse", rmse)
    return np.arange(4) * rmse


@kaon.step
def report(models: list[Any]) -> pathlib.Path:
    folder = pathlib.Path(tempfile.mkdtemp()) / "report"
    folder.mkdir()
    (folder / "summary.txt").write_text(f"{len(models)} models\n")
    (folder / "sizes.csv").write_text("n\n" + "\n".join(str(len(m)) for m in models) + "\n")
    kaon.context().metric("models", len(models))
    return folder


@kaon.workflow(name="exp")
def exp(n: int = 30, lr: float = 0.1, seed: int = 1) -> None:
    prep = prepare(n=n, seed=seed)
    with kaon.foreach(prep["segments"], id="segments") as seg:
        train(seg.item, prep["table"], lr=lr)
    report(seg)


@kaon.workflow(name="exp")
def exp_v2(n: int = 30, lr: float = 0.1, seed: int = 1) -> None:
    prep = prepare.options(cache_version="2")(n=n, seed=seed)
    with kaon.foreach(prep["segments"], id="segments") as seg:
        train(seg.item, prep["table"], lr=lr)
    report(seg)


@kaon.step
def row_count(table: pd.DataFrame) -> int:
    return len(table)


@kaon.workflow(name="scored")
def scored(n: int = 30) -> None:
    prep = prepare(n=n)
    row_count(prep["table"])
    with kaon.foreach(prep["segments"], id="segments") as seg:
        train(seg.item, prep["table"], lr=0.1)


# -- fixtures ----------------------------------------------------------------------------------


class Lab:
    """A service in a tmp home that runs ``exp`` with the inline executor."""

    def __init__(self, home: pathlib.Path) -> None:
        self.service = LocalService(Settings(home=home, executor="inline"))
        self.x: Experiments = self.service.experiments

    def run(self, workflow: kaon.Workflow = exp, **params: Any) -> str:
        run_id = self.service.create_run(workflow.spec, params).id
        status = self.service.execute(run_id)
        assert status.value == "succeeded", self.service.get_run(run_id).error
        return run_id

    def hash_of(self, run_id: str, path: str, output: str = "return") -> str:
        ref = self.x.step_outputs(run_id, path)[output]
        assert isinstance(ref, ArtifactRef)
        return ref.hash


def unique_prefix(run_id: str, others: list[str]) -> str:
    """The shortest prefix of ``run_id`` that no other run id starts with."""
    for n in range(1, len(run_id)):
        if not any(o != run_id and o.startswith(run_id[:n]) for o in others):
            return run_id[:n]
    return run_id


@pytest.fixture
def lab(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    lab = Lab(tmp_path / "home")
    yield lab
    lab.service.close()


@pytest.fixture
def two_runs(lab: Lab) -> tuple[str, str]:
    return lab.run(), lab.run(lr=0.2)


# -- artifacts and lineage ---------------------------------------------------------------------


def test_run_artifacts_lists_blobs_values_and_reused_outputs(
    lab: Lab, two_runs: tuple[str, str]
) -> None:
    first, second = two_runs
    view = lab.x.run_artifacts(unique_prefix(second, [first]))
    assert view.run_id == second and view.workflow == "exp"
    by_path = {(a.path, a.output): a for a in view.artifacts}
    table = by_path[("prepare", "table")]
    assert table.cached_from == f"{first}:prepare" and table.serializer == "parquet"
    assert table.type == "pandas.DataFrame" and table.size > 0 and table.created_at
    trained = by_path[("segments[1].train", "return")]
    assert trained.cached_from is None and trained.item_index == 1 and trained.attempt == 1
    assert trained.inputs == [table.hash] and trained.serializer == "numpy"
    assert by_path[("report", "return")].serializer == "files"
    values = {(v.path, v.output): v.value for v in view.values}
    assert values[("prepare", "segments")] == ["s0", "s1", "s2"]
    assert values[("prepare", "count")] == 30
    assert view.artifacts[0].path == "prepare"  # in step order


def test_a_reused_blob_is_listed_once_after_the_run_it_came_from_is_deleted(
    lab: Lab, two_runs: tuple[str, str]
) -> None:
    first, second = two_runs
    lab.service.delete_run(first)  # its records of the reused blobs are copied to `second`
    view = lab.x.run_artifacts(second)
    rows = [(a.path, a.output, a.hash) for a in view.artifacts]
    assert len(rows) == len(set(rows)), rows  # was listed twice: the copy, and "reused"
    table = {(a.path, a.output): a for a in view.artifacts}[("prepare", "table")]
    assert table.cached_from == f"{first}:prepare"  # where it came from, still said


def test_lineage_walks_inputs_and_lists_consumers(lab: Lab, two_runs: tuple[str, str]) -> None:
    first, second = two_runs
    model = lab.hash_of(second, "segments[2].train")
    table = lab.hash_of(first, "prepare", "table")
    view = lab.x.lineage(model[:10])
    assert view.hash == model and view.serializer == "numpy"
    assert [(p.run_id, p.path, p.item_index) for p in view.producers] == [
        (second, "segments[2].train", 2)
    ]
    assert [s.hash for s in view.sources] == [table]
    assert view.sources[0].producers[0].path == "prepare"
    assert [c.path for c in view.consumers] == ["report"]
    consumers = lab.x.lineage(table).consumers
    assert sorted((c.run_id == first, c.path) for c in consumers) == sorted(
        (run == first, f"segments[{i}].train") for run in (first, second) for i in range(3)
    )
    shallow = lab.x.lineage(model, depth=0)
    assert shallow.sources == [] and shallow.truncated


def test_a_step_that_read_a_blob_and_returned_an_inline_value_is_listed_as_its_consumer(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = lab.run(scored)
    table = lab.hash_of(run_id, "prepare", "table")
    models = {lab.hash_of(run_id, f"segments[{i}].train") for i in range(3)}
    consumers = lab.x.lineage(table).consumers
    # row_count returned an int (kept inline, no artifact of its own): listed all the same.
    assert ("row_count", None, None) in {(c.path, c.output, c.hash) for c in consumers}
    trained = [c for c in consumers if c.path != "row_count"]
    assert sorted(c.path for c in trained) == [f"segments[{i}].train" for i in range(3)]
    assert {c.hash for c in trained} == models and {c.output for c in trained} == {"return"}
    assert all(c.run_id == run_id and c.attempt == 1 for c in consumers)
    assert len(consumers) == 4 and not lab.x.lineage(table).consumers_truncated
    # Read by hash: the listing is capped, and says so.
    monkeypatch.setattr("kaon.service.experiments.MAX_CONSUMERS", 2)
    capped = lab.x.lineage(table)
    assert len(capped.consumers) == 2 and capped.consumers_truncated


def test_lineage_for_a_reader_of_some_runs_skips_the_others_before_it_counts(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another group's consumers neither show, nor fill the listing, nor mark it truncated.
    first = lab.run(scored)
    second = lab.run(scored)  # prepare and train are cached: only row_count reads the table
    table = lab.hash_of(second, "prepare", "table")
    assert table == lab.hash_of(first, "prepare", "table")
    monkeypatch.setattr("kaon.service.experiments.MAX_CONSUMERS", 1)
    asked: list[str] = []

    def readable(run_id: str) -> bool:
        asked.append(run_id)
        return run_id == second

    view = lab.x.lineage(table, readable=readable)
    assert [(c.run_id, c.path) for c in view.consumers] == [(second, "row_count")]
    assert not view.consumers_truncated
    assert {p.run_id for p in view.producers} <= {second}
    assert set(asked) == {first, second}
    everyone = lab.x.lineage(table)
    assert len(everyone.consumers) == 1 and everyone.consumers_truncated


def test_artifact_names_unknown_malformed_and_ambiguous(
    lab: Lab, two_runs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NotFoundError, match="not an artifact hash"):
        lab.x.resolve_artifact("xyz!")
    with pytest.raises(NotFoundError, match="not an artifact hash"):
        lab.x.resolve_artifact("ab")  # too short to be meant
    with pytest.raises(NotFoundError, match="no recorded artifact"):
        lab.x.resolve_artifact("0" * 64)
    real = lab.hash_of(two_runs[0], "prepare", "table")
    twin = real[:6] + ("0" if real[6] != "0" else "1") * 58
    known = lab.service.store.referenced_hashes() | {twin}
    monkeypatch.setattr(lab.service.store, "referenced_hashes", lambda: known)
    with pytest.raises(NotFoundError, match="matches 2 artifacts"):
        lab.x.resolve_artifact(real[:6])
    assert lab.x.resolve_artifact("sha256:" + real[:7].upper()) == real


def test_unknown_and_ambiguous_runs(lab: Lab, two_runs: tuple[str, str]) -> None:
    with pytest.raises(NotFoundError, match="no run matches"):
        lab.x.run_artifacts("nope")
    with pytest.raises(NotFoundError, match="several runs"):
        lab.x.run_artifacts(two_runs[0][:4])
    with pytest.raises(NotFoundError):
        lab.x.explain(two_runs[0], "no_such_step")


# -- fetching ----------------------------------------------------------------------------------


def test_fetch_writes_each_kind_of_value(
    lab: Lab, two_runs: tuple[str, str], tmp_path: pathlib.Path
) -> None:
    run = two_runs[0]
    table = lab.hash_of(run, "prepare", "table")
    view = lab.x.fetch(table[:8], dest=tmp_path / "t.parquet")
    assert (view.format, view.hash, view.serializer) == ("parquet", table, "parquet")
    assert pd.read_parquet(tmp_path / "t.parquet").shape == (30, 2)
    assert lab.x.fetch(table, dest=tmp_path / "t.csv").format == "csv"
    assert pd.read_csv(tmp_path / "t.csv").columns.tolist() == ["x", "seg"]
    model = lab.x.fetch(run, "segments[0].train", output="return", dest=tmp_path / "m.npy")
    assert model.format == "npy" and model.source == f"{run}:segments[0].train:return"
    assert np.load(tmp_path / "m.npy").shape == (4,)
    assert lab.x.fetch(run, "prepare", output="segments", dest=tmp_path / "s.json").format == "json"
    assert (tmp_path / "s.json").read_text().split() == ["[", '"s0",', '"s1",', '"s2"', "]"]
    whole = lab.x.fetch(run, "prepare", dest=tmp_path / "prep.pkl")
    assert whole.kind == "dict" and whole.format == "pickle"
    folder = lab.x.fetch(run, "report", dest=tmp_path / "out")
    assert folder.format == "files"
    assert (tmp_path / "out" / "summary.txt").read_text() == "3 models\n"
    with pytest.raises(InvalidActionError, match="is a folder"):
        lab.x.fetch(table, dest=tmp_path / "out")


def test_fetch_previews_without_a_destination(lab: Lab, two_runs: tuple[str, str]) -> None:
    run = two_runs[0]
    preview = lab.x.fetch(lab.hash_of(run, "prepare", "table")).preview or ""
    assert preview.startswith("DataFrame: 30 rows x 2 columns") and "seg" in preview
    assert "ndarray shape=(4,)" in (lab.x.fetch(run, "segments[1].train").preview or "")
    assert lab.x.fetch(run, "prepare", output="count").preview == "30"
    assert "summary.txt" in (lab.x.fetch(run, "report").preview or "")
    with pytest.raises(NotFoundError, match="has no output 'nope'"):
        lab.x.fetch(run, "prepare", output="nope")


def test_a_corrupt_blob_is_an_error_never_a_value(
    lab: Lab, two_runs: tuple[str, str], tmp_path: pathlib.Path
) -> None:
    table = lab.hash_of(two_runs[0], "prepare", "table")
    path = pathlib.Path(lab.service.artifacts.blob_path(table))  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifactError, match="corrupt"):
        lab.x.fetch(table, dest=tmp_path / "t.parquet")
    assert not (tmp_path / "t.parquet").exists()
    with pytest.raises(CorruptArtifactError):
        lab.x.load(table)


# -- explain and the cache ---------------------------------------------------------------------


def test_explain_hit_changed_input_first_and_not_cacheable(
    lab: Lab, two_runs: tuple[str, str]
) -> None:
    first, second = two_runs
    hit = lab.x.explain(second, "prepare")
    assert (hit.verdict, hit.source, hit.status) == ("hit", f"{first}:prepare", "cached")
    miss = lab.x.explain(second, "segments[1].train")
    assert miss.verdict == "changed" and miss.compared_with == f"{first}:segments[1].train"
    assert [c.component for c in miss.changes] == ["inputs.lr"]
    assert miss.changes[0].old != miss.changes[0].new
    assert [(p.name, p.old, p.new) for p in miss.param_changes] == [("lr", 0.1, 0.2)]
    assert "inputs.lr" in miss.message
    fresh = lab.x.explain(first, "prepare")
    assert fresh.verdict == "no_earlier_execution" and fresh.key
    plain = lab.x.explain(first, "report")
    assert plain.verdict == "not_cacheable" and "caching is off" in plain.message
    container = lab.x.explain(first, "segments")
    assert container.verdict == "not_cacheable" and "foreach" in container.message


def test_explain_a_version_bump_and_missing_blobs(lab: Lab, two_runs: tuple[str, str]) -> None:
    first, _ = two_runs
    bumped = lab.run(exp_v2)
    view = lab.x.explain(bumped, "prepare")
    assert view.verdict == "changed"
    assert [(c.component, c.old, c.new) for c in view.changes] == [("version", "", "2")]
    # The blob of an earlier execution disappears: the next run cannot reuse it.
    model = lab.hash_of(first, "segments[0].train")
    lab.service.artifacts.delete_blob(model)  # type: ignore[attr-defined]
    again = lab.run()
    gone = lab.x.explain(again, "segments[0].train")
    assert gone.verdict == "blobs_missing" and gone.compared_with == f"{first}:segments[0].train"
    assert lab.x.explain(again, "segments[1].train").verdict == "hit"


def test_cache_list_and_clear(lab: Lab, two_runs: tuple[str, str]) -> None:
    entries = lab.x.cache_list(workflow="exp")
    assert sorted(e.step_id for e in entries) == ["prepare"] + ["train"] * 6
    assert lab.x.cache_list(step="prepare")[0].outputs == ["count", "segments", "table"]
    with pytest.raises(InvalidActionError, match="refusing"):
        lab.x.cache_clear()
    with pytest.raises(InvalidActionError, match="do not combine"):
        lab.x.cache_clear(step="train", everything=True)
    assert lab.x.cache_clear(workflow="exp", step="train").deleted == 6
    rerun = lab.run()
    rows = {r.path: r.status.value for r in lab.service.store.step_runs(rerun, all_levels=True)}
    assert rows["prepare"] == "cached" and rows["segments[0].train"] == "succeeded"
    assert lab.x.cache_clear(everything=True).deleted == 4
    assert lab.x.cache_list() == []


# -- compare and plot --------------------------------------------------------------------------


def test_compare_three_runs(lab: Lab) -> None:
    runs = [lab.run(), lab.run(lr=0.2), lab.run(lr=0.1)]
    view = lab.x.compare([unique_prefix(r, runs) for r in runs])
    assert [r.id for r in view.runs] == runs
    params = {p.name: p for p in view.params}
    assert params["lr"].differs and params["lr"].values == dict(
        zip(runs, [0.1, 0.2, 0.1], strict=True)
    )
    assert not params["n"].differs
    rmse = [m for m in view.metrics if m.name == "rmse"]
    assert [(m.path, m.group, m.item_index, m.item) for m in rmse] == [
        (f"segments[{i}].train", "segments[*].train", i, f"s{i}") for i in range(3)
    ]
    row = rmse[1]
    assert row.differs and row.values[runs[0]] == row.values[runs[2]] != row.values[runs[1]]
    loss = next(m for m in view.metrics if m.name == "loss")
    assert loss.values[runs[0]] == pytest.approx(1 / 3 + 0.1)  # the last value reported
    steps = {s.path: s for s in view.steps}
    assert steps["prepare"].statuses == dict(
        zip(runs, ["succeeded", "cached", "cached"], strict=True)
    )
    third = steps["segments[0].train"].statuses
    assert third == dict(zip(runs, ["succeeded", "succeeded", "cached"], strict=True))
    assert not steps["report"].differs and "segments[0]" not in steps
    with pytest.raises(ParameterError, match="at least two"):
        lab.x.compare([runs[0], runs[0]])


def test_show_and_the_metrics_read_give_a_cached_steps_reused_metrics(lab: Lab) -> None:
    """``kaon show`` (the run page) and ``GET /runs/RUN/metrics`` showed no metric of a run
    whose steps were all cached, while ``compare`` and the client showed the reused ones."""
    first = lab.run()
    again = lab.run()  # every train cached: it reports nothing itself
    assert lab.service.run_page(again, limit=50).steps  # the page reads work
    reused = [m for m in lab.service.run_page(again, limit=50).metrics if m.name == "rmse"]
    assert [(m.path, m.reused_from) for m in reused] == [
        (f"segments[{i}].train", f"{first}:segments[{i}].train") for i in range(3)
    ]
    own = {
        m.path: m.value for m in lab.service.run_page(first, limit=50).metrics if m.name == "rmse"
    }
    assert {m.path: m.value for m in reused} == own
    by_name = lab.service.reads.metrics(again, name="loss", limit=100)
    assert len(by_name) == 9 and {m.name for m in by_name} == {"loss"}
    assert len(lab.service.reads.metrics(again, limit=4)) == 4
    models = [m for m in lab.service.run_page(again, limit=50).metrics if m.name == "models"]
    assert [m.reused_from for m in models] == [None]  # report is not cached: its own


def _png(path: pathlib.Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024


def test_plot_by_run_item_and_step(lab: Lab, tmp_path: pathlib.Path) -> None:
    first, second = lab.run(), lab.run(lr=0.3)
    by_run = lab.x.plot([first, second], "rmse", output=tmp_path / "runs.png")
    assert by_run.by == "run" and len(by_run.series) == 3 and by_run.output
    assert all(len(s.y) == 2 for s in by_run.series)
    _png(tmp_path / "runs.png")
    by_item = lab.x.plot([first], "rmse", output=tmp_path / "items.png")
    assert by_item.by == "item" and by_item.series[0].x == ["s0", "s1", "s2"]
    assert by_item.x_label == "item of segments[*].train"
    _png(tmp_path / "items.png")
    by_step = lab.x.plot(
        [first, second], "loss", by="step", step="segments[0].train", output=tmp_path / "s.png"
    )
    assert [s.x for s in by_step.series] == [[0, 1, 2], [0, 1, 2]]
    assert by_step.series[1].y[0] == pytest.approx(1.3)
    _png(tmp_path / "s.png")
    assert lab.x.plot([first], "loss", step="segments[*].train").by == "item"
    with pytest.raises(NotFoundError, match=r"no metric 'auc'.*reported: loss, models, rmse"):
        lab.x.plot([first], "auc")
    with pytest.raises(InvalidActionError, match="not reported inside a foreach"):
        lab.x.plot([first], "models", by="item")
    with pytest.raises(InvalidActionError, match="--by must be"):
        lab.x.plot([first], "rmse", by="epoch")


# -- garbage collection ------------------------------------------------------------------------


def _age(lab: Lab, hash_: str, seconds: float) -> None:
    path = lab.service.artifacts.blob_path(hash_)  # type: ignore[attr-defined]
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_gc_keeps_a_blob_a_step_has_just_written_again(lab: Lab) -> None:
    """A blob no record references any more (its runs were deleted) and written long ago
    is written again by a step now: the same content, so the same hash, and the write is
    skipped. Until the step's end commits its artifact record, only the blob's age keeps a
    gc from deleting it: the write must make it young again, or the step's recorded output
    is a blob gc deleted ("a run writing right now is never robbed")."""
    blobs = lab.service.artifacts
    orphan = blobs.put(np.arange(5000), name="model")
    assert isinstance(orphan, ArtifactRef)
    _age(lab, orphan.hash, 7200)
    again = blobs.put(np.arange(5000), name="model")  # a running step's output, not recorded yet
    assert again == orphan
    done = lab.x.gc()
    assert (done.deleted, done.young) == (0, 1)
    assert blobs.exists(orphan)


def test_gc_removes_what_a_killed_write_left_and_keeps_a_write_going_on(lab: Lab) -> None:
    """A step killed while its output was being written (a timeout, `kaon kill`, the OOM
    killer, kill -9 of the runner) leaves the partial file under blobs/tmp. No run will ever
    finish it, and a model can weigh gigabytes: gc removes such files once they are older
    than --min-age, never a younger one (a write going on)."""
    blobs = lab.service.artifacts
    blobs.put(np.arange(10), name="first")  # makes the folders
    tmp = pathlib.Path(blobs.blob_path("0" * 64)).parent.parent / "tmp"
    stale, fresh = tmp / ".tmp-0123abcd", tmp / ".tmp-4567ef01"
    stale.write_bytes(b"\0" * 4096)
    fresh.write_bytes(b"\0" * 100)
    then = time.time() - 7200
    os.utime(stale, (then, then))
    dry = lab.x.gc(dry_run=True)
    assert (dry.temp_files, dry.temp_bytes) == (1, 4096) and stale.exists()
    done = lab.x.gc()
    assert (done.temp_files, done.temp_bytes) == (1, 4096)
    assert not stale.exists() and fresh.exists()


def test_gc_keeps_referenced_and_young_blobs(lab: Lab, two_runs: tuple[str, str]) -> None:
    store, blobs = lab.service.store, lab.service.artifacts
    referenced = store.referenced_hashes()
    old = blobs.put(np.arange(1000), name="old")
    young = blobs.put(np.arange(2000), name="young")
    kept = blobs.put(np.arange(3000), name="kept")
    assert isinstance(old, ArtifactRef) and isinstance(young, ArtifactRef)
    assert isinstance(kept, ArtifactRef)
    # A cache entry (without an artifact record) still points at ``kept``.
    entry = CacheEntryRecord(
        key="k" * 64,
        workflow="other",
        step_id="s",
        path="s",
        run_id=two_runs[0],
        step_run_id=1,
        outputs=encode_outputs({"return": kept}),
        created_at=time.time(),
    )
    store.write(WriteBatch(cache_entries=[entry]))
    for hash_ in [*referenced, old.hash, kept.hash]:
        _age(lab, hash_, 7200)

    dry = lab.x.gc(dry_run=True)
    assert (dry.deleted, dry.deleted_hashes, dry.young) == (1, [old.hash], 1)
    assert dry.referenced == len(referenced) + 1 and dry.bytes_freed == old.size
    assert blobs.exists(old)  # a dry run deletes nothing

    done = lab.x.gc()
    assert done.deleted_hashes == [old.hash] and not blobs.exists(old)
    assert blobs.exists(young) and blobs.exists(kept)
    assert all(blobs.exists(lab.x.artifact_ref(h)) for h in referenced)
    assert lab.x.gc(min_age_s=0).deleted_hashes == [young.hash]
    assert lab.x.load(lab.hash_of(two_runs[1], "segments[0].train")).shape == (4,)

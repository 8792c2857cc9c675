"""The recsys example's step functions, called directly (no engine) on the real MovieLens data."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kaon.model.events import MetricReported
from kaon.steptypes.context import StepContext, reset_context, set_context

PIPELINE = Path(__file__).resolve().parents[3] / "examples" / "recsys" / "pipeline.py"


def _load_pipeline() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recsys_pipeline", PIPELINE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


p = _load_pipeline()

MIN_RATINGS = 100  # a smaller cohort than the example's default, to keep the file fast
SEED = 7


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    frame: pd.DataFrame = p.select_users(min_ratings=MIN_RATINGS)
    return frame


@pytest.fixture(scope="module")
def prepared(cohort: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = p.prepare(cohort, test_size=0.2, max_segments=3, seed=SEED)
    return out


@pytest.fixture(scope="module")
def global_result(prepared: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = p.train_global(prepared["train"], prepared["test"], k=8, seed=SEED)
    return out


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user_id"].tolist(), frame["movie_id"].tolist(), strict=True))


# --------------------------------------------------------------------------- select_users


def test_select_users_keeps_only_users_with_enough_ratings(cohort: pd.DataFrame) -> None:
    raw = p._movielens()
    counts = raw.groupby("userId").size()
    expected_users = set(counts[counts >= MIN_RATINGS].index)
    assert set(cohort["user_id"].unique()) == expected_users
    assert len(cohort) == int(counts[counts >= MIN_RATINGS].sum())
    assert list(cohort.columns) == [
        "user_id",
        "movie_id",
        "rating",
        "timestamp",
        "title",
        "segment",
    ]


def test_select_users_segment_is_the_first_listed_genre(cohort: pd.DataFrame) -> None:
    raw = p._movielens()
    genres = raw.drop_duplicates("movieId").set_index("movieId")["genres"]
    sample = cohort.drop_duplicates("movie_id").head(300)
    for movie_id, segment in zip(sample["movie_id"], sample["segment"], strict=True):
        first = genres[movie_id].split("|")[0]
        assert segment == (p.UNKNOWN_SEGMENT if first == "(no genres listed)" else first)


def test_select_users_with_minimum_one_returns_every_rating() -> None:
    assert len(p.select_users(min_ratings=1)) == len(p._movielens())


def test_select_users_rejects_a_minimum_below_one() -> None:
    with pytest.raises(ValueError, match="min_ratings"):
        p.select_users(min_ratings=0)


# --------------------------------------------------------------------------- prepare


def test_prepare_splits_every_rating_once_without_leakage(
    cohort: pd.DataFrame, prepared: dict[str, Any]
) -> None:
    train, test = prepared["train"], prepared["test"]
    assert len(train) + len(test) == len(cohort)
    assert not _pairs(train) & _pairs(test)
    assert abs(len(test) / len(cohort) - 0.2) < 0.02


def test_prepare_puts_each_user_in_both_sets(prepared: dict[str, Any]) -> None:
    train_users = prepared["train"].groupby("user_id").size()
    test_users = prepared["test"].groupby("user_id").size()
    assert set(train_users.index) == set(test_users.index)
    assert (test_users <= np.floor(0.2 * (train_users + test_users))).all()


def test_prepare_is_deterministic_for_a_seed(
    cohort: pd.DataFrame, prepared: dict[str, Any]
) -> None:
    again = p.prepare(cohort, test_size=0.2, max_segments=3, seed=SEED)
    pd.testing.assert_frame_equal(again["test"], prepared["test"])
    other = p.prepare(cohort, test_size=0.2, max_segments=3, seed=SEED + 1)
    assert _pairs(other["test"]) != _pairs(prepared["test"])


def test_prepare_lists_the_largest_segments_as_plain_strings(prepared: dict[str, Any]) -> None:
    segments = prepared["segments"]
    counts = prepared["train"]["segment"].value_counts()
    assert len(segments) == 3
    assert all(type(name) is str for name in segments)
    assert segments == list(counts.index[:3])


def test_prepare_cleans_bad_rows() -> None:
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 2, 2],
            "movie_id": [10, 10, 11, 12, 10, 13, 14],
            "rating": [3.0, 4.5, 9.0, None, 2.0, 5.0, 1.0],
            "timestamp": [1, 2, 3, 4, 5, 6, 7],
            "title": ["a"] * 7,
            "segment": ["Drama", "Drama", "Drama", "Drama", None, "Comedy", "Drama"],
        }
    )
    out = p.prepare(frame, test_size=0.5, max_segments=5, seed=0)
    both = pd.concat([out["train"], out["test"]]).sort_values(["user_id", "movie_id"])
    assert list(zip(both["user_id"], both["movie_id"], both["rating"], strict=True)) == [
        (1, 10, 4.5),  # the later of two ratings wins; 9.0 and None are dropped
        (2, 10, 2.0),
        (2, 13, 5.0),
        (2, 14, 1.0),
    ]
    assert p.UNKNOWN_SEGMENT in set(both["segment"])
    assert p.UNKNOWN_SEGMENT not in out["segments"]
    assert len(out["test"]) == 1  # user 1 has one rating left: it stays in train


@pytest.mark.parametrize(("test_size", "max_segments"), [(0.0, 3), (1.0, 3), (-0.1, 3), (0.2, 0)])
def test_prepare_rejects_bad_parameters(
    cohort: pd.DataFrame, test_size: float, max_segments: int
) -> None:
    with pytest.raises(ValueError):
        p.prepare(cohort, test_size=test_size, max_segments=max_segments, seed=SEED)


# --------------------------------------------------------------------------- models


def test_train_global_scores_sanely(
    prepared: dict[str, Any], global_result: dict[str, Any]
) -> None:
    assert 0.5 < global_result["rmse"] < 1.5
    assert 0.3 < global_result["mae"] < global_result["rmse"]
    assert global_result["n_ratings"] == len(prepared["train"])
    assert set(prepared["segments"]) <= set(global_result["segment_rmse"])
    assert all(math.isfinite(v) for v in global_result["segment_rmse"].values())
    assert global_result["model"].k == 8


def test_train_global_beats_predicting_the_mean(
    prepared: dict[str, Any], global_result: dict[str, Any]
) -> None:
    test = prepared["test"]["rating"].to_numpy()
    mean_only = p.rmse(test, np.full(len(test), prepared["train"]["rating"].mean()))
    assert global_result["rmse"] < mean_only - 0.05


def test_train_global_is_deterministic(
    prepared: dict[str, Any], global_result: dict[str, Any]
) -> None:
    again = p.train_global(prepared["train"], prepared["test"], k=8, seed=SEED)
    assert again["rmse"] == pytest.approx(global_result["rmse"], rel=1e-9)


def test_model_predicts_in_range_and_handles_unknown_ids(global_result: dict[str, Any]) -> None:
    model = global_result["model"]
    known_user, known_item = int(model.user_ids[0]), int(model.item_ids[0])
    pred = model.predict(np.array([known_user, -1, -1]), np.array([known_item, known_item, -5]))
    assert ((pred >= 0.5) & (pred <= 5.0)).all()
    assert pred[1] == pytest.approx(np.clip(model.mean + model.item_bias[0], 0.5, 5.0))
    assert pred[2] == pytest.approx(model.mean)


def test_model_survives_save_and_load(global_result: dict[str, Any], tmp_path: Path) -> None:
    model = global_result["model"]
    model.save(tmp_path / "m.npz")
    loaded = p.BiasedSVD.load(tmp_path / "m.npz")
    users, items = model.user_ids[:50], model.item_ids[:50]
    np.testing.assert_allclose(loaded.predict(users, items), model.predict(users, items))


def test_train_segment_trains_on_that_segment_only(prepared: dict[str, Any]) -> None:
    segment = prepared["segments"][0]
    result = p.train_segment(segment, prepared["train"], prepared["test"], k=8, seed=SEED)
    train_rows = prepared["train"][prepared["train"]["segment"] == segment]
    assert result["segment"] == segment
    assert result["n_ratings"] == len(train_rows)
    assert set(result["model"].item_ids) == set(train_rows["movie_id"])
    assert 0.5 < result["rmse"] < 1.5


def test_train_segment_regularizes_more_on_each_retrain() -> None:
    schedule = [p.segment_params(k=12, attempt_boost=i) for i in range(4)]
    regs = [s["reg_user"] for s in schedule]
    ks = [s["k"] for s in schedule]
    assert regs == sorted(regs) and regs[0] < regs[1]
    assert ks == sorted(ks, reverse=True) and ks[0] == 12
    assert schedule[3] == schedule[2]  # past the schedule's end, its last row is reused


def test_train_segment_rejects_an_unknown_segment(prepared: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no training ratings"):
        p.train_segment("No Such Genre", prepared["train"], prepared["test"])


def test_retrain_loop_matters_with_the_default_parameters() -> None:
    """With the example's defaults, iteration 0 overfits a segment and iteration 1 fixes it."""
    prep = p.prepare(p.select_users(20), test_size=0.2, max_segments=6, seed=SEED)
    glob = p.train_global(prep["train"], prep["test"], k=12, seed=SEED)
    verdicts = []
    for iteration in range(2):
        segs = [
            p.train_segment(s, prep["train"], prep["test"], 12, SEED, iteration)
            for s in prep["segments"]
        ]
        verdicts.append(p.validate(glob, segs, max_rmse=1.1, iteration=iteration))
    assert verdicts[0]["unstable_segments"] and not verdicts[0]["passed"]
    assert verdicts[1]["stable"] and verdicts[1]["passed"]


# --------------------------------------------------------------------------- validate


def _glob(rmse: float = 0.9, **per_segment: float) -> dict[str, Any]:
    return {"model": None, "rmse": rmse, "mae": 0.7, "segment_rmse": per_segment}


def _seg(segment: str, rmse: float) -> dict[str, Any]:
    return {"segment": segment, "model": None, "rmse": rmse, "n_ratings": 100}


def test_validate_passes_models_close_to_the_global_one() -> None:
    out = p.validate(_glob(A=0.9, B=0.8), [_seg("A", 0.91), _seg("B", 0.7)], max_rmse=1.0)
    assert out["passed"] and out["stable"] and out["unstable_segments"] == []
    assert [row["segment"] for row in out["summary"]["segments"]] == ["A", "B"]
    json.dumps(out["summary"], allow_nan=False)


def test_validate_flags_a_segment_worse_than_global_beyond_tolerance() -> None:
    out = p.validate(_glob(A=0.8, B=0.8), [_seg("A", 0.85), _seg("B", 0.8)], tolerance=0.03)
    assert not out["passed"] and not out["stable"]
    assert out["unstable_segments"] == ["A"]
    assert out["summary"]["segments"][0]["change"] == pytest.approx(0.0625)


def test_validate_fails_stable_models_over_the_rmse_limit() -> None:
    out = p.validate(_glob(A=1.2), [_seg("A", 1.2)], max_rmse=1.1)
    assert out["stable"] and not out["passed"]
    assert not p.validate(_glob(rmse=1.3, A=1.0), [_seg("A", 1.0)], max_rmse=1.1)["passed"]


def test_validate_treats_a_missing_score_as_unstable() -> None:
    out = p.validate(_glob(A=0.9), [_seg("A", math.nan)])
    assert out["unstable_segments"] == ["A"] and not out["passed"]
    assert out["summary"]["segments"][0]["rmse"] is None
    json.dumps(out["summary"], allow_nan=False)


def test_validate_compares_a_segment_unknown_to_global_with_its_overall_rmse() -> None:
    out = p.validate(_glob(rmse=0.9), [_seg("Z", 0.95)], tolerance=0.03)
    assert out["unstable_segments"] == ["Z"]
    assert out["summary"]["segments"][0]["global_rmse"] == 0.9


def test_validate_carries_the_models_it_judged() -> None:
    glob, segs = _glob(A=0.9), [_seg("A", 0.9)]
    out = p.validate(glob, segs, iteration=2)
    assert out["global_result"] is glob and out["segment_results"] is segs
    assert out["summary"]["iteration"] == 2


def test_report_prints_one_line_per_model(capsys: pytest.CaptureFixture[str]) -> None:
    out = p.validate(_glob(A=0.8, B=0.8), [_seg("A", 0.85), _seg("B", math.nan)])
    table = p.report(out)
    assert capsys.readouterr().out.strip() == table
    lines = table.splitlines()
    assert len(lines) == 5
    assert "UNSTABLE" in lines[3] and "+6.2%" in lines[3]
    assert "n/a" in lines[4]


# --------------------------------------------------------------------------- publish


def _passing(prepared: dict[str, Any], global_result: dict[str, Any]) -> dict[str, Any]:
    segs = [
        p.train_segment(s, prepared["train"], prepared["test"], 8, SEED, 1)
        for s in prepared["segments"][:2]
    ]
    verdict: dict[str, Any] = p.validate(global_result, segs, max_rmse=1.5, tolerance=1.0)
    return verdict


def test_publish_writes_models_and_metrics(
    prepared: dict[str, Any], global_result: dict[str, Any], tmp_path: Path
) -> None:
    verdict = _passing(prepared, global_result)
    out = p.publish(global_result, verdict["segment_results"], verdict, out_dir=str(tmp_path))
    path = Path(out["path"])
    assert path.parent == tmp_path and path.name.startswith("local-")
    names = sorted(f.name for f in path.iterdir())
    assert names == sorted(out["files"])
    assert len(names) == 2 + len(verdict["segment_results"])
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["global"]["rmse"] == pytest.approx(global_result["rmse"])
    first = verdict["segment_results"][0]
    loaded = p.BiasedSVD.load(path / f"segment-{first['segment'].lower()}.npz")
    ids = first["model"].item_ids[:20]
    users = np.resize(first["model"].user_ids, len(ids))
    np.testing.assert_allclose(loaded.predict(users, ids), first["model"].predict(users, ids))


def test_publish_refuses_models_that_failed_validation(
    global_result: dict[str, Any], tmp_path: Path
) -> None:
    verdict = p.validate(_glob(A=0.8), [_seg("A", 2.0)])
    with pytest.raises(ValueError, match="did not pass"):
        p.publish(global_result, [], verdict, out_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- inside a run


def test_steps_report_metrics_and_use_the_run_id_inside_a_run(
    prepared: dict[str, Any], global_result: dict[str, Any], tmp_path: Path
) -> None:
    events: list[Any] = []
    ctx = StepContext(key=("run-42", 1, 1), step="train_global", workflow="recsys", params={},
                      emit=events.append)  # fmt: skip
    token = set_context(ctx)
    try:
        p.train_global(prepared["train"], prepared["test"], k=4, seed=SEED)
        verdict = _passing(prepared, global_result)
        out = p.publish(global_result, [], verdict, out_dir=str(tmp_path))
    finally:
        reset_context(token)
    names = {e.name for e in events if isinstance(e, MetricReported)}
    assert {"rmse", "mae"} <= names
    assert Path(out["path"]) == tmp_path / "run-42"


def test_the_workflows_sql_step_selects_the_same_cohort(cohort: pd.DataFrame) -> None:
    from kaon.steptypes.registry import get_step_type

    tables = p.load_ratings()
    events: list[Any] = []
    ctx = StepContext(("run", 1, 1), "select_users", "recsys", {}, events.append)
    config = {
        "file": str(PIPELINE.with_name("select_users.sql")),
        "params": {"unknown": p.UNKNOWN_SEGMENT},
    }
    selected = get_step_type("sql").run(ctx, config, {**tables, "min_ratings": MIN_RATINGS})
    pd.testing.assert_frame_equal(
        selected.reset_index(drop=True), cohort.reset_index(drop=True), check_dtype=False
    )


def test_the_report_notebook_renders_its_chart() -> None:
    """The README's promise ("renders the validation with a chart"): the chart cell ended
    with ``fig.tight_layout()`` under the Agg backend, so the report held no image."""
    import json

    from kaon.steptypes.context import StepContext
    from kaon.steptypes.notebook import NotebookStepType

    summary = {
        "iteration": 1,
        "global": {"rmse": 0.9},
        "segments": [
            {
                "segment": s,
                "n_ratings": 100,
                "rmse": r,
                "global_rmse": 0.9,
                "change": 0.0,
                "stable": True,
            }
            for s, r in (("Comedy", 0.85), ("Drama", 0.95))
        ],
    }
    ctx = StepContext(("run-1", 1, 1), "report_notebook", "recsys", {}, lambda _event: None)
    folder = Path(__file__).parents[3] / "examples" / "recsys"
    outputs = NotebookStepType().run(
        ctx, {"file": str(folder / "report.ipynb")}, {"summary": summary, "passed": True}
    )
    cells = json.loads(Path(outputs["notebook"]).read_text())["cells"]
    kinds = [set(o.get("data", {})) for cell in cells for o in cell.get("outputs", [])]
    assert any("image/png" in kind for kind in kinds), kinds
    assert outputs["best_segment"] == "Comedy"

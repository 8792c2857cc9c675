"""A hyper-parameter sweep of the flagship's per-genre model, made for the ``ray`` executor.

    kaon run examples/recsys/sweep.py -e ray                     # 96 fits on a local Ray
    kaon run examples/recsys/sweep.py -e ray --ray-address HEAD:6379 -p repeats=313
                                                                 # 30,048 fits on a cluster
    kaon run examples/recsys/sweep.py -p 'ks=[2]' -p 'regs=[5.0]'  # 6 fits, any executor

The cohort and its train/test split are the flagship's (``pipeline.select_users`` and
``pipeline.prepare``). Each item of the foreach fits the per-genre model
(``pipeline.fit_biased_svd``) on one genre with one ``(k, regularization, seed)`` point and
scores it on that genre's test ratings; it asks for one CPU and 512 MiB (``resources``), which
Ray uses to place it. ``compare`` keeps the best point per genre and draws the comparison plot
(test RMSE against k, one panel per genre, one line per regularization) into ``out_dir``.

On Ray the code of this file and of ``pipeline.py`` beside it reaches the workers as the
workflow's content-addressed bundle; the data (train and test frames) through the artifact
store, which the nodes must share.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pipeline  # a sibling module, sent with this file

import kaon

select_users = kaon.step(pipeline.select_users)
prepare = kaon.step(pipeline.prepare)


@kaon.step
def grid(segments: list[str], ks: list[int], regs: list[float], repeats: int) -> list[Any]:
    """Every (genre, k, regularization, seed) point of the sweep."""
    return [
        {"segment": s, "k": k, "reg": r, "seed": seed}
        for s in segments
        for k in ks
        for r in regs
        for seed in range(repeats)
    ]


@kaon.step(resources={"cpus": 1, "memory": "512Mi"}, retry=kaon.Retry(max_attempts=2))
def fit(point: dict[str, Any], train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """Fit one genre's model at one point; its test RMSE (the model itself is not kept)."""
    seg_train = train[train["segment"] == point["segment"]]
    seg_test = test[test["segment"] == point["segment"]]
    reg = float(point["reg"])
    model = pipeline.fit_biased_svd(seg_train, int(point["k"]), reg, reg, int(point["seed"]))
    predicted = model.predict(seg_test["user_id"].to_numpy(), seg_test["movie_id"].to_numpy())
    error = pipeline.rmse(seg_test["rating"].to_numpy(), predicted)
    return {**point, "rmse": error}


@kaon.step
def compare(results: list[dict[str, Any]], out_dir: str) -> dict[str, Any]:
    """The best point per genre (mean RMSE over seeds), and the comparison plot's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(results)
    mean = frame.groupby(["segment", "k", "reg"], as_index=False)["rmse"].mean()
    best = mean.loc[mean.groupby("segment")["rmse"].idxmin()]
    segments = sorted(mean["segment"].unique())
    figure, axes = plt.subplots(1, len(segments), figsize=(3.2 * len(segments), 3), sharey=True)
    for axis, segment in zip(list(getattr(axes, "flat", [axes])), segments, strict=True):
        for reg, line in mean[mean["segment"] == segment].groupby("reg"):
            axis.plot(line["k"], line["rmse"], marker="o", label=f"reg {reg:g}")
        axis.set_title(segment)
        axis.set_xlabel("k")
    axes_list = list(getattr(axes, "flat", [axes]))
    axes_list[0].set_ylabel("test RMSE")
    axes_list[-1].legend(fontsize="small")
    figure.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    plot = os.path.abspath(os.path.join(out_dir, "sweep.png"))
    figure.savefig(plot, dpi=100)
    plt.close(figure)
    return {
        "fits": len(frame),
        "best": {
            row.segment: {"k": int(row.k), "reg": float(row.reg), "rmse": float(row.rmse)}
            for row in best.itertuples()
        },
        "plot": plot,
    }


@kaon.workflow(name="genre_sweep")
def genre_sweep(
    min_ratings: int = 20,
    max_segments: int = 6,
    ks: list[int] = [2, 4, 8, 16],  # noqa: B006 (a parameter's default: never mutated)
    regs: list[float] = [1.0, 5.0, 15.0, 30.0],  # noqa: B006
    repeats: int = 1,
    out_dir: str = "examples/recsys/sweep",
) -> None:
    """Sweep k and the regularization of every genre's model; compare them in one plot."""
    users = select_users(min_ratings)
    prep = prepare(users, max_segments=max_segments)
    points = grid(prep["segments"], ks, regs, repeats)
    with kaon.foreach(points, id="fits") as each:
        fit(each.item, prep["train"], prep["test"])
    compare(each, out_dir)

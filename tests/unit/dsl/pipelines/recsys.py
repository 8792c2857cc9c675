"""The reference pipeline in Python; recsys.yaml says the same in YAML."""

import kaon


@kaon.step
def select_users(min_ratings: int) -> list[int]:
    return list(range(min_ratings))


@kaon.step(
    retry=kaon.Retry(
        max_attempts=3,
        backoff="exponential",
        delay="1s",
        max_delay="30s",
        retry_on=[ValueError, "KeyError"],
    ),
    timeout="10m",
)
def prepare(users: list[int], test_size: float = 0.2) -> dict[str, object]:
    return {"train": users, "segments": ["a", "b"]}


@kaon.step(cache=True, cache_version="2")
def train_global(data: object, k: int = 5) -> str:
    return f"global-{k}"


@kaon.step
def train_segment(segment: str, data: object, seed: int = 0) -> str:
    return f"model-{segment}-{seed}"


@kaon.step(on_failure="ignore")
def evaluate(model: str, segment: str) -> float:
    return 0.9


@kaon.step
def validate(models: list[str], threshold: float = 0.5) -> dict[str, bool]:
    return {"stable": True, "passed": True}


@kaon.step(trigger_rule="all_done")
def publish(models: object, tag: str = "") -> None:
    return None


@kaon.workflow(timeout="1h", retry=2, step_timeout="10m", cache=False)
def evaluate_one(model: str = "m", segment: str = "a"):
    return evaluate(model, segment)


@kaon.workflow(name="recsys", timeout="1h", retry=kaon.Retry(max_attempts=2), step_timeout="10m")
def recsys(min_ratings: int = 20, segments: list = [], k: int = 5, threshold: float = 0.8):  # noqa: B006
    users = select_users(min_ratings=min_ratings)
    prep = prepare(users)
    glob = train_global(prep["train"], k=k * 2)
    with kaon.foreach(prep["segments"], concurrency=4, id="segments", as_="segment") as seg:
        model = train_segment(seg.item, prep["train"], seed=seg.index)
        evaluate(model, seg.item)
        seg.output(model)
    with kaon.loop(until="steps.check.stable", max_iterations=3, id="retrain") as lp:
        models = train_segment.options(id="retrain_model")("all", prep["train"], seed=lp.iteration)
        validate.options(id="check")([models, glob], threshold=threshold)
    with kaon.when(lp["passed"]):
        publish(seg, tag=f"v{k}")
        kaon.shell("echo published ${X}", id="report", env={"X": "1"}, needs=[glob])
    kaon.subworkflow(evaluate_one, id="sub", model=glob, segment="a", when=lp["passed"] & (k > 2))
    return lp

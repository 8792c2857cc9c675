"""kaon.client over real runs: load runs, outputs, metrics and artifacts in one call each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import kaon
from kaon.client import Client
from kaon.errors import CorruptArtifactError, NotFoundError
from kaon.service import LocalService, Settings


@kaon.step(cache=True)
def prepare(n: int) -> dict[str, Any]:
    return {"train": pd.DataFrame({"x": range(n)}), "regions": ["north", "south"], "n": n}


@kaon.step
def fit(region: str, train: pd.DataFrame, k: int) -> np.ndarray:
    ctx = kaon.context()
    for epoch in range(2):
        ctx.metric("loss", 1.0 / (epoch + 1) / k, step=epoch)
    ctx.metric("auc", 0.5 + 0.1 * len(region) / k)
    return np.full(2, k)


@kaon.workflow(name="client_flow")
def client_flow(n: int = 5, k: int = 1) -> None:
    prep = prepare(n=n)
    with kaon.foreach(prep["regions"], id="regions") as region:
        fit(region.item, prep["train"], k=k)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "home"


def _run(home: Path, **params: Any) -> str:
    with LocalService(Settings(home=home, executor="inline")) as service:
        run_id = service.create_run(client_flow.spec, params).id
        assert service.execute(run_id).value == "succeeded"
    return run_id


@pytest.fixture
def client(home: Path) -> Iterator[Client]:
    with Client(home=home) as c:
        yield c


def test_run_outputs_load_in_one_call(home: Path, client: Client) -> None:
    first, second = _run(home), _run(home, k=2)
    assert [r.id for r in client.runs()] == [second, first]
    assert [r.id for r in client.runs(workflow="other")] == []
    prefix = second[:-2] if not first.startswith(second[:-2]) else second
    run = client.run(prefix)
    assert run.id == second and run.status == "succeeded" and run.params == {"n": 5, "k": 2}
    assert run.workflow == "client_flow"
    paths = [s.path for s in run.steps]
    assert {"prepare", "regions", "regions[1]", "regions[1].fit"} <= set(paths)
    prep = run.outputs("prepare")
    assert set(prep) == {"train", "regions", "n"}
    assert isinstance(prep["train"], pd.DataFrame) and prep["train"].x.tolist() == list(range(5))
    assert prep["regions"] == ["north", "south"]
    assert run.output("regions[0].fit").tolist() == [2, 2]
    assert [m.tolist() for m in run.output("regions")] == [[2, 2], [2, 2]]
    assert run.explain("prepare").verdict == "hit"
    assert {a.path for a in run.artifacts().artifacts} == {
        "prepare",
        *[f"regions[{i}].fit" for i in range(2)],
    }
    with pytest.raises(NotFoundError, match="has no output"):
        run.output("prepare", "model")


def test_metrics_are_a_dataframe(home: Path, client: Client) -> None:
    run = client.run(_run(home))
    frame = run.metrics()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 6
    auc = frame[frame.name == "auc"].sort_values("item_index")
    assert auc.item.tolist() == ["north", "south"]
    assert auc.value.tolist() == pytest.approx([1.0, 1.0])
    assert set(frame.group) == {"regions[*].fit"}
    losses = frame[(frame.name == "loss") & (frame.path == "regions[0].fit")]
    assert losses.step.tolist() == [0, 1]


def test_artifacts_by_hash(home: Path, client: Client, tmp_path: Path) -> None:
    run = client.run(_run(home))
    table = next(a for a in run.artifacts().artifacts if a.output == "train")
    handle = client.artifact(table.hash[:8])
    assert handle.hash == table.hash and handle.ref.serializer == "parquet"
    assert handle.load().x.tolist() == list(range(5))
    saved = handle.save(tmp_path / "train.parquet")
    assert saved.format == "parquet" and pd.read_parquet(tmp_path / "train.parquet").shape == (5, 1)
    assert len(handle.lineage().consumers) == 2
    blob = home / "artifacts" / "blobs" / table.hash[:2] / table.hash
    blob.write_bytes(blob.read_bytes() + b"tampered")
    with pytest.raises(CorruptArtifactError):
        handle.load()


def test_compare_and_plot(home: Path, client: Client, tmp_path: Path) -> None:
    first, second = _run(home), _run(home, k=4)
    view = client.compare(first, second)
    assert [p.name for p in view.params if p.differs] == ["k"]
    plot = client.plot(first, second, metric="auc", output=tmp_path / "auc.png")
    assert plot.by == "run" and (tmp_path / "auc.png").stat().st_size > 1024


def test_unknown_runs_and_artifacts(home: Path, client: Client) -> None:
    _run(home)
    with pytest.raises(NotFoundError, match="no run matches"):
        client.run("nope")
    with pytest.raises(NotFoundError, match="no recorded artifact"):
        client.artifact("abcdef12")

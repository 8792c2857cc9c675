"""`kaon artifacts | lineage | get | explain | cache | compare | plot | gc`, in-process.

Runs are made with `kaon run` on the workflow defined in this very file (the loader imports
it by path), with the inline executor and a tmp home.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import kaon
from kaon.cli.main import app

HERE = str(Path(__file__).resolve())

Kaon = Callable[..., tuple[int, str, str]]


@kaon.step(cache=True)
def load(n: int) -> dict[str, Any]:
    table = pd.DataFrame({"v": np.arange(n, dtype=float), "g": [f"g{i % 2}" for i in range(n)]})
    return {"table": table, "groups": ["g0", "g1"]}


@kaon.step(cache=True)
def fit(group: str, table: pd.DataFrame, scale: float) -> np.ndarray:
    score = float(table[table.g == group].v.mean()) * scale
    kaon.context().metric("score", score)
    return np.full(3, score)


@kaon.workflow(name="cli_exp")
def cli_exp(n: int = 10, scale: float = 1.0) -> None:
    data = load(n=n)
    with kaon.foreach(data["groups"], id="groups") as each:
        fit(each.item, data["table"], scale=scale)


@pytest.fixture
def kaon_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kaon:
    monkeypatch.setenv("KAON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAON_EXECUTOR", "inline")
    monkeypatch.setenv("KAON_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _run(kaon_cli: Kaon, *params: str) -> str:
    args = [x for p in params for x in ("-p", p)]
    code, out, err = kaon_cli("run", f"{HERE}:cli_exp", *args, "--json")
    assert code == 0, err
    return str(json.loads(out)["id"])


@pytest.fixture
def runs(kaon_cli: Kaon) -> tuple[str, str]:
    return _run(kaon_cli), _run(kaon_cli, "scale=2")


def _json(kaon_cli: Kaon, *args: str) -> Any:
    code, out, err = kaon_cli(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_artifacts_lists_blobs_and_values(kaon_cli: Kaon, runs: tuple[str, str]) -> None:
    first, second = runs
    data = _json(kaon_cli, "artifacts", second)
    rows = {(a["path"], a["output"]): a for a in data["artifacts"]}
    assert rows[("load", "table")]["cached_from"] == f"{first}:load"
    assert rows[("groups[1].fit", "return")]["serializer"] == "numpy"
    assert {(v["path"], v["output"]): v["value"] for v in data["values"]} == {
        ("load", "groups"): ["g0", "g1"]
    }
    code, out, _ = kaon_cli("artifacts", second)
    table = rows[("load", "table")]["hash"][:12]
    assert code == 0 and table in out and "DataFrame" in out and f"{first}:load" in out


def test_lineage_and_get(kaon_cli: Kaon, runs: tuple[str, str], tmp_path: Path) -> None:
    first, second = runs
    arts = _json(kaon_cli, "artifacts", first)["artifacts"]
    table = next(a["hash"] for a in arts if a["output"] == "table")
    model = next(a["hash"] for a in arts if a["path"] == "groups[0].fit")
    lineage = _json(kaon_cli, "lineage", model[:10], "--depth", "2")
    assert lineage["sources"][0]["hash"] == table
    assert lineage["producers"][0]["path"] == "groups[0].fit"
    code, out, _ = kaon_cli("lineage", table[:8])
    assert code == 0 and "used by" in out and "groups[1].fit" in out

    code, out, _ = kaon_cli("get", table[:8])
    assert code == 0 and out.startswith("DataFrame: 10 rows x 2 columns")
    code, out, _ = kaon_cli("get", table[:8], "-o", str(tmp_path / "t.csv"))
    assert code == 0 and "(csv)" in out
    assert pd.read_csv(tmp_path / "t.csv").shape == (10, 2)
    fetched = _json(kaon_cli, "get", second, "groups[1].fit", "-o", str(tmp_path / "m.npy"))
    assert fetched["format"] == "npy" and fetched["hash"] != model
    assert np.load(tmp_path / "m.npy").tolist() == [10.0, 10.0, 10.0]
    code, out, _ = kaon_cli("get", first, "load", "--name", "groups")
    assert code == 0 and json.loads(out) == ["g0", "g1"]
    # the old spelling still works, with a warning
    code, out, err = kaon_cli("get", first, "load", "--output", "groups")
    assert code == 0 and json.loads(out) == ["g0", "g1"] and "deprecated; use --name" in err


def test_errors_exit_two_with_a_message(kaon_cli: Kaon, runs: tuple[str, str]) -> None:
    code, _, err = kaon_cli("artifacts", "nope")
    assert code == 2 and "no run matches 'nope'" in err
    code, _, err = kaon_cli("compare", "20", runs[0])
    assert code == 2 and "matches several runs" in err
    code, _, err = kaon_cli("lineage", "ffff0000")
    assert code == 2 and "no recorded artifact" in err
    code, _, err = kaon_cli("get", runs[0], "load", "--name", "nope")
    assert code == 2 and "has no output 'nope'" in err
    code, _, err = kaon_cli("get", runs[0])
    assert code == 2 and "not an artifact hash" in err
    code, _, err = kaon_cli("cache", "clear")
    assert code == 2 and "refusing" in err
    code, _, err = kaon_cli("gc", "--min-age", "soon")
    assert code == 2 and "--min-age" in err


def test_a_corrupt_blob_exits_with_an_error(
    kaon_cli: Kaon, runs: tuple[str, str], tmp_path: Path
) -> None:
    arts = _json(kaon_cli, "artifacts", runs[0])["artifacts"]
    model = next(a["hash"] for a in arts if a["path"] == "groups[0].fit")
    blob = tmp_path / "home" / "artifacts" / "blobs" / model[:2] / model
    blob.write_bytes(blob.read_bytes()[:-4] + b"oops")
    code, out, err = kaon_cli("get", model, "-o", str(tmp_path / "m.npy"))
    assert code == 3 and "CorruptArtifactError" in err and "corrupt" in err
    assert out == "" and not (tmp_path / "m.npy").exists()


def test_explain_hit_and_miss(kaon_cli: Kaon, runs: tuple[str, str]) -> None:
    first, second = runs
    hit = _json(kaon_cli, "explain", second, "load")
    assert hit["verdict"] == "hit" and hit["source"] == f"{first}:load"
    miss = _json(kaon_cli, "explain", second, "groups[0].fit")
    assert miss["verdict"] == "changed"
    assert [c["component"] for c in miss["changes"]] == ["inputs.scale"]
    assert miss["param_changes"] == [{"name": "scale", "old": 1.0, "new": 2.0}]
    code, out, _ = kaon_cli("explain", second, "groups[0].fit")
    assert code == 0 and "cache miss: changed since" in out and "inputs.scale" in out
    code, out, _ = kaon_cli("explain", first, "load")
    assert code == 0 and "no earlier successful execution" in out


def test_no_cache_force_and_restart_force(kaon_cli: Kaon, runs: tuple[str, str]) -> None:
    _, second = runs
    code, out, err = kaon_cli("run", f"{HERE}:cli_exp", "-p", "scale=2", "--force", "load")
    assert code == 0, err
    forced = out.splitlines()[0].strip()
    assert _json(kaon_cli, "explain", forced, "load")["verdict"] == "forced"
    # load's output is the same: the items after it are hits.
    assert _json(kaon_cli, "explain", forced, "groups[0].fit")["verdict"] == "hit"
    code, out, err = kaon_cli("run", f"{HERE}:cli_exp", "--no-cache", "--json")
    assert code == 0, err
    fresh = json.loads(out)["id"]
    assert _json(kaon_cli, "explain", fresh, "groups[1].fit")["verdict"] == "forced"
    code, _, err = kaon_cli("restart", second, "--from", "load", "--force")
    assert code == 0, err
    assert _json(kaon_cli, "explain", second, "groups[1].fit")["verdict"] == "forced"
    code, _, err = kaon_cli("run", f"{HERE}:cli_exp", "--force", "nope")
    assert code != 0 and "no step 'nope'" in err


def test_cache_list_and_clear(kaon_cli: Kaon, runs: tuple[str, str]) -> None:
    entries = _json(kaon_cli, "cache", "list", "--workflow", "cli_exp")
    assert sorted(e["step_id"] for e in entries) == ["fit"] * 4 + ["load"]
    assert _json(kaon_cli, "cache", "clear", "--step", "fit") == {
        "deleted": 4,
        "workflow": None,
        "step": "fit",
    }
    code, out, _ = kaon_cli("cache", "clear", "--all")
    assert code == 0 and "cleared 1 cache entry" in out
    code, out, _ = kaon_cli("cache", "list")
    assert code == 0 and "no cache entries" in out


def test_compare_three_runs(kaon_cli: Kaon, runs: tuple[str, str]) -> None:
    third = _run(kaon_cli, "scale=3", "n=12")
    ids = [*runs, third]
    data = _json(kaon_cli, "compare", *ids)
    params = {p["name"]: p for p in data["params"]}
    assert params["scale"]["values"] == dict(zip(ids, [1.0, 2.0, 3.0], strict=True))
    assert params["n"]["differs"] and params["scale"]["differs"]
    scores = [m for m in data["metrics"] if m["name"] == "score"]
    assert [(m["group"], m["item"]) for m in scores] == [
        ("groups[*].fit", "g0"),
        ("groups[*].fit", "g1"),
    ]
    assert scores[0]["values"] == dict(zip(ids, [4.0, 8.0, 15.0], strict=True))
    statuses = {s["path"]: s["statuses"] for s in data["steps"]}
    assert statuses["load"] == dict(zip(ids, ["succeeded", "cached", "succeeded"], strict=True))
    code, out, _ = kaon_cli("compare", *ids)
    assert code == 0 and "groups[1].fit" in out and "score" in out and "cached" in out
    code, _, err = kaon_cli("compare", runs[0])
    assert code == 2 and "at least two" in err


def test_plot_writes_a_png(kaon_cli: Kaon, runs: tuple[str, str], tmp_path: Path) -> None:
    target = tmp_path / "plots" / "score.png"
    data = _json(kaon_cli, "plot", *runs, "--metric", "score", "-o", str(target))
    assert data["by"] == "run" and data["output"] == str(target)
    png = target.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1024
    code, out, _ = kaon_cli("plot", runs[0], "-m", "score", "--by", "item", "-o", str(target))
    assert code == 0 and "score by item" in out
    code, _, err = kaon_cli("plot", runs[0], "-m", "nope", "-o", str(target))
    assert code == 2 and "no metric 'nope'" in err


def test_plot_without_matplotlib_says_how_to_install_it(
    kaon_cli: Kaon, runs: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in an install without `ml`
    code, out, err = kaon_cli("plot", runs[0], "-m", "score", "-o", str(tmp_path / "s.png"))
    assert code == 2 and out == ""
    assert "kaon plot needs matplotlib, which is not installed: pip install 'kaon[ml]'" in err
    assert "Traceback" not in err and not (tmp_path / "s.png").exists()


def test_gc_dry_run_then_delete(kaon_cli: Kaon, runs: tuple[str, str], tmp_path: Path) -> None:
    orphan = "ab" + "0" * 62
    blob = tmp_path / "home" / "artifacts" / "blobs" / "ab" / orphan
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"nobody points at me")
    young = _json(kaon_cli, "gc")
    assert (young["deleted"], young["young"]) == (0, 1) and blob.exists()
    then = time.time() - 2 * 3600
    os.utime(blob, (then, then))
    dry = _json(kaon_cli, "gc", "--dry-run")
    assert dry["deleted_hashes"] == [orphan] and dry["bytes_freed"] == 19 and blob.exists()
    code, out, _ = kaon_cli("gc", "--min-age", "30m")
    assert code == 0 and "deleted 1 (19 B)" in out and not blob.exists()
    referenced = _json(kaon_cli, "gc", "--min-age", "0")
    assert referenced["deleted"] == 0 and referenced["referenced"] == referenced["scanned"] > 0
    code, out, _ = kaon_cli("get", runs[1], "groups[0].fit")
    assert code == 0 and "ndarray" in out

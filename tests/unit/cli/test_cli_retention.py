"""`kaon runs delete` and `kaon gc --runs-older-than`, in-process on a local store.

Two runs of the workflow below share the blob of ``load`` (the second reuses it from the
cache) and each has blobs of its own (``fit``'s): deleting the first frees only its own."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import kaon
from kaon.cli import main
from kaon.cli.main import app

HERE = str(Path(__file__).resolve())

Kaon = Callable[..., tuple[int, str, str]]


@kaon.step(cache=True)
def shared(n: int) -> np.ndarray:
    return np.arange(n, dtype=float)


@kaon.step(cache=True)
def scaled(values: np.ndarray, scale: float) -> np.ndarray:
    return values * scale


@kaon.workflow(name="cli_retention")
def cli_retention(n: int = 5, scale: float = 1.0) -> None:
    scaled(shared(n=n), scale=scale)


@pytest.fixture
def kaon_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kaon:
    monkeypatch.setenv("KAON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAON_EXECUTOR", "inline")
    monkeypatch.delenv("KAON_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _json(kaon_cli: Kaon, *args: str) -> Any:
    code, out, err = kaon_cli(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def _run(kaon_cli: Kaon, scale: float) -> str:
    return str(_json(kaon_cli, "run", f"{HERE}:cli_retention", "-p", f"scale={scale}")["id"])


def _blobs(kaon_cli: Kaon, run_id: str) -> dict[str, str]:
    found = _json(kaon_cli, "artifacts", run_id)
    return {a["path"]: a["hash"] for a in found["artifacts"]}


def test_deleting_a_run_then_gc_frees_only_its_own_blobs(
    kaon_cli: Kaon, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _run(kaon_cli, 2.0), _run(kaon_cli, 3.0)
    mine = _blobs(kaon_cli, first)
    assert set(mine) == {"shared", "scaled"}

    monkeypatch.setattr(main, "_interactive", lambda: True)  # a person at a terminal
    code, _, err = kaon_cli("runs", "delete", first[:22], input="n\n")
    assert code == 2 and "nothing deleted" in err
    code, out, _ = kaon_cli("runs", "delete", first[:22], input="y\n")
    assert code == 0 and f"deleted {first}" in out
    assert [r["id"] for r in _json(kaon_cli, "runs")] == [second]
    code, _, err = kaon_cli("show", first)
    assert code == 2 and "no run" in err

    swept = _json(kaon_cli, "gc", "--min-age", "0")
    assert swept["deleted_hashes"] == [mine["scaled"]]  # "shared" is the second run's too
    assert _blobs(kaon_cli, second)["shared"] == mine["shared"]
    code, out, _ = kaon_cli("get", second, "shared")
    assert code == 0 and "ndarray" in out


def test_gc_deletes_runs_past_retention_but_the_newest_of_each_workflow(kaon_cli: Kaon) -> None:
    ids = [_run(kaon_cli, float(scale)) for scale in (2, 3, 4)]
    time.sleep(0.05)
    code, _, err = kaon_cli("gc", "--keep-last", "1")
    assert code == 2 and "--runs-older-than" in err

    dry = _json(
        kaon_cli, "gc", "--runs-older-than", "0", "--keep-last", "1", "--min-age", "0", "--dry-run"
    )
    assert dry["runs"] == ids[:2] and dry["deleted"] == 2  # the two runs' own "scaled" blobs
    assert [r["id"] for r in _json(kaon_cli, "runs")] == ids[::-1]  # nothing deleted

    assert _json(kaon_cli, "gc", "--runs-older-than", "1h", "--min-age", "0")["runs"] == []
    done = _json(kaon_cli, "gc", "--runs-older-than", "0", "--keep-last", "1", "--min-age", "0")
    assert done["runs"] == ids[:2] and done["deleted"] == 2
    assert [r["id"] for r in _json(kaon_cli, "runs")] == [ids[2]]
    code, out, _ = kaon_cli("get", ids[2], "shared")
    assert code == 0 and "ndarray" in out


def test_a_bad_server_retention_is_refused_before_serving(kaon_cli: Kaon) -> None:
    code, _, err = kaon_cli("server", "--retention", "90 fortnights")
    assert code == 2 and "--retention" in err

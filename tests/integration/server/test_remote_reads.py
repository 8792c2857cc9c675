"""Everything remote: with KAON_URL every read command and :class:`kaon.client.Client` query a
real ``kaon server`` over HTTP (never a local store), honouring groups and roles; artifacts
are streamed with Range reads; an operator runs an unchanged file's active version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from kaon.cli.main import app
from kaon.client import Client

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOW = """\
import kaon


@kaon.step
def make(n: int) -> dict:
    kaon.context().metric("rmse", 0.5 + n)
    return {"data": list(range(n)), "n": n}


@kaon.step
def total(data: list) -> int:
    return sum(data)


@kaon.workflow(name="remote")
def remote(n: int = 5000) -> None:
    made = make(n=n)
    total(made["data"])
"""


@dataclass
class Lab:
    """A server, a workflow pushed by its admin into group ``ml``, tokens and two runs."""

    server: Any  # conftest's ServerProcess
    flow: Path
    work: Path  # an empty folder the CLI runs in
    tokens: dict[str, str]
    runs: list[str]

    def cli(self, *args: str, token: str = "viewer") -> Any:
        """``kaon ARGS`` in-process, with KAON_URL and a role's token and no other KAON_
        setting (no KAON_HOME), in the empty folder ``work``."""
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("KAON_")}
        env.update(KAON_URL=self.server.url, KAON_TOKEN=self.tokens[token])
        before = os.getcwd()
        os.chdir(self.work)
        try:
            result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        finally:
            os.chdir(before)
        return SimpleNamespace(
            returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr
        )


def _token(admin: httpx.Client, name: str, role: str, *groups: str) -> str:
    made = admin.post("/tokens", json={"name": name, "role": role, "groups": list(groups)})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, launch_shared: Any) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("remote")
    server = launch_shared(root / "home", env={"KAON_SANDBOX_READ": str(root)})
    try:
        admin = server.client()
        tokens = {
            "admin": server.token,
            "owner": _token(admin, "olga", "owner", "ml"),
            "operator": _token(admin, "otto", "operator", "ml"),
            "viewer": _token(admin, "vera", "viewer", "ml"),
            "stranger": _token(admin, "sam", "owner", "other"),
        }
        flows = root / "flows"
        flows.mkdir()
        flow = flows / "flow.py"
        flow.write_text(FLOW)
        work = root / "work"
        work.mkdir()
        made = Lab(server, flow, work, tokens, [])
        pushed = made.cli("push", str(flow), "--group", "ml", token="admin")
        assert pushed.returncode == 0, pushed.stderr
        for n in (5000, 6000):
            ran = made.cli("run", str(flow), "-p", f"n={n}", "--json", token="operator")
            assert ran.returncode == 0, ran.stdout + ran.stderr
            made.runs.append(json.loads(ran.stdout)["id"])
        yield made
    finally:
        assert server.stop() == 0, server.logs()


def test_an_operator_runs_the_active_version_of_an_unchanged_file(lab: Lab) -> None:
    # Both runs of the fixture were started by an operator, who may not push: they ran v1.
    versions = lab.cli("versions", "remote", "--json")
    assert [v["version"] for v in json.loads(versions.stdout)] == [1]
    changed = lab.flow.parent / "changed"
    changed.mkdir()
    (changed / "flow.py").write_text(FLOW.replace("0.5 + n", "1.5 + n"))
    refused = lab.cli("run", str(changed / "flow.py"), "--json", token="operator")
    assert refused.returncode == 2
    error = json.loads(refused.stdout)["error"]  # --json: the error is the one document
    assert error["type"] == "PermissionDeniedError"
    assert "differs from the active version 1" in error["message"]
    assert "kaon push" in error["message"]


def test_every_read_command_queries_the_server(lab: Lab) -> None:
    first, second = lab.runs
    listed = lab.cli("runs", "--json")
    assert {r["id"] for r in json.loads(listed.stdout)} == {first, second}
    shown = json.loads(lab.cli("show", first[:-2], "--json").stdout)
    assert [s["status"] for s in shown["steps"]] == ["succeeded", "succeeded"]
    assert lab.cli("logs", first, "make").returncode == 0

    arts = json.loads(lab.cli("artifacts", first, "--json").stdout)
    blob = next(a for a in arts["artifacts"] if a["output"] == "data")
    assert blob["path"] == "make" and blob["size"] > 16_000
    tree = json.loads(lab.cli("lineage", blob["hash"][:10], "--json").stdout)
    assert tree["hash"] == blob["hash"]
    assert [(p["run_id"], p["path"]) for p in tree["producers"]] == [(first, "make")]

    out = lab.work / "data.json"
    got = lab.cli("get", first, "make", "--output", "data", "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert json.loads(out.read_text()) == list(range(5000))
    preview = lab.cli("get", blob["hash"][:12])
    assert preview.returncode == 0 and preview.stdout.startswith("[\n  0,")

    explained = json.loads(lab.cli("explain", first, "make", "--json").stdout)
    assert explained["path"] == "make"
    compared = json.loads(lab.cli("compare", first, second, "--json").stdout)
    assert [p["differs"] for p in compared["params"] if p["name"] == "n"] == [True]
    png = lab.work / "rmse.png"
    plotted = lab.cli("plot", first, second, "--metric", "rmse", "-o", str(png), "--json")
    assert plotted.returncode == 0, plotted.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert [len(s["y"]) for s in json.loads(plotted.stdout)["series"]] == [2]

    # Nothing was read from (or created as) a local store.
    assert sorted(p.name for p in lab.work.iterdir()) == ["data.json", "rmse.png"]
    assert not (lab.flow.parent / ".kaon").exists()


def test_groups_are_honoured_and_blobs_stream_with_ranges(lab: Lab) -> None:
    first = lab.runs[0]
    denied = lab.cli("artifacts", first, token="stranger")
    assert denied.returncode == 2 and "ml" in denied.stderr
    arts = json.loads(lab.cli("artifacts", first, "--json").stdout)
    hash_ = next(a["hash"] for a in arts["artifacts"] if a["output"] == "data")
    hidden = lab.cli("get", hash_, token="stranger")
    assert hidden.returncode == 2 and "no recorded artifact" in hidden.stderr

    viewer = lab.server.client(lab.tokens["viewer"])
    whole = viewer.get(f"/artifacts/{hash_}/blob")
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert json.loads(whole.content) == list(range(5000))
    part = viewer.get(f"/artifacts/{hash_}/blob", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole.content[10:20]
    size = len(whole.content)
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    tail = viewer.get(f"/artifacts/{hash_}/blob", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == whole.content[-5:]
    beyond = viewer.get(f"/artifacts/{hash_}/blob", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    stranger = lab.server.client(lab.tokens["stranger"])
    assert stranger.get(f"/artifacts/{hash_}/blob").status_code == 404


def test_the_python_client_works_remotely(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(lab.work)
    first, second = lab.runs
    with Client(url=lab.server.url, token=lab.tokens["viewer"]) as client:
        assert {r.id for r in client.runs(workflow="remote")} == {first, second}
        run = client.run(first[:-2])
        assert run.status == "succeeded" and run.params == {"n": 5000}
        assert run.output("make", "data") == list(range(5000))
        assert run.outputs("total") == {"return": sum(range(5000))}
        rows = run.metrics()
        assert list(rows["value"]) == [5000.5]
        hash_ = next(a.hash for a in run.artifacts().artifacts if a.output == "data")
        artifact = client.artifact(hash_[:8])
        assert artifact.load() == list(range(5000))
        assert artifact.lineage().producers[0].path == "make"
        assert run.explain("make").path == "make"
        assert len(client.compare(first, second).runs) == 2
    assert not (lab.work / ".kaon").exists()


def test_the_python_client_steers_a_server_run_without_raising(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Client(url=...).start(...)``, ``run(...).restart()`` and ``.resume()`` acted on the
    server and then raised (``this handle reads a server``): a notebook that tried again
    started a second run or a second restart. A registered name was looked up as a file."""
    monkeypatch.chdir(lab.work)
    with Client(url=lab.server.url, token=lab.tokens["operator"]) as client:
        before = {r.id for r in client.runs(limit=100)}
        handle = client.start("remote", n=7)  # the registered workflow, by name
        assert handle.wait(timeout=60) == "succeeded"
        assert handle.output("total") == sum(range(7))
        again = client.start(str(lab.flow), n=8)  # an unchanged file: its version
        assert again.wait(timeout=60) == "succeeded"
        assert {r.id for r in client.runs(limit=100)} - before == {handle.id, again.id}
        run = client.run(handle.id)
        assert run.restart(from_step="total", only=True) is run
        assert run.wait(timeout=60) == "succeeded"
        assert client.run(handle.id).view.restarts == 1
        assert run.resume() == "succeeded"  # a finished run: nothing to do, no error


def test_watch_follows_a_server_run_over_its_event_stream(lab: Lab) -> None:
    first = lab.runs[0]
    watched = lab.cli("watch", first[:-2], "--logs")
    assert watched.returncode == 0, watched.stderr
    said = [line.split(" ", 1)[1] for line in watched.stdout.splitlines() if line[:2] == "20"]
    assert "make succeeded" in " ".join(said) and said[-1] == f"run {first} succeeded"
    events = lab.cli("watch", first, "--events")
    kinds = [json.loads(line).get("kind") for line in events.stdout.splitlines()]
    assert kinds[0] == "run" and kinds[-1] is None  # the events, then the result
    denied = lab.cli("watch", first, token="stranger")
    assert denied.returncode == 2


def test_a_restart_on_a_server_shows_only_its_own_events(lab: Lab) -> None:
    """``kaon restart`` against a server replayed the run's whole history (its first start's
    events, with their old times) before the restart's, as if the reused steps ran again."""
    ran = lab.cli("run", str(lab.flow), "-p", "n=9", "--json", token="operator")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    history = lab.server.client().get(f"/runs/{run_id}/events", params={"limit": 10_000})
    last = max(event["id"] for event in history.json())
    again = lab.cli("restart", run_id, "--from", "total", "--events", token="operator")
    assert again.returncode == 0, again.stdout + again.stderr
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    events = [line for line in lines if line.get("type") == "event"]
    assert events and all(event["id"] > last for event in events), [e["id"] for e in events]
    steps = {(e["data"].get("path"), e["data"]["status"]) for e in events if e["kind"] == "step"}
    assert ("make", "running") not in steps  # reused, not run again
    assert ("total", "succeeded") in steps and lines[-1]["type"] == "result"
